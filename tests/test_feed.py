"""parity feed's client side: bodies made ahead of the posts, one kept-alive connection."""
import threading

import pytest

from parity.errors import ParityError
from parity.feed import Client, ahead


def test_ahead_keeps_order_and_raises_where_the_producer_failed():
    assert list(ahead(iter(range(50)))) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise ValueError("corpus unreadable")
    got = []
    with pytest.raises(ValueError, match="corpus unreadable"):
        for x in ahead(failing()):
            got.append(x)
    assert got == [1, 2]


def test_ahead_stops_its_thread_when_the_consumer_stops_early():
    gen = ahead(iter(range(1000)), depth=1)
    assert next(gen) == 0
    assert any(t.name == "feed-serialize" for t in threading.enumerate())
    gen.close()  # e.g. the server refused a batch
    assert not any(t.name == "feed-serialize" for t in threading.enumerate())


def test_a_refusal_is_reported_with_its_status_and_a_dead_server_after_the_deadline():
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"error": "block 1 (height 3): a different block"}).encode()
            self.send_response(409)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = Client(f"http://127.0.0.1:{server.server_address[1]}", retry_seconds=0.5)
    try:
        with pytest.raises(ParityError, match="HTTP 409: .*a different block"):
            client.call("POST", "/blocks", b"x")
    finally:
        client.close()
        server.shutdown()
        server.server_close()
    with pytest.raises(ParityError, match="no answer within"):
        client.call("GET", "/chain")
    assert client.retries > 0
    client.close()

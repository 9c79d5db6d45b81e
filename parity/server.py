"""``parity serve``: /metrics for Prometheus, the Alertmanager rollback webhook, /mode.

A firing alert carrying ``action="rollback"`` demotes a mode 2 or 3 process to
mode 1 (SPEC section 5); repeated notifications change nothing more. A demotion
that cannot be made durable answers 503, so Alertmanager retries.

The HTTP side is waitress: one event loop holds every connection (an idle or
half-sent request costs a file descriptor, not a thread) and closes it after
``timeout`` seconds of silence; a fixed pool of ``threads`` workers runs the
routes, and only once a request has fully arrived. waitress rejects a negative
or non-numeric Content-Length (400) and a body over :data:`MAX_BODY` (413)
before reading it; the app answers 411 to a POST without a length.
"""
from __future__ import annotations

import json
import logging
import re
import resource
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import waitress
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser

from parity.errors import StateError

if TYPE_CHECKING:
    from parity.percall import Controller

log = logging.getLogger("parity.server")
# waitress warns "Task queue depth is N" whenever a request waits for a worker: a burst of
# webhooks is normal here, not worth a line on stderr per request.
logging.getLogger("waitress.queue").setLevel(logging.ERROR)

WEBHOOK_PATH = "/alertmanager"
MAX_BODY = 1 << 20            #: largest request body accepted (bytes), on every route
MAX_HEADERS = 64 << 10        #: largest request head accepted (bytes)
IDLE_TIMEOUT = 10.0           #: seconds of silence after which a connection is closed
THREADS = 4                   #: workers running routes
BACKLOG = 1024                #: listen backlog (the kernel caps it at net.core.somaxconn)
CONNECTION_LIMIT = 1000       #: open connections; more wait in the backlog
JSON = "application/json"
_DIGITS = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = field(default=())


def json_response(status: int, obj: object) -> Response:
    return Response(status, (json.dumps(obj) + "\n").encode())


def error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


class Request(bytes):
    """A request body (b"" for GET) that also carries its decoded query string."""

    query: dict[str, str]


#: a route: the request (its body, with ``.query``) -> the response
Route = Callable[[bytes], Response]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict",
            411: "Length Required", 413: "Payload Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}


def rollback_alerts(payload: object) -> list[dict]:
    """Firing alerts of an Alertmanager webhook payload that ask for a rollback."""
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise ValueError("not an Alertmanager webhook payload (no alerts list)")
    return [a for a in payload["alerts"] if isinstance(a, dict) and a.get("status") == "firing"
            and isinstance(a.get("labels"), dict) and a["labels"].get("action") == "rollback"]


def _label(alert: dict, name: str) -> str:
    return str(alert.get("labels", {}).get(name, "?"))[:80]


def rollback_reason(alerts: list[dict]) -> str:
    """The recorded reason of a webhook's rollback: the first few alerts, by name."""
    named = ", ".join(f"{_label(a, 'alertname')} (severity {_label(a, 'severity')})"
                      for a in alerts[:3])
    more = f" and {len(alerts) - 3} more" if len(alerts) > 3 else ""
    return f"alertmanager rollback: {named}{more}"


def _connection_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return CONNECTION_LIMIT if soft == resource.RLIM_INFINITY else \
        max(16, min(CONNECTION_LIMIT, soft // 2))


def _listen_socket(host: str, port: int) -> socket.socket:
    """A bound (not yet listening) TCP socket; OSError when the address is unusable."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError:
        sock.close()
        raise
    return sock


class _Parser(HTTPRequestParser):
    """waitress (3.0.2) answers ``Expect: 100-continue`` on a request that is already
    complete (no body, or rejected with 4xx) by marking it incomplete again: the client
    then gets ``100 Continue`` and nothing more until the idle timeout. Nothing is left
    to continue once a request is complete."""

    def received(self, data: bytes) -> int:
        consumed = super().received(data)
        if self.completed:
            self.expect_continue = False
        return consumed


class _Channel(HTTPChannel):
    parser_class = _Parser


class ParityServer:
    """The HTTP server of ``parity serve``; ``routes`` maps (method, path) to a route."""

    def __init__(self, controller: Controller, host: str = "127.0.0.1", port: int = 8001, *,
                 timeout: float = IDLE_TIMEOUT, threads: int = THREADS) -> None:
        self.controller = controller
        self.webhooks = 0
        self._lock = threading.Lock()
        self.routes: dict[tuple[str, str], Route] = {
            ("GET", "/metrics"): self._metrics,
            ("GET", "/mode"): lambda body: json_response(200, self.mode_info()),
            ("GET", "/healthz"): self._health,
            ("GET", "/"): self._health,
            ("POST", WEBHOOK_PATH): self.webhook,
        }
        self._sock = _listen_socket(host, port)
        try:
            self._server = waitress.create_server(
                self.app, sockets=[self._sock], threads=threads, backlog=BACKLOG,
                connection_limit=_connection_limit(), channel_timeout=timeout,
                cleanup_interval=min(1.0, timeout / 2), asyncore_use_poll=True,
                max_request_body_size=MAX_BODY + 1, max_request_header_size=MAX_HEADERS,
                expose_tracebacks=False, ident="parity")
        except BaseException:
            self._sock.close()
            raise
        self._server.channel_class = _Channel
        self.thread: threading.Thread | None = None
        self._stopped = False

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()[:2]

    # ---- routes ---------------------------------------------------------------------

    def _metrics(self, body: bytes) -> Response:
        return Response(200, generate_latest(self.controller.metrics.registry),
                        CONTENT_TYPE_LATEST)

    def _health(self, body: bytes) -> Response:
        return json_response(200, {"ok": True, "mode": self.controller.mode.label})

    def mode_info(self) -> dict:
        state = self.controller.state
        comparisons, mismatches = state.window()
        mode = self.controller.mode
        return {"mode": int(mode), "name": mode.label, "history": state.history,
                "window": {"comparisons": comparisons, "mismatches": mismatches},
                "promotion_refusal": state.promotion_refusal()}

    def handle_rollback(self, alerts: list[dict]) -> dict:
        """Demote once if any alert asks for it; StateError when that cannot be recorded."""
        with self._lock:
            self.webhooks += 1
        change = self.controller.state.demote(rollback_reason(alerts)) if alerts else None
        return {"rollback_alerts": len(alerts), "demoted": change is not None,
                "mode": self.controller.mode.label}

    def webhook(self, body: bytes) -> Response:
        """POST /alertmanager: 200 with what was done, 400 on a bad payload."""
        try:
            alerts = rollback_alerts(json.loads(body))
        except (ValueError, RecursionError) as exc:
            return error(400, f"bad webhook payload: {str(exc)[:200]}")
        return json_response(200, self.handle_rollback(alerts))

    # ---- WSGI -----------------------------------------------------------------------

    def dispatch(self, method: str, path: str, body: bytes, query: str = "") -> Response:
        """The response of a route; 503 when the mode state cannot be read or changed."""
        route = self.routes.get(("GET" if method == "HEAD" else method, path))
        if route is None:
            allowed = sorted(m for m, p in self.routes if p == path)
            if allowed:
                return Response(405, error(405, f"{method} not allowed on {path}").body,
                                headers=(("Allow", ", ".join(allowed)),))
            return error(404, f"no such path {path[:200]}")
        request = Request(body)
        request.query = {k: v[-1] for k, v in parse_qs(query[:4096]).items()}
        try:
            return route(request)
        except StateError as exc:
            log.error("%s %s: mode state not durable: %s", method, path, exc)
            return error(503, "mode state could not be made durable; retry later")
        except Exception:
            log.exception("%s %s failed", method, path)
            return error(500, "internal error")

    def app(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """The WSGI application: checks the body's length, reads it, dispatches."""
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/"
        body = b""
        length = environ.get("CONTENT_LENGTH")
        if method in ("POST", "PUT", "PATCH") and not length:
            response = error(411, "Content-Length required")
        elif length and not _DIGITS.fullmatch(length):
            response = error(400, "bad Content-Length")
        elif length and int(length) > MAX_BODY:
            response = error(413, f"payload too large (limit {MAX_BODY} bytes)")
        else:
            if length:
                body = environ["wsgi.input"].read(int(length))
            response = self.dispatch(method, path, body, environ.get("QUERY_STRING") or "")
        start_response(f"{response.status} {_REASONS.get(response.status, 'Error')}",
                       [("Content-Type", response.content_type),
                        ("Content-Length", str(len(response.body))), *response.headers])
        return [b"" if method == "HEAD" else response.body]

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> ParityServer:
        self.thread = threading.Thread(target=self._server.run, name="parity-server",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and the listener, then wait for the workers."""
        if self._stopped:
            return
        self._stopped = True
        channels = self._server._map
        woken = False
        if self.thread is not None and self.thread.is_alive():
            try:
                self._server.trigger.pull_trigger(
                    lambda: wasyncore.close_all(channels, ignore_all=True))
                woken = True
            except OSError as exc:  # the loop's wake-up pipe is gone: close from here
                log.warning("parity serve: wake-up pipe unusable at stop (%s)", exc)
            if woken:
                self.thread.join(timeout=5)
        if not woken:
            wasyncore.close_all(channels, ignore_all=True)
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        self._sock.close()

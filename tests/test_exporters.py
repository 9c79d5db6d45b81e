"""BatchExporter: a Pushgateway that fails costs a warning, never the run; bad URLs are
usage errors found before the run starts."""
from __future__ import annotations

import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from parity.cli import main
from parity.errors import ParityError
from parity.exporters import BatchExporter, validate_pushgateway_url
from parity.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT / "corpora" / "sample-valid"


class Gateway(ThreadingHTTPServer):
    """A Pushgateway stand-in on 127.0.0.1: ``fail`` first pushes answer 500."""

    daemon_threads = True

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.paths = fail, []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _GatewayHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _GatewayHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.paths.append(self.path)
            failing = self.server.fail > 0
            self.server.fail -= failing
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def gateway(fail: int = 0):
    g = Gateway(fail)
    thread = threading.Thread(target=g.serve_forever, daemon=True)
    thread.start()
    try:
        yield g
    finally:
        g.shutdown()
        g.server_close()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def exporter(url, tmp_path, **kw) -> BatchExporter:
    corpus = SimpleNamespace(path=tmp_path / "corpus-x", manifest=SimpleNamespace(blocks=10))
    kw = {"backoff": 0.01, "timeout": 2.0, **kw}
    return BatchExporter(Metrics(), url, kw.pop("textfile", None), corpus, **kw)


def run(exp: BatchExporter, shards: int = 3) -> None:
    with exp:
        for i in range(shards):
            exp.on_shard(SimpleNamespace(blocks_done=i))


def test_pushes_reach_the_gateway(tmp_path, capsys):
    with gateway() as g:
        exp = exporter(g.url, tmp_path)
        run(exp)
    assert exp.warnings == [] and capsys.readouterr().err == ""
    assert "/metrics/job/parity_shadow/corpus/corpus-x" in g.paths
    assert "/metrics/job/parity_shadow_last_run/corpus/corpus-x" in g.paths


def test_transient_500s_are_retried(tmp_path):
    with gateway(fail=2) as g:
        exp = exporter(g.url, tmp_path)
        run(exp)
    assert exp.warnings == [] and exp.failed_pushes == 0
    assert len(g.paths) >= 2 + 4  # two failed tries, then start and final pushes


def test_gateway_answering_500_is_a_warning(tmp_path, capsys):
    with gateway(fail=10**6) as g:
        exp = exporter(g.url, tmp_path, textfile=str(tmp_path / "m.prom"), cooldown=60)
        run(exp, shards=5)
    # start: 3 tries, then the progress pushes pause (cooldown), final: 3 tries
    assert len(g.paths) == 6
    assert exp.failed_pushes == 2 and len(exp.warnings) == 2
    assert all("500" in w for w in exp.warnings)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("parity: warning: pushgateway") for line in err)
    assert (tmp_path / "m.prom").read_text().count("dual_run_comparisons") > 0


def test_closed_port_is_a_warning(tmp_path, capsys):
    exp = exporter(f"http://127.0.0.1:{closed_port()}", tmp_path)
    run(exp)
    assert exp.failed_pushes == 2
    assert any("start push failed after 3 tries" in w for w in exp.warnings)
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("url", [
    "not a url", "", "127.0.0.1:9091", "localhost:9091", "ftp://127.0.0.1:9091", "http://",
    "http://:9091", "http://127.0.0.1:99999", "http://127.0.0.1:port", "http://127.0.0.1:0",
    "http://127.0.0.1:9091?x=1", "http://u:p@127.0.0.1:9091", "http://127.0.0.1:9091\n",
    "http://[::1", "https://pg example:9091"])
def test_bad_urls_are_usage_errors(url):
    with pytest.raises(ParityError, match="--pushgateway"):
        validate_pushgateway_url(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9091", "https://pg.example",
                                 "http://[::1]:9091/prefix", "HTTP://Localhost:9091/"])
def test_good_urls_pass(url):
    assert validate_pushgateway_url(url) == url


def test_cli_rejects_bad_url_before_building_the_run(tmp_path, capsys):
    code = main(["shadow", str(tmp_path / "no-such-corpus"), "--pushgateway", "not a url"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("parity: error: --pushgateway 'not a url'")


def test_run_with_a_dead_gateway_still_reports(tmp_path, capsys):
    """The exit code is the verdict of parity alone; the report is written."""
    report = tmp_path / "report.json"
    with gateway(fail=10**6) as g:
        code = main(["shadow", str(VALID), "--legacy", "kernels.legacy", "--refactored",
                     "kernels.legacy", "--pushgateway", g.url, "--report", str(report),
                     "--run-dir", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0 and json.loads(report.read_text())["functions"]
    assert "parity: warning: pushgateway" in err and "Traceback" not in err

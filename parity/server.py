"""``parity serve``: /metrics for Prometheus, the Alertmanager rollback webhook, /mode.

A firing alert carrying ``action="rollback"`` demotes a mode 2 or 3 process to
mode 1 (SPEC section 5); repeated notifications change nothing more.
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from parity.percall import Controller

log = logging.getLogger("parity.server")
WEBHOOK_PATH = "/alertmanager"
MAX_BODY = 1 << 20


def rollback_alerts(payload: object) -> list[dict]:
    """Firing alerts of an Alertmanager webhook payload that ask for a rollback."""
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise ValueError("not an Alertmanager webhook payload (no alerts list)")
    return [a for a in payload["alerts"] if isinstance(a, dict) and a.get("status") == "firing"
            and isinstance(a.get("labels"), dict) and a["labels"].get("action") == "rollback"]


class ParityServer:
    def __init__(self, controller: Controller, host: str = "127.0.0.1", port: int = 8001) -> None:
        self.controller = controller
        self.webhooks = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:
                log.debug(fmt, *args)

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, obj: object) -> None:
                self._send(code, (json.dumps(obj) + "\n").encode())

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(server.controller.metrics.registry),
                               CONTENT_TYPE_LATEST)
                elif self.path == "/mode":
                    self._json(200, server.mode_info())
                elif self.path in ("/", "/healthz"):
                    self._json(200, {"ok": True, "mode": server.controller.mode.label})
                else:
                    self._json(404, {"error": f"no such path {self.path}"})

            def do_POST(self) -> None:
                if self.path != WEBHOOK_PATH:
                    self._json(404, {"error": f"no such path {self.path}"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._json(413, {"error": "payload too large"})
                    return
                try:
                    payload = json.loads(self.rfile.read(length) or b"null")
                    alerts = rollback_alerts(payload)
                except ValueError as exc:
                    self._json(400, {"error": str(exc)})
                    return
                self._json(200, server.handle_rollback(alerts))

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.httpd.server_address[:2]  # type: ignore[return-value]

    def mode_info(self) -> dict:
        comparisons, mismatches = self.controller.state.window()
        return {"mode": int(self.controller.mode), "name": self.controller.mode.label,
                "history": self.controller.state.history,
                "window": {"comparisons": comparisons, "mismatches": mismatches},
                "promotion_refusal": self.controller.state.promotion_refusal()}

    def handle_rollback(self, alerts: list[dict]) -> dict:
        self.webhooks += 1
        change = None
        for alert in alerts:
            labels = alert.get("labels", {})
            reason = (f"alertmanager rollback: {labels.get('alertname', '?')} "
                      f"(severity {labels.get('severity', '?')})")
            change = self.controller.state.demote(reason) or change
        return {"rollback_alerts": len(alerts), "demoted": change is not None,
                "mode": self.controller.mode.label}

    def start(self) -> ParityServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

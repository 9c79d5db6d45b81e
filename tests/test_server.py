"""parity serve: metrics scraped over HTTP and parsed; the rollback webhook."""
import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import kernels.jit as jit
import kernels.legacy as legacy
from parity import experiment
from parity.modes import Mode
from parity.percall import Controller
from parity.server import ParityServer
from parity.state import ModeState

CATALOG = {
    "dual_run_parity_match_rate", "dual_run_comparisons", "dual_run_mismatches",
    "dual_run_legacy_duration_seconds", "dual_run_refactored_duration_seconds",
    "dual_run_speedup_ratio", "codec_mode_active", "codec_mode_requests",
    "header_hash_duration_seconds", "merkle_root_duration_seconds",
    "block_validation_duration_seconds", "epoch_replay_detected",
}


@pytest.fixture()
def server(tmp_path):
    c = Controller(ModeState(tmp_path / "mode.json", initial=Mode.REFACTORED_ONLY))
    s = ParityServer(c, "127.0.0.1", 0).start()
    yield s
    s.stop()


def get(server, path):
    host, port = server.address
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
        return r.read().decode()


def post(server, path, payload):
    host, port = server.address
    req = urllib.request.Request(f"http://{host}:{port}{path}", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def scrape(server):
    return {f.name: f for f in text_string_to_metric_families(get(server, "/metrics"))}


def test_metrics_catalog_and_zero_counters(server):
    fams = scrape(server)
    assert CATALOG <= set(fams)
    modes = {(s.labels["mode"], s.labels["served"]): s.value
             for s in fams["codec_mode_requests"].samples if s.name.endswith("_total")}
    assert len(modes) == 8 and set(modes.values()) == {0.0}
    assert fams["codec_mode_active"].samples[0].value == 3
    buckets = {float(s.labels["le"]) for s in fams["header_hash_duration_seconds"].samples
               if s.name.endswith("_bucket")}
    assert 1e-6 in buckets and 1e-5 in buckets


def test_counters_move_and_match_rate(server):
    c = server.controller
    c.state.demote("test")
    f = experiment("header_hash", legacy=legacy.hash_header, refactored=jit.hash_header,
                   controller=c)
    fams = scrape(server)
    rate = [s.value for s in fams["dual_run_parity_match_rate"].samples
            if s.labels.get("function") == "header_hash"]
    assert rate and rate[0] != rate[0]  # NaN before the first comparison
    for _ in range(3):
        f(bytes(276))
    fams = scrape(server)
    cmp_ = [s.value for s in fams["dual_run_comparisons"].samples
            if s.labels.get("function") == "header_hash" and s.name.endswith("_total")]
    assert cmp_ == [3.0]
    assert [s.value for s in fams["dual_run_parity_match_rate"].samples
            if s.labels.get("function") == "header_hash"] == [1.0]


def alert(status="firing", action="rollback"):
    return {"version": "4", "status": status, "receiver": "parity-rollback", "alerts": [
        {"status": status, "labels": {"alertname": "ParityMismatch", "severity": "P0",
                                      "action": action}}]}


def test_webhook_demotes_once(server, tmp_path):
    assert post(server, "/alertmanager", alert(action="page"))["demoted"] is False
    assert server.controller.mode == Mode.REFACTORED_ONLY
    r = post(server, "/alertmanager", alert())
    assert r == {"rollback_alerts": 1, "demoted": True, "mode": "shadow"}
    assert post(server, "/alertmanager", alert())["demoted"] is False  # idempotent
    history = ModeState(tmp_path / "mode.json").history
    assert len(history) == 1 and "ParityMismatch" in history[0]["reason"]
    assert json.loads(get(server, "/mode"))["name"] == "shadow"


def test_webhook_ignores_resolved_and_rejects_garbage(server):
    assert post(server, "/alertmanager", alert(status="resolved"))["rollback_alerts"] == 0
    host, port = server.address
    req = urllib.request.Request(f"http://{host}:{port}/alertmanager", data=b"{nope")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 400
    e.value.close()

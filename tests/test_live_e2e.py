"""End to end on 127.0.0.1: a live server with a planted legacy twin that lets replays
through, a real Prometheus scraping it and a real Alertmanager. The EpochReplayBypass
rule fires and Alertmanager's webhook demotes the server."""
import os
import sys

import pytest
import yaml

from parity.feed import feed
from parity.modes import Mode
from parity.state import ModeState
from tests.conftest import ROOT
from tests.servers import Processes, free_port, get_json, tool, until, wait_http

MON = ROOT / "monitoring"
CORPUS = ROOT / "corpora" / "sample-faults"
pytestmark = [pytest.mark.servers, pytest.mark.slow]


def configs(tmp, ports):
    prom = yaml.safe_load((MON / "prometheus" / "prometheus.yml").read_text())
    prom["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    prom["rule_files"] = [str(MON / "prometheus" / "live_alerts.yml")]  # only the live rules
    prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{ports['am']}"]
    prom["scrape_configs"] = [{"job_name": "parity", "static_configs": [
        {"targets": [f"127.0.0.1:{ports['serve']}"]}]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(prom))
    am = yaml.safe_load((MON / "alertmanager" / "alertmanager.yml").read_text())
    sink = f"http://127.0.0.1:{ports['sink']}/sink"  # a closed loopback port
    for r in am["receivers"]:
        if r["name"] == "parity-rollback":
            r["webhook_configs"][0]["url"] = f"http://127.0.0.1:{ports['serve']}/alertmanager"
        elif len(r) > 1:
            name = r["name"]
            r.clear()
            r.update({"name": name, "webhook_configs": [{"url": sink}]})
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(am))


def test_replay_bypass_fires_and_rolls_back(tmp_path):
    ports = {k: free_port() for k in ("serve", "prom", "am", "sink")}
    configs(tmp_path, ports)
    state = tmp_path / "state.db"
    procs = Processes(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT), BROKEN_TWIN="noreplay")
    try:
        serve = procs.start("serve", [sys.executable, "-m", "parity", "serve", "--port",
                                      str(ports["serve"]), "--state", str(state), "--mode",
                                      "shadow", "--chain", str(CORPUS), "--legacy",
                                      "tests.broken_twin"], env=env, cwd=ROOT)
        base = f"http://127.0.0.1:{ports['serve']}"
        wait_http(base + "/chain", 60, serve)
        feed(str(CORPUS), base, batch=100)  # mode 1: the planted legacy is served
        # then an operator promotes (the gate satisfied by a window of clean comparisons);
        # monitoring starts only now, so the first scrape already carries the bypasses and
        # the alert cannot fire (and be answered) before the promotion
        op = ModeState(state)
        op.record(5_000_000, 0)
        op.promote("canary green")
        op.promote("canary green")
        assert op.recorded == Mode.REFACTORED_ONLY
        am = procs.start("alertmanager", [
            tool("prometheus-alertmanager"), f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{ports['am']}",
            "--cluster.listen-address=", "--log.level=warn"])
        prom = procs.start("prometheus", [
            tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{ports['prom']}", "--log.level=warn"])
        wait_http(f"http://127.0.0.1:{ports['am']}/-/ready", 60, am)
        wait_http(f"http://127.0.0.1:{ports['prom']}/-/ready", 60, prom)
        query = f"http://127.0.0.1:{ports['prom']}/api/v1/query?query="
        until("EpochReplayBypass firing", lambda: [
            a for a in get_json(f"http://127.0.0.1:{ports['prom']}/api/v1/alerts")["data"]
            ["alerts"] if a["labels"]["alertname"] == "EpochReplayBypass"
            and a["state"] == "firing"])
        change = until("the webhook's rollback", lambda: [
            h for h in ModeState(state).history if "EpochReplayBypass" in h["reason"]])
        assert change[0]["from"] == "refactored_only" and change[0]["to"] == "shadow"
        assert get_json(base + "/mode")["name"] == "shadow"
        bypass = get_json(query + "epoch_replay_bypass_successful_total")["data"]["result"]
        assert float(bypass[0]["value"][1]) > 0
    finally:
        procs.stop()

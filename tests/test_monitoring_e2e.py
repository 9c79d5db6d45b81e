"""End to end on 127.0.0.1: parity serve, Prometheus, Alertmanager and a Pushgateway.

A serving process in mode 3 compares nothing itself. A shadow run in mode 1 over a
corpus with a planted mismatch pushes its metrics; Prometheus fires the P0 alert,
Alertmanager posts it to the serving process's webhook, and that process demotes
itself to mode 1 and records why.

No clean run seeds the Pushgateway with zeros first, and Prometheus starts only after the
run ended: its first sample of the mismatch counter is already 1, so ``increase()`` has
nothing to compare with. The alert must fire all the same (a batch job's first push).
"""
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from kernels.legacy import decode_header
from parity.corpus import open_corpus
from tests.servers import Processes, free_port, get_json, tool, until, wait_http

ROOT = Path(__file__).resolve().parent.parent
MON = ROOT / "monitoring"
CORPUS = ROOT / "corpora" / "sample-valid"
pytestmark = [pytest.mark.servers, pytest.mark.slow]


def prom_config(path, ports):
    cfg = yaml.safe_load((MON / "prometheus" / "prometheus.yml").read_text())
    cfg["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    cfg["rule_files"] = [str(MON / "prometheus" / f) for f in cfg["rule_files"]]
    cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{ports['am']}"]
    for job in cfg["scrape_configs"]:
        port = ports["serve"] if job["job_name"] == "parity" else ports["pg"]
        job["static_configs"][0]["targets"] = [f"127.0.0.1:{port}"]
    path.write_text(yaml.safe_dump(cfg))


def am_config(path, ports):
    cfg = yaml.safe_load((MON / "alertmanager" / "alertmanager.yml").read_text())
    sink = f"http://127.0.0.1:{ports['sink']}/sink"  # a closed loopback port: no outside traffic
    for r in cfg["receivers"]:
        if r["name"] == "parity-rollback":
            r["webhook_configs"][0]["url"] = f"http://127.0.0.1:{ports['serve']}/alertmanager"
        elif len(r) > 1:  # pager, chat, watchdog: same route, local sink
            name = r["name"]
            r.clear()
            r.update({"name": name, "webhook_configs": [{"url": sink}]})
    path.write_text(yaml.safe_dump(cfg))


def query(ports, q):
    url = f"http://127.0.0.1:{ports['prom']}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    return get_json(url)["data"]["result"]


@pytest.fixture()
def stack(tmp_path):
    ports = {k: free_port() for k in ("serve", "prom", "am", "pg", "sink")}
    procs = Processes(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        prom_config(tmp_path / "prometheus.yml", ports)
        am_config(tmp_path / "alertmanager.yml", ports)
        serve = procs.start("serve", [sys.executable, "-m", "parity", "serve", "--port",
                                      str(ports["serve"]), "--mode", "3", "--state",
                                      str(tmp_path / "mode.json")], env=env)
        pg = procs.start("pushgateway", [tool("prometheus-pushgateway"),
                                         f"--web.listen-address=127.0.0.1:{ports['pg']}"])
        am = procs.start("alertmanager", [
            tool("prometheus-alertmanager"), f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{ports['am']}",
            "--cluster.listen-address="])
        wait_http(f"http://127.0.0.1:{ports['serve']}/healthz", proc=serve)
        wait_http(f"http://127.0.0.1:{ports['pg']}/-/ready", proc=pg)
        wait_http(f"http://127.0.0.1:{ports['am']}/-/ready", proc=am)

        def start_prometheus():
            prom = procs.start("prometheus", [
                tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{ports['prom']}"])
            wait_http(f"http://127.0.0.1:{ports['prom']}/-/ready", proc=prom)

        yield ports, procs, env, tmp_path, start_prometheus
    finally:
        procs.stop()


def test_first_push_with_mismatches_pages_and_rolls_back(stack):
    ports, procs, env, tmp, start_prometheus = stack
    serve_url = f"http://127.0.0.1:{ports['serve']}"
    assert get_json(serve_url + "/mode")["name"] == "refactored_only"

    shard = next(open_corpus(CORPUS).shards())
    height = decode_header(shard.headers[17].tobytes())["height"]
    broken = subprocess.run(  # the first run this Pushgateway sees: no clean seeding push
        [sys.executable, "-m", "parity", "shadow", str(CORPUS), "--mode", "1", "--quiet",
         "--pushgateway", f"http://127.0.0.1:{ports['pg']}", "--run-dir", str(tmp / "broken"),
         "--refactored", "tests.broken_twin", "--functions", "header_hash"],
        env=dict(env, BROKEN_TWIN="flip", BROKEN_TWIN_HEIGHTS=str(height)),
        capture_output=True, text=True, timeout=300)
    assert broken.returncode == 1, broken.stderr

    start_prometheus()  # its first scrape of the Pushgateway finds the run's final values
    until("Prometheus to scrape parity serve",
          lambda: query(ports, 'up{job="parity"} == 1'), timeout=60)
    until("the pushed counter", lambda: query(
        ports, 'dual_run_mismatches_total{job="parity_shadow", function="header_hash"}'),
        timeout=60)
    # Prometheus never held a 0 for this series, and increase() sees no rise
    low = query(ports, 'min_over_time(dual_run_mismatches_total{job="parity_shadow", '
                       'function="header_hash"}[10m])')
    assert [float(r["value"][1]) for r in low] == [1.0]
    rise = query(ports, 'increase(dual_run_mismatches_total{job="parity_shadow", '
                        'function="header_hash"}[5m])')
    assert [float(r["value"][1]) for r in rise] in ([], [0.0])

    alerts = until("the P0 alert to fire", lambda: [
        a for a in get_json(f"http://127.0.0.1:{ports['prom']}/api/v1/alerts")["data"]["alerts"]
        if a["labels"]["alertname"] == "ParityMismatch" and a["state"] == "firing"])
    assert alerts[0]["labels"]["action"] == "rollback" and alerts[0]["labels"]["severity"] == "P0"
    assert alerts[0]["labels"]["function"] == "header_hash"

    mode = until("the webhook to demote the serving process",
                 lambda: (m := get_json(serve_url + "/mode"))["name"] == "shadow" and m)
    assert mode["mode"] == 1
    assert "ParityMismatch" in mode["history"][-1]["reason"]
    assert mode["history"][-1]["from"] == "refactored_only"
    from parity.state import ModeState
    saved = ModeState(tmp / "mode.json")  # recorded durably
    assert saved.mode == 1 and "ParityMismatch" in saved.history[-1]["reason"]

    # the serving process compared nothing itself
    text = urllib.request.urlopen(serve_url + "/metrics", timeout=5).read().decode()
    assert "dual_run_comparisons_total" not in text or all(
        line.endswith(" 0.0") for line in text.splitlines()
        if line.startswith("dual_run_comparisons_total"))

    # the batch run's last-run gauges reached Prometheus through the Pushgateway
    blocks = until("the last-run gauges", lambda: query(ports, "parity_last_run_blocks"))
    assert float(blocks[0]["value"][1]) == 1000
    until("the finished timestamp of the last run", lambda: [
        r for r in query(ports, "parity_last_run_finished_timestamp_seconds")
        if float(r["value"][1]) > 0])
    grouping = blocks[0]["metric"]
    assert "run_id" not in grouping and grouping["corpus"] == "sample-valid"

"""The live exporter's rules: promtool checks and unit tests, metric names exported."""
import yaml

from parity.live import LiveMetrics
from parity.percall import Controller
from parity.state import ModeState
from tests.conftest import ROOT
from tests.servers import tool

PROM = ROOT / "monitoring" / "prometheus"


def run(*args, cwd=None):
    import subprocess
    out = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_rules_check_and_unit_tests():
    assert "SUCCESS" in run(tool("promtool"), "check", "rules", str(PROM / "live_alerts.yml"))
    assert "SUCCESS" in run(tool("promtool"), "test", "rules", "live_alerts_test.yml", cwd=PROM)


def test_prometheus_loads_the_live_rules():
    cfg = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert "live_alerts.yml" in cfg["rule_files"]


def test_every_metric_the_rules_use_is_exported():
    import re
    c = Controller(ModeState(None))
    LiveMetrics(c.metrics)
    names = {s.name for fam in c.metrics.registry.collect() for s in fam.samples}
    exprs = [r["expr"] for g in yaml.safe_load((PROM / "live_alerts.yml").read_text())["groups"]
             for r in g["rules"]]
    used = {m for e in exprs for m in re.findall(r"\b([a-z_]+_(?:total|bucket|bytes))\b", e)}
    assert used == {"epoch_replay_bypass_successful_total", "cache_persist_duration_seconds_bucket",
                    "process_resident_memory_bytes"}
    assert used <= names
    assert {"epoch_replay_detected_total", "epoch_replay_cache_size"} <= names

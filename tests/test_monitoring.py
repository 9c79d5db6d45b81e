"""Static checks of monitoring/: promtool, amtool, and the Grafana dashboard."""
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from parity.metrics import Metrics
from tests.servers import tool

MON = Path(__file__).resolve().parent.parent / "monitoring"
PROM = MON / "prometheus"
AM = MON / "alertmanager" / "alertmanager.yml"
DASH = MON / "grafana" / "dashboards" / "parity-validation.json"


def run(*argv, cwd=None, stdout_only=False):
    result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout if stdout_only else result.stdout + result.stderr


def test_promtool_check_config():
    assert "SUCCESS" in run(tool("promtool"), "check", "config", str(PROM / "prometheus.yml"))


def test_promtool_check_rules():
    out = run(tool("promtool"), "check", "rules", str(PROM / "alerts.yml"),
              str(PROM / "recording.yml"))
    assert "4 rules found" in out and "2 rules found" in out


def test_promtool_test_rules():
    assert "SUCCESS" in run(tool("promtool"), "test", "rules", "alerts_test.yml", cwd=PROM)


def test_p0_rule_shape():
    rules = {r["alert"]: r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
             for r in g["rules"]}
    p0 = rules["ParityMismatch"]
    assert p0["labels"] == {"severity": "P0", "action": "rollback"}
    assert "increase(dual_run_mismatches_total" in p0["expr"] and p0["keep_firing_for"]
    # a first push already above 0, and a batch run that just ended, page as well
    assert "unless (dual_run_mismatches_total offset 5m)" in p0["expr"]
    assert "parity_last_run_finished_timestamp_seconds" in p0["expr"]
    assert all(r["annotations"]["runbook_url"].startswith("monitoring/RUNBOOK.md#")
               for r in rules.values())
    anchors = re.findall(r"^## (\w+)", (MON / "RUNBOOK.md").read_text(), re.M)
    for r in rules.values():
        assert r["annotations"]["runbook_url"].split("#")[1] in {a.lower() for a in anchors}


def test_alerts_use_only_exported_metrics():
    """Every metric an alert reads is one parity exports: the harness's metrics, the
    recording rules, a batch run's last-run gauges, or Prometheus' own ``up``."""
    from parity.corpus import open_corpus
    from parity.exporters import BatchExporter
    exported, _ = _exported()
    corpus = open_corpus(MON.parent / "corpora" / "sample-valid")
    last_run = BatchExporter(Metrics(), None, None, corpus).last_run
    exported |= {s.name for f in text_string_to_metric_families(generate_latest(last_run)
                                                                 .decode()) for s in f.samples}
    for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]:
        for r in g["rules"]:
            expr = re.sub(r"\boffset\s+\d+[smhdwy]\b", "", r["expr"])
            for name in _metric_names(expr) - {"up", "absent", "time", "job", "corpus"}:
                assert name in exported, f"{name} in {r['alert']} is not exported"


def test_amtool_check_config():
    assert "SUCCESS" in run(tool("amtool"), "check-config", str(AM))


@pytest.mark.parametrize("labels, receivers", [
    (["alertname=ParityMismatch", "severity=P0", "action=rollback"], "parity-rollback,pager"),
    (["alertname=Watchdog", "severity=none"], "watchdog"),
    (["alertname=ParityExporterDown", "severity=P1"], "chat-oncall"),
    (["alertname=ParitySpeedupLow", "severity=P3"], "chat-performance"),
    (["alertname=Other", "severity=info"], "default"),
])
def test_amtool_routes(labels, receivers):
    out = run(tool("amtool"), "config", "routes", "test", f"--config.file={AM}", *labels,
              stdout_only=True)
    assert out.strip().splitlines()[-1] == receivers


def test_rollback_route_first_and_continues():
    cfg = yaml.safe_load(AM.read_text())
    first = cfg["route"]["routes"][0]
    assert first["receiver"] == "parity-rollback" and first["continue"] is True
    hook = next(r for r in cfg["receivers"] if r["name"] == "parity-rollback")
    assert hook["webhook_configs"][0]["send_resolved"] is False
    assert hook["webhook_configs"][0]["url"].endswith("/alertmanager")


# ---- dashboard ----

GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "1m", "$function": ".+"}
FUNCTIONS = {"rate", "increase", "irate", "sum", "max", "min", "avg", "histogram_quantile",
             "by", "without", "on", "ignoring", "and", "or", "unless", "round", "vector", "changes"}


def dashboard():
    return json.loads(DASH.read_text())


def exprs():
    d = dashboard()
    return [t["expr"] for p in d["panels"] for t in p.get("targets", [])] + \
        [a["expr"] for a in d["annotations"]["list"] if "expr" in a]


def test_dashboard_shape():
    d = dashboard()
    assert d["uid"] == "coinjecture-parity" and d["refresh"] == "10s" and d["id"] is None
    assert any(v["type"] == "datasource" for v in d["templating"]["list"])
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in d["panels"]}
    for want in ("Match rate", "Total comparisons", "Total mismatches", "Active codec mode",
                 "Match rate over time"):
        assert want in titles
    match = next(p for p in d["panels"] if p["title"] == "Match rate")
    assert match["fieldConfig"]["defaults"]["decimals"] == 8


def _concrete(expr):
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    return expr


def test_dashboard_queries_parse(tmp_path):
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": _concrete(e)} for i, e in enumerate(exprs())]}]}
    (tmp_path / "q.yml").write_text(yaml.safe_dump(rules))
    assert "SUCCESS" in run(tool("promtool"), "check", "rules", str(tmp_path / "q.yml"))


def _exported():
    from parity.live import LiveMetrics
    from parity.percall import Controller
    from parity.state import ModeState
    controller = Controller(ModeState(None))  # a serving process's registry, live included
    LiveMetrics(controller.metrics)
    text = generate_latest(controller.metrics.registry).decode()
    names, counters = set(), set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            names.add(s.name)
        if fam.type == "counter":
            counters.add(fam.name + "_total")
    recorded = {r["record"] for g in yaml.safe_load((PROM / "recording.yml").read_text())["groups"]
                for r in g["rules"]}
    return names | recorded, counters


def _metric_names(expr):
    expr = re.sub(r"\{[^}]*\}", "", re.sub(r'"[^"]*"', "", expr))
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # grouping labels, not metrics
    return {m for m in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)
            if m not in FUNCTIONS and not m.startswith("__")}


def test_dashboard_uses_only_exported_metrics():
    exported, _ = _exported()
    for e in exprs():
        for name in _metric_names(e):
            assert name in exported, f"{name} in {e!r} is not exported"


def _enclosing_function(expr, pos):
    depth = 0
    for i in range(pos - 1, -1, -1):
        if expr[i] == ")":
            depth += 1
        elif expr[i] == "(":
            if depth == 0:
                return re.search(r"([a-z_]*)\s*$", expr[:i]).group(1)
            depth -= 1
    return None


def test_dashboard_counters_only_in_rate_or_increase():
    _, counters = _exported()
    seen = 0
    for e in exprs():
        for c in counters:
            for m in re.finditer(re.escape(c) + r"\b", e):
                seen += 1
                assert _enclosing_function(e, m.start()) in ("rate", "increase", "irate"), e
    assert seen >= 6

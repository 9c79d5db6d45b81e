"""The JSON report of a shadow run and its terminal summary table."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parity.outputs import OutputFile, json_has

if TYPE_CHECKING:
    from parity.summary import RunSummary

REPORT_RECORDS = 1000
REPORT_FORMAT = "parity-report"


def cpu_name() -> str:
    """The CPU model (named beside every figure), e.g. from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_report(summary: RunSummary, records: list[dict], wall: float, log_path: str) -> dict:
    """The JSON report: built from the run's summary and its mismatch records alone."""
    # imported here, not at the top: checking ``--report`` before a run must not hold the
    # run's start up (0.15 s) before the corpus checksums begin
    import numba
    functions: dict[str, dict[str, Any]] = {}
    for fn, s in summary.stats.items():
        functions[fn] = {
            "comparisons": s.comparisons, "mismatches": s.mismatches, "errors": s.errors,
            "match_rate": s.match_rate, "legacy_seconds": s.legacy_seconds,
            "refactored_seconds": s.refactored_seconds, "legacy_calls": s.legacy_calls,
            "refactored_calls": s.refactored_calls, "speedup": s.speedup(),
        }
        if fn in summary.legacy_only:
            functions[fn]["legacy_only"] = summary.legacy_only[fn]
    by_function: dict[str, list[int]] = {}
    for r in records:
        by_function.setdefault(r["function"], []).append(r["block"])
    warm = sum(summary.warmup.values())
    return {
        "format": REPORT_FORMAT, "corpus": summary.corpus, "blocks": summary.blocks,
        "mode": {"start": summary.mode_start.label, "end": summary.mode.label,
                 "changes": summary.mode_changes},
        "twins": summary.twins,
        "functions": functions,
        "legacy_only": dict(summary.legacy_only),
        "served": {"valid": summary.served_valid, "invalid": summary.served_invalid,
                   "rules": {n: c for n, c in summary.top_rules(len(summary.rule_counts))}},
        "mismatched_blocks": {fn: sorted(set(b)) for fn, b in by_function.items()},
        "mismatch_records": records[:REPORT_RECORDS], "mismatch_records_total": len(records),
        "mismatch_log": log_path,
        "replays_served": summary.replays_served,
        "warnings": summary.warnings,
        "timing": {"wall_seconds": wall, "kernel_seconds": summary.kernel_seconds,
                   "harness_seconds": max(0.0, wall - summary.kernel_seconds - warm),
                   "warmup_seconds": summary.warmup, "repeat": summary.repeat},
        "machine": {"python": platform.python_version(), "numba": numba.__version__,
                    "threads": numba.get_num_threads(), "cpu": cpu_name()},
        "finished": time.time(),
    }


def report_output(path: str | Path) -> OutputFile:
    """``--report``: replaced only when it is a report parity wrote (and --force)."""
    return OutputFile(path, "--report", json_has("format", REPORT_FORMAT))


def write_report(report: dict, path: str | Path, force: bool = False) -> None:
    text = json.dumps({"format": REPORT_FORMAT, **report}, indent=2, default=str) + "\n"
    report_output(path).write(force, lambda tmp: tmp.write_text(text))


def _fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.8f}"


def render_table(report: dict) -> str:
    head = (f"{'function':<12} {'compared':>10} {'mismatch':>9} {'match rate':>11} "
            f"{'legacy s':>9} {'refact. s':>9} {'speedup':>8} {'spread p10-p90':>15}")
    lines = [f"parity shadow {report['corpus']}: {report['blocks']:,} blocks, mode "
             f"{report['mode']['start']}" + (f" -> {report['mode']['end']}"
                                             if report['mode']['end'] != report['mode']['start'] else ""),
             head, "-" * len(head)]
    for fn, f in report["functions"].items():
        if f.get("legacy_only"):
            lines.append(f"{fn:<12} legacy only ({f['legacy_only']}): not compared, legacy "
                         f"served, {f['legacy_seconds']:.4f} s")
            continue
        sp = f["speedup"]
        speed = f"{sp['overall']:.1f}x" if sp else "-"
        spread = f"{sp['p10']:.1f}-{sp['p90']:.1f}x" if sp else "-"
        lines.append(f"{fn:<12} {f['comparisons']:>10,} {f['mismatches']:>9,} "
                     f"{_fmt_rate(f['match_rate']):>11} {f['legacy_seconds']:>9.4f} "
                     f"{f['refactored_seconds']:>9.4f} {speed:>8} {spread:>15}")
    if not report["blocks"]:
        lines.append("the corpus holds no blocks: nothing was run or compared")
    outside = [fn for fn, f in report["functions"].items() if f["speedup"]
               and not f["speedup"]["p10"] <= f["speedup"]["overall"] <= f["speedup"]["p90"]]
    if outside:
        lines.append(f"note: {', '.join(outside)} speedup lies outside its p10-p90 spread: the "
                     "speedup is total legacy over total refactored time, so the slowest shards "
                     "weigh most, while the spread ranks the shards' own ratios, each counted once")
    served = report.get("served")
    if served and served["valid"] + served["invalid"]:
        rules = ", ".join(f"{n} {c:,}" for n, c in list(served["rules"].items())[:3])
        lines.append(f"blocks served: {served['valid']:,} valid, {served['invalid']:,} invalid"
                     + (f" (most broken rules: {rules})" if rules else ""))
    for w in report.get("warnings", []):
        lines.append(f"warning: {w}")
    t = report["timing"]
    warm = ", ".join(f"{k} {v:.2f}s" for k, v in t["warmup_seconds"].items())
    lines.append(f"warm-up (compile or cache load, not timed above): {warm or '-'}; wall "
                 f"{t['wall_seconds']:.2f}s, harness {t['harness_seconds']:.2f}s")
    for change in report["mode"]["changes"]:
        lines.append(f"mode change: {change['from']} -> {change['to']} ({change['reason']})")
    total = report["mismatch_records_total"]
    if total:
        lines.append(f"{total} mismatch record(s) in {report['mismatch_log']}; first:")
        for r in report["mismatch_records"][:5]:
            where = (f"block {r['block']}" + (f" (height {r['height']})" if "height" in r else ""))
            detail = r.get("differing_rules") or (
                f"byte {r.get('first_byte')} bit {r.get('first_bit')}, "
                f"{r.get('differing_bits')} bit(s)" if r.get("kind") is None else r.get("kind"))
            lines.append(f"  {r['function']} {where}: {detail}; replay: {r.get('replay', '-')}")
    for r in report.get("reproducers", []):
        if "file" in r:
            lines.append(f"reproducer: {r['file']} ({r['function']}, block {r['block']}; "
                         f"{r['tests']} candidates in {r['seconds']:.2f}s)")
        else:
            lines.append(f"reproducer: none for {r['function']} block {r['block']}: {r['error']}")
    return "\n".join(lines)

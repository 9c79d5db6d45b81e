"""The self-contained HTML report of a shadow run: one file, no network, no script.

Built from a run's summary, its JSON report and its mismatch records (the same inputs
whether it comes from ``parity shadow --html`` or ``parity report RUN_DIR --html``):
the run, per-function counts and speedups with a per-shard plot, the blocks served,
and the first N mismatch records as aligned hex with the differing bytes and bits
marked, the block's decoded header, the merkle path and the replay command; the
records beyond N are counted by function and field.
"""
from __future__ import annotations

import platform
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parity import htmlplots
from parity.htmlrecords import e, record_fields, render_record, summarize, table
from parity.outputs import OutputFile

if TYPE_CHECKING:
    from parity.runview import CorpusBlocks
    from parity.summary import RunSummary

GENERATOR = "parity-report"
DEFAULT_RECORDS = 50
_SIGNATURE = re.compile(rb'<meta name="generator" content="parity-report"\s*/?>')
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccd}
h3{font-size:15px;margin:0 0 6px}
nav a{margin-right:14px}
table{border-collapse:collapse;background:#fff;margin:6px 0}
td,th{border:1px solid #d5d8de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.kv{width:100%}.kv th{width:11%}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:700;color:#fff}
.fail{background:#c62828}.pass{background:#2e7d32}
.warn{background:#fff4d6;border:1px solid #e0c36a;padding:6px 10px;margin:6px 0}
.plot{background:#fff;border:1px solid #d5d8de;margin:8px 0;padding:4px;max-width:900px}
.plot svg{width:100%;height:auto}.row{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}
.row .plot{flex:1;min-width:420px}
code,.mono,.hx,.bitrow{font-family:ui-monospace,'DejaVu Sans Mono',Menlo,Consolas,monospace}
.rec{background:#fff;border:1px solid #cfd3da;border-left:4px solid #c62828;margin:14px 0;
padding:10px 14px}
.hexdiff{margin:6px 0;font-size:13px}.hx{white-space:pre;line-height:1.6}
.hx .off{color:#8a8f99;margin-right:10px}.hx .who{display:inline-block;width:88px;color:#555}
.hx.legacy{margin-top:4px}
.b{padding:1px 2px;margin-right:2px;border-radius:2px}.b.g{margin-right:9px}
.b.d{background:#ffd54f;color:#7a0000;font-weight:700;outline:1px solid #c62828}
.b.gap{color:#bbb}
.bits{margin:4px 0 0;font-size:13px}.bitrow{margin-right:18px}
.bit{padding:0 2px}.bit.d{background:#c62828;color:#fff;font-weight:700;border-radius:2px}
.rules li{margin:0}.lo{color:#1565c0}.ro{color:#c62828}
details>summary{cursor:pointer;color:#345}
.fields td:first-child{color:#555}
"""


def html_signed(path: Path) -> bool:
    """A file whose head carries parity's generator meta tag."""
    try:
        with open(path, "rb") as f:
            return _SIGNATURE.search(f.read(4096)) is not None
    except OSError:
        return False


def html_output(path: str | Path) -> OutputFile:
    """``--html``: replaced only when it is a report parity wrote (and --force)."""
    return OutputFile(path, "--html", html_signed)


def write_html(text: str, path: str | Path, force: bool = False) -> None:
    html_output(path).write(force, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _kv(rows: Sequence[tuple[str, str]]) -> str:
    """Key-value pairs, two pairs a row."""
    cells = [f"<th>{e(k)}</th><td>{v}</td>" for k, v in rows] + ["<th></th><td></td>"]
    return '<table class="kv">' + "".join(f"<tr>{cells[i]}{cells[i + 1]}</tr>"
                                          for i in range(0, len(rows), 2)) + "</table>"


def _plot(svg: str | None) -> str:
    return f'<div class="plot">{svg}</div>' if svg else ""




def _num(x: Any, fmt: str = ",") -> str:
    return "-" if x is None else format(x, fmt)


def _when(t: float | None) -> str:
    return "-" if not t else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f} s"


def run_section(report: dict, summary: RunSummary, source: str) -> str:
    t, m, mode = report["timing"], report["machine"], report["mode"]
    eng = report.get("engine") or {"name": "local"}
    engine = e(eng.get("name", "local")) + "".join(
        f", {e(k)} {e(v)}" for k, v in eng.items() if k not in ("name", "corpus_id") and v)
    warm = ", ".join(f"{e(k)} {v:.2f} s" for k, v in (t.get("warmup_seconds") or {}).items())
    rows = [("corpus", f"<code>{e(report['corpus'])}</code>"),
            ("blocks", f"{summary.blocks_done:,} of {report['blocks']:,}"),
            ("legacy twin", f"<code>{e(report['twins'].get('legacy'))}</code>"),
            ("refactored twin", f"<code>{e(report['twins'].get('refactored'))}</code>"),
            ("mode", e(mode["start"]) + (f" → {e(mode['end'])}" if mode["end"] != mode["start"]
                                         else "")),
            ("engine", engine), ("timed calls per shard (repeat)", e(t.get("repeat", 1))),
            ("timings", f"wall {_secs(t.get('wall_seconds'))}, both twins' kernels "
                        f"{_secs(t.get('kernel_seconds'))}, harness "
                        f"{_secs(t.get('harness_seconds'))}; warm-up (compile or cache load, "
                        f"not timed): {warm or '-'}"),
            ("machine", f"{e(m.get('cpu'))}; Python {e(m.get('python'))}, numba "
                        f"{e(m.get('numba'))}, {e(m.get('threads'))} thread(s)"
                        + (f" <i>({e(m['note'])})</i>" if m.get("note") else "")),
            ("mismatch log", f"<code>{e(report.get('mismatch_log'))}</code>"),
            ("finished", _when(report.get("finished"))),
            ("this page", f"{e(source)}, {_when(time.time())} on {e(platform.node())}")]
    out = ["<h2 id='run'>Run</h2>", _kv(rows)]
    if mode["changes"]:
        out.append("<h3>Mode changes</h3>" + table(
            ("time", "from", "to", "reason"),
            [(_when(c.get("time")), e(c["from"]), e(c["to"]), e(c["reason"]))
             for c in mode["changes"]]))
    out += [f'<div class="warn">warning: {e(w)}</div>' for w in report.get("warnings", [])]
    return "".join(out)


def functions_section(report: dict, summary: RunSummary) -> str:
    rows = []
    for fn, f in report["functions"].items():
        sp = f.get("speedup") or {}
        rate = "-" if f["match_rate"] is None else f"{f['match_rate']:.8f}"
        name = e(fn) + (f" (legacy only: {e(f['legacy_only'])})" if f.get("legacy_only")
                         else "")
        rows.append((name, _num(f["comparisons"]), _num(f["mismatches"]), _num(f["errors"]), rate,
                     f"{f['legacy_seconds']:.4f}", f"{f['refactored_seconds']:.4f}",
                     f"{sp['overall']:.2f}x" if sp else "-",
                     f"{sp['median']:.2f}x" if sp else "-",
                     f"{sp['p10']:.2f}–{sp['p90']:.2f}x" if sp else "-",
                     f"{sp['min']:.2f}–{sp['max']:.2f}x" if sp else "-",
                     _num(sp.get("samples"))))
    head = ("function", "compared", "mismatches", "errors", "match rate", "legacy s",
            "refactored s", "speedup", "median", "p10–p90", "min–max", "shards timed")
    return ("<h2 id='functions'>Functions</h2>" + table(head, rows, set(range(1, 12)))
            + _plot(htmlplots.speedup_plot(summary.stats)))


def served_section(report: dict, summary: RunSummary) -> str:
    s = report.get("served") or {}
    total = s.get("valid", 0) + s.get("invalid", 0)
    if not total:
        return "<h2 id='served'>Blocks served</h2><p>No statuses served (validate not run).</p>"
    rules = list((s.get("rules") or {}).items())
    rows = [(e(n), _num(c), f"{c / total:.4%}") for n, c in rules]
    return ("<h2 id='served'>Blocks served</h2>"
            f"<p><b>{s['valid']:,}</b> valid, <b>{s['invalid']:,}</b> invalid of {total:,} "
            f"served; {report.get('replays_served', 0):,} commitment replays refused.</p>"
            + ('<div class="row">' + table(("rule broken", "blocks", "share of served"), rows,
                                           {1, 2})
               + _plot(htmlplots.rules_plot(rules[:10])) + "</div>" if rules else ""))


def mismatches_section(report: dict, summary: RunSummary, records: Sequence[dict],
                       blocks: CorpusBlocks | None, n: int) -> str:
    out = ["<h2 id='mismatches'>Mismatches</h2>"]
    counted = sum(f["mismatches"] + f["errors"] for f in report["functions"].values())
    if not records and not counted:
        return out[0] + "<p>None: every compared output matched bit for bit.</p>"
    out.append(f"<p>{counted:,} mismatching output(s) counted; {len(records):,} record(s) in the "
               f"mismatch log" + (" (records are capped by --max-records; the counts are exact)"
                                  if counted > len(records) else "") + ".</p>")
    out.append(_plot(htmlplots.mismatch_plot(records, summary.blocks)))
    if blocks is not None and blocks.error:
        out.append(f'<div class="warn">header fields unavailable: {e(blocks.error)}</div>')
    shown = records[:n]
    if shown:
        out.append(f"<h3>The first {len(shown):,} record(s)</h3>")
        out += [render_record(k, r, blocks) for k, r in enumerate(shown)]
    rest = records[n:]
    if rest:
        fields = {f for r in rest for f in record_fields(r)}
        out.append(f"<h3 id='beyond'>The other {len(rest):,} record(s), by function and field "
                   f"({len(fields):,} fields)</h3>" + summarize(rest))
    return "".join(out)


def render_page(report: dict, summary: RunSummary, records: Sequence[dict],
                blocks: CorpusBlocks | None = None, n_records: int = DEFAULT_RECORDS,
                source: str = "parity shadow") -> str:
    """The whole page: a self-contained HTML document (inline CSS and SVG, no script)."""
    name = Path(str(report["corpus"])).name or str(report["corpus"])
    bad = sum(f["mismatches"] + f["errors"] for f in report["functions"].values())
    badge = (f'<span class="badge fail">{bad:,} mismatch(es)</span>' if bad
             else '<span class="badge pass">parity</span>')
    body = [f"<h1>parity shadow report: {e(name)} {badge}</h1>",
            "<nav><a href='#run'>Run</a><a href='#functions'>Functions</a>"
            "<a href='#mismatches'>Mismatches</a><a href='#served'>Blocks served</a></nav>",
            run_section(report, summary, source), functions_section(report, summary),
            mismatches_section(report, summary, records, blocks, max(0, n_records)),
            served_section(report, summary)]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="generator" content="{GENERATOR}">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>parity report: {e(name)}</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")

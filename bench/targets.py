"""The targets table of issue 14: every row with its target, the figure ``make bench``
measured and met / missed ("not measured" when this run has no figure for it)."""
from __future__ import annotations

from collections.abc import Callable

Row = tuple[str, str, str, bool | None]  # what, target, measured, met


def _speedup(rows: list[dict], fn: str, n: int) -> float | None:
    by = {(r["function"], r["impl"], r["n"]): r["seconds"] for r in rows}
    lg, jt = by.get((fn, "legacy", n)), by.get((fn, "jit", n))
    return lg / jt if lg and jt else None


def _mode3(e: dict) -> Row:
    m = e.get("mode3")
    what = "`parity shadow --mode 3`, 1M blocks, whole process"
    target = "<= 1.25x (kernel time + reading the corpus), >= 300,000 blocks/s"
    if not m:
        return what, target, "not measured", None
    return (what, target, f"{m['ratio']:.2f}x ({m['wall_seconds']:.2f} s vs kernels "
            f"{m['kernel_seconds']:.2f} s + reading {m['read_seconds']:.2f} s), "
            f"{m['blocks_per_s']:,.0f} blocks/s",
            m["ratio"] <= m["ratio_target"] and m["blocks_per_s"] >= m["blocks_per_s_target"])


def _harness(e: dict) -> Row:
    runs = [r for r in e.get("shadow", []) if r["blocks"] == 1_000_000]
    what, target = "harness overhead in mode 1", "<= 5% of legacy time"
    if not runs:
        return what, target, "not measured", None
    o = runs[0]["overhead_vs_legacy"]
    return what, target, f"{o:.1%} (1M blocks)", o <= 0.05


def _per_call(e: dict, modes: tuple[str, str], limit: float) -> Row:
    pc = e.get("per_call_overhead")
    what = f"per call, modes {'0 and 3' if limit < 1 else '1 and 2'}"
    target = f"<= {limit:g} us beyond the raw call{'' if limit < 1 else 's'}"
    if not pc:
        return what, target, "not measured", None
    us = [pc["overhead_us"][m] for m in modes]
    return (what, target, ", ".join(f"{m} {u:.2f} us" for m, u in zip(modes, us)),
            max(us) <= limit)


def _startup(e: dict) -> Row:
    s = e.get("startup")
    what = "first run on a fresh clone"
    target = "every kernel compiled in <= 45 s, progress shown"
    if not s:
        return what, target, "not measured", None
    return what, target, f"{s['cold_seconds']:.1f} s (cold numba cache)", s["cold_seconds"] <= 45


def _rss(e: dict) -> Row:
    rss = {r["blocks"]: r["peak_rss_mib"] for r in e.get("shadow", [])}
    what = "peak RSS, `parity shadow` mode 1"
    target = "1M vs 5M within 10%, both <= 600 MiB, exact replay detection kept"
    if 1_000_000 not in rss or 5_000_000 not in rss:
        got = ", ".join(f"{b:,}: {m:.0f} MiB" for b, m in sorted(rss.items())) or "not measured"
        return what, target, got + " (needs 1M and 5M)", None
    a, b = rss[1_000_000], rss[5_000_000]
    return (what, target, f"1M {a:.0f} MiB, 5M {b:.0f} MiB ({b / a - 1:+.1%})",
            abs(b / a - 1) <= 0.10 and max(a, b) <= 600)


def _validation(rows: list[dict], e: dict) -> Row:
    what, target = "validation, one batch", "1M blocks >= 90% of the 100k speedup"
    b = e.get("batch")
    if b:  # legacy and JIT at both sizes, back to back in each round
        rounds = ", ".join(f"{r:.0%}" for r in b["ratios"])
        return (what, target, f"{b['speedup_large']:.1f}x vs {b['speedup_small']:.1f}x "
                f"({b['ratio']:.0%}, median of {len(b['ratios'])} rounds: {rounds})",
                b["ratio"] >= 0.9)
    small, big = _speedup(rows, "validate", 100_000), _speedup(rows, "validate", 1_000_000)
    if small is None or big is None:
        return what, target, "not measured", None
    return what, target, f"{big:.1f}x vs {small:.1f}x ({big / small:.0%})", big >= 0.9 * small


def _contention(e: dict) -> Row:
    c = e.get("contention")
    what = "under one competing CPU-bound process"
    target = "every JIT speedup >= 70% of its idle value"
    if not c:
        return what, target, "not measured", None
    got = ", ".join(f"{fn} {f['busy_speedup']:.1f}x / {f['idle_speedup']:.1f}x "
                    f"({f['retained']:.0%})" for fn, f in c["functions"].items())
    share = c["competitor_core_share"]
    note = "" if share >= 0.8 else f"; host not idle (the competitor got {share:.0%} of a core)"
    return what, target, f"busy / idle: {got}{note}", c["met"]


def _dask(e: dict) -> Row:
    from bench.dask_scaling import describe, met
    d = e.get("dask")
    what = "Dask, 2 local workers vs 1 process, 1M blocks"
    target = ">= 1.85x; driver peak RSS <= 300 MiB"
    if not d:
        return what, target, "not measured", None
    return what, target, describe(d) + ("" if d["blocks"] == 1_000_000 else
                                        f" ({d['blocks']:,} blocks)"), met(d)


ROWS: tuple[Callable[[list[dict], dict], Row], ...] = (
    lambda rows, e: _mode3(e),
    lambda rows, e: _harness(e),
    lambda rows, e: _per_call(e, ("legacy_only", "refactored_only"), 0.5),
    lambda rows, e: _per_call(e, ("shadow", "refactored_primary"), 2.0),
    lambda rows, e: _contention(e),
    lambda rows, e: _startup(e),
    lambda rows, e: _rss(e),
    _validation,
    lambda rows, e: _dask(e),
)


def markdown(rows: list[dict], extras: dict) -> str:
    lines = ["## Targets (issue 14)\n", "| what | target | measured | |", "|---|---|---|---|"]
    for make in ROWS:
        what, target, got, met = make(rows, extras)
        verdict = "not measured" if met is None else ("met" if met else "missed")
        lines.append(f"| {what} | {target} | {got} | {verdict} |")
    return "\n".join(lines) + "\n"

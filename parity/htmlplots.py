"""The HTML report's plots, drawn with matplotlib and inlined as SVG (fonts as paths, so
the page needs no font and no network)."""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from parity.stats import FunctionStats

RASTER_ABOVE = 3000  # points per plot beyond which lines are embedded as an image
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _figure(height: float = 3.0, width: float = 9.0) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure  # no pyplot: no global backend state
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _svg(fig: Figure, title: str) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog), labelled ``title``."""
    import matplotlib
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": title}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    svg = text[text.index("<svg"):]
    return svg.replace("<svg ", f'<svg role="img" aria-label="{title}" ', 1)


def speedup_ratios(stats: FunctionStats) -> np.ndarray:
    """Legacy time over refactored time, one value per timed shard call pair."""
    if not stats.pairs:
        return np.zeros(0)
    p = np.asarray(stats.pairs, dtype=float)
    ok = p[:, 1] > 0
    return p[ok, 0] / p[ok, 1]


def speedup_plot(stats: Mapping[str, FunctionStats]) -> str | None:
    """Per-shard speedup of every function with timings, log scale; None without any."""
    series = {fn: speedup_ratios(s) for fn, s in stats.items()}
    series = {fn: r for fn, r in series.items() if r.size}
    if not series:
        return None
    fig, ax = _figure()
    raster = sum(r.size for r in series.values()) > RASTER_ABOVE
    for k, (fn, r) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        ax.plot(np.arange(r.size), r, marker="." if r.size <= 200 else None, linewidth=1,
                color=color, label=fn, rasterized=raster)
        overall = stats[fn].legacy_seconds / stats[fn].refactored_seconds \
            if stats[fn].refactored_seconds > 0 else None
        if overall:
            ax.axhline(overall, color=color, linestyle="--", linewidth=0.8)
    ax.set_yscale("log")
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("shard (timed call pair, in run order)")
    ax.set_ylabel("speedup (legacy s / refactored s)")
    ax.set_title("Per-shard speedup (dashed: overall)", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return _svg(fig, "per-shard speedup")


def mismatch_plot(records: Sequence[dict], blocks: int) -> str | None:
    """Where in the chain the mismatch records fall, per function (a histogram)."""
    by_fn: dict[str, list[int]] = {}
    for r in records:
        by_fn.setdefault(r["function"], []).append(int(r["block"]))
    if not by_fn or blocks <= 0:
        return None
    fig, ax = _figure(2.6)
    bins = np.linspace(0, blocks, min(100, blocks) + 1).tolist()
    ax.hist(list(by_fn.values()), bins=bins, stacked=True, label=list(by_fn),
            color=[COLORS[k % len(COLORS)] for k in range(len(by_fn))])
    ax.set_xlim(0, blocks)
    ax.set_xlabel("block (position in the corpus)")
    ax.set_ylabel("mismatch records")
    ax.set_title("Mismatch records along the chain", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return _svg(fig, "mismatch records along the chain")


def rules_plot(top: Sequence[tuple[str, int]]) -> str | None:
    """The rules broken most among the served blocks (horizontal bars)."""
    if not top:
        return None
    fig, ax = _figure(0.7 + 0.22 * len(top), width=5.5)
    names = [n for n, _ in top][::-1]
    counts = [c for _, c in top][::-1]
    ax.barh(names, counts, color=COLORS[1])
    ax.set_xlabel("served blocks breaking the rule")
    ax.tick_params(axis="y", labelsize=8)
    return _svg(fig, "rules broken most")

"""``make bench``: the per-function suite plus bench/measure.py, written as JSON, a
Markdown table and PNG plots under bench/results."""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from parity.functions import FUNCTIONS  # every compared function
from parity.report import cpu_name

ROOT = Path(__file__).resolve().parent.parent


def run_suite(out: Path, sizes: str) -> list[dict]:
    raw = out / "pytest-benchmark.json"
    subprocess.run([sys.executable, "-m", "pytest", "bench/test_kernels.py", "-q",
                    "-p", "no:cacheprovider", f"--benchmark-json={raw}",
                    "--benchmark-disable-gc", "-o", "testpaths=bench"],
                   cwd=ROOT, check=True, env={**os.environ,
                                              "PARITY_BENCH_SIZES": sizes})
    rows = []
    for b in json.loads(raw.read_text())["benchmarks"]:
        e = b["extra_info"]
        st = b["stats"]
        rows.append({"function": e["function"], "impl": e["impl"], "n": e["n"],
                     "seconds": st["min"], "rounds": st["rounds"],
                     "throughput": e["n"] / st["min"],
                     # the spread of the repeats (error bars): interquartile range
                     "q1_seconds": st["q1"], "q3_seconds": st["q3"]})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| function | n | legacy items/s | JIT items/s | speedup |", "|---|---:|---:|---:|---:|"]
    by = {(r["function"], r["impl"], r["n"]): r for r in rows}
    for fn in FUNCTIONS:
        for n in sorted({r["n"] for r in rows if r["function"] == fn}):
            lg, jt = by.get((fn, "legacy", n)), by.get((fn, "jit", n))
            if lg and jt:
                lines.append(f"| {fn} | {n:,} | {lg['throughput']:,.0f} | {jt['throughput']:,.0f} "
                             f"| {lg['seconds'] / jt['seconds']:.1f}x |")
    return "\n".join(lines)


def plots(rows: list[dict], extras: dict, out: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = []
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    # one colour family per function: JIT dark and solid, legacy light and dashed
    families = dict(zip(FUNCTIONS, ("Blues", "Oranges", "Greens", "Purples", "Greys")))
    for fn in FUNCTIONS:
        cmap = plt.get_cmap(families.get(fn, "Greys"))
        for impl, style, shade, mark in (("legacy", "--", 0.5, "s"), ("jit", "-", 0.9, "o")):
            pts = sorted((r["n"], r) for r in rows if r["function"] == fn and r["impl"] == impl)
            if not pts:
                continue
            ns = [n for n, _ in pts]
            mid = [n / r["seconds"] for n, r in pts]
            # the point is the best repeat; the bar reaches down to the third quartile's rate
            lo = [max(0.0, m - n / r.get("q3_seconds", r["seconds"])) for m, (n, r) in zip(mid, pts)]
            hi = [0.0] * len(pts)
            axes[0].errorbar(ns, mid, yerr=[lo, hi], fmt=style, marker=mark, color=cmap(shade),
                             capsize=3, label=f"{fn} {impl}")
        lg = {r["n"]: r["seconds"] for r in rows if r["function"] == fn and r["impl"] == "legacy"}
        jt = {r["n"]: r["seconds"] for r in rows if r["function"] == fn and r["impl"] == "jit"}
        pts2 = sorted((n, lg[n] / jt[n]) for n in lg if n in jt)
        if pts2:
            axes[1].plot(*zip(*pts2), marker="o", color=cmap(0.9), label=fn)
            for n, v in pts2:
                axes[1].annotate(f"{v:.0f}x", (n, v), textcoords="offset points", xytext=(4, 4),
                                 fontsize=7, color=cmap(0.9))
    axes[0].set(xscale="log", yscale="log", xlabel="batch size (items)",
                ylabel="items/s, 1 thread (best; bars: down to 3rd quartile)",
                title="Throughput vs batch size")
    axes[1].set(xscale="log", yscale="log", xlabel="batch size (items)",
                ylabel="JIT speedup over legacy (best of repeats)", title="Speedup vs batch size")
    axes[1].axhline(1, color="black", lw=0.8, ls=":", label="1x: as fast as legacy")
    axes[1].axhline(10, color="red", lw=0.8, ls=":", label="10x: lowest CI gate floor")
    for ax in axes:
        ax.legend(fontsize=7, ncol=2 if ax is axes[0] else 1)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out / "throughput_speedup.png", dpi=100)
    names.append("throughput_speedup.png")
    scaling = extras.get("threads")
    if scaling:
        fig, ax = plt.subplots(figsize=(6, 4))
        fns = list(scaling)
        ax.bar(fns, [scaling[f]["scaling"] for f in fns])
        ax.axhline(1.8, color="red", lw=0.8, ls=":", label="target 1.8x")
        ax.set(ylabel="2 threads vs 1", title="JIT scaling with threads")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "thread_scaling.png", dpi=100)
        names.append("thread_scaling.png")
    return names


def render(rows: list[dict], extras: dict, machine: dict) -> str:
    parts = [f"# Benchmark report\n\nMachine: {machine['cpu']}, {machine['cores']} cores, "
             f"Python {machine['python']}, numba {machine['numba']}; taken {machine['date']}.\n",
             "## Legacy vs JIT, one thread\n", table(rows), ""]
    p = extras.get("package")
    if p:
        parts.append("## BLAKE3 compressions\n\n"
                     f"JIT header hashing: {p['jit_compressions_per_s'] / 1e6:.1f}M "
                     f"compressions/s; the `blake3` package on one 256 MiB buffer, max_threads=1: "
                     f"{p['package_compressions_per_s'] / 1e6:.1f}M/s; ratio {p['ratio']:.0%}.\n")
    t = extras.get("threads")
    if t:
        parts.append("## Threads\n\nEach kernel on 1 and 2 threads, timed alternately in rounds "
                     "(medians; each round's ratio listed).\n\n| kernel | 1 thread s | "
                     "2 threads s | scaling | rounds |\n|---|---:|---:|---:|---|")
        parts += [f"| {k} | {v['seconds_1']:.4f} | {v['seconds_2']:.4f} | {v['scaling']:.2f}x | "
                  + ", ".join(f"{r:.2f}" for r in v.get("scalings", [])) + " |"
                  for k, v in t.items()]
        parts.append("")
    s = extras.get("startup")
    if s:
        parts.append(f"## Start-up\n\nLoading and running every kernel once in a fresh process: "
                     f"cold numba cache {s['cold_seconds']:.1f}s (median of "
                     f"{', '.join(f'{c:.1f}' for c in s.get('cold_runs', []))}; two-process "
                     f"compile), warm cache {s['warm_seconds']:.2f}s "
                     f"(of which importing numpy and numba {s['python_numba_import_seconds']:.2f}s).\n")
    c = extras.get("per_call")
    if c:
        parts.append("## Per-call API, one header\n\n"
                     f"mode 3 (JIT): {c['refactored_only'] * 1e6:.2f} us/call; "
                     f"mode 0 (legacy): {c['legacy_only'] * 1e6:.2f} us/call; raw JIT "
                     f"{c['raw_jit'] * 1e6:.2f} us, raw legacy {c['raw_legacy'] * 1e6:.2f} us.\n")
    runs = extras.get("shadow")
    if runs:
        parts.append("## parity shadow\n\n| blocks | wall s | legacy s | JIT s | harness s | "
                     "harness / legacy | peak RSS MiB |\n|---:|---:|---:|---:|---:|---:|---:|")
        parts += [f"| {r['blocks']:,} | {r['wall_seconds']:.1f} | {r['legacy_seconds']:.1f} | "
                  f"{r['jit_seconds']:.2f} | {r['harness_seconds']:.2f} | "
                  f"{r['overhead_vs_legacy']:.1%} | {r['peak_rss_mib']:.0f} |" for r in runs]
        parts.append("")
    return "\n".join(parts) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--sizes", default="1,1000,100000,1000000")
    ap.add_argument("--shadow-blocks", default="1000000,5000000",
                    help="comma-separated corpus sizes for the parity shadow runs ('' to skip)")
    ap.add_argument("--dask-blocks", type=int, default=1_000_000,
                    help="corpus size of the Dask vs one process runs (0 to skip)")
    ap.add_argument("--dask-repeat", type=int, default=3)
    args = ap.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    import numba

    from bench import e2e, measure
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(),
               "python": platform.python_version(), "numba": numba.__version__,
               "date": time.strftime("%Y-%m-%d")}
    rows = run_suite(out, args.sizes)
    extras = {"package": measure.package_ratio(), "threads": measure.thread_scaling(),
              "startup": measure.startup(), "per_call": measure.per_call(),
              "per_call_overhead": e2e.per_call_overhead(), "mode3": e2e.mode3_end_to_end(),
              "batch": measure.batch_speedups()}
    extras["shadow"] = [measure.shadow_run(int(b)) for b in args.shadow_blocks.split(",") if b]
    from bench import contention, dask_scaling, live, rust
    extras["contention"] = contention.run()
    extras["dask"] = dask_scaling.run(args.dask_blocks, args.dask_repeat) if args.dask_blocks \
        else None
    extras["live"] = live.run()
    extras["rust"] = rust.run()  # needs `make rust-twin` (make bench builds it)
    (out / "results.json").write_text(json.dumps({"machine": machine, "kernels": rows,
                                                  **extras}, indent=2))
    plots(rows, extras, out)
    from bench.contention import markdown as contention_markdown
    from bench.live import markdown
    from bench.rust import markdown as rust_markdown
    from bench.targets import markdown as targets
    (out / "report.md").write_text(render(rows, extras, machine) + "\n" +
                                   targets(rows, extras) + "\n" +
                                   "## Under a competing CPU-bound process\n\n" +
                                   contention_markdown(extras["contention"]) + "\n" +
                                   markdown(extras["live"]) + "\n" +
                                   "## Rust twin (process boundary)\n\n" +
                                   rust_markdown(extras["rust"]) + "\n")
    print((out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

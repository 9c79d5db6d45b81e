"""Time to first find: ``parity fuzz`` against the hypothesis property suite.

For each planted twin of ``tests/planted`` (a bug behind a narrow trigger) and each of
``--seeds`` seeds, both tools get the same wall-clock budget and stop at their first
disagreement: ``parity fuzz`` (default functions, ``--max-findings 1``; the time is the
fuzzing child's, from its first input to the finding, so neither side counts twin loading)
and the property suite of the pytest plugin (``parity.pytest_plugin.suite``: header
hashes, merkle roots, whole chains from ``parity.strategies``), run round-robin in batches
of 100 examples with fresh seeds, shrinking off, until one fails. Writes
``fuzz_compare.json`` and ``fuzz_compare.md`` under ``--out``.

    python -m bench.fuzz_compare --budget 60 --seeds 5 --out bench/results
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

PLANTED = {
    "drift_limit": "TIMESTAMP_FUTURE also set at exactly now + 120",
    "merkle13": "merkle root bit flipped at exactly 13 ids",
    "reveal4096": "SOLUTION_INVALID skipped at exactly 4,096 numbers",
}
HERE = Path(__file__).resolve().parent.parent / "tests" / "planted"


class Found(Exception):
    """The property suite's failure, raised before its shrinking."""


def fuzz_time(twin: str, budget: float, seed: int) -> float | None:
    from parity.fuzz.engine import FuzzOptions, run_fuzz
    with tempfile.TemporaryDirectory(prefix="fuzz-compare-") as tmp:
        summary = run_fuzz(FuzzOptions(out=f"{tmp}/out", refactored=twin, seconds=budget,
                                       seed=seed, quiet=True, max_findings=1))
    found = [f["seconds"] for f in summary["findings"]]
    return min(found) if found else None


def hypothesis_time(twin: str, budget: float, seed: int) -> float | None:
    import hypothesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    import kernels.legacy as legacy
    from parity import strategies as ps
    from parity.pytest_plugin import suite
    from parity.twins import load_twin
    refactored = load_twin(twin, "refactored")

    def found(*_a: Any, **_k: Any) -> None:
        raise Found()
    suite._fail_minimal = found  # type: ignore[assignment]
    # the suite's three properties with their own strategies, re-wrapped without shrinking
    props = [
        (dict(headers=st.lists(ps.headers(), min_size=1, max_size=16)),
         suite.test_property_header_hashes.hypothesis.inner_test),
        (dict(lists=st.lists(ps.txid_lists(), min_size=1, max_size=8)),
         suite.test_property_merkle_roots.hypothesis.inner_test),
        (dict(chain=ps.chains(), function=st.sampled_from(["validate", "commitment"])),
         suite.test_property_chains.hypothesis.inner_test)]
    quick = settings(max_examples=100, deadline=None, database=None, phases=[Phase.generate],
                     suppress_health_check=list(HealthCheck))
    t0 = time.perf_counter()
    k = 0
    while time.perf_counter() - t0 < budget:
        strategies, inner = props[k % len(props)]
        test = hypothesis.seed(seed * 100_000 + k)(quick(given(**strategies)(inner)))
        k += 1
        try:
            test(legacy_twin=legacy, refactored_twin=refactored)
        except Found:
            return time.perf_counter() - t0
    return None


def _median(times: list[float | None], budget: float) -> str:
    if not any(t is not None for t in times):
        return f"> {budget:.0f} s (0/{len(times)})"
    # a miss counts as the budget, so the median is an upper bound past half misses
    vals = [t if t is not None else float("inf") for t in times]
    m = statistics.median(vals)
    hits = sum(t is not None for t in times)
    return (f"{m:.1f} s" if m != float("inf") else f"> {budget:.0f} s") + f" ({hits}/{len(times)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per tool, bug and seed")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--bugs", default=",".join(PLANTED))
    args = ap.parse_args()
    import kernels.jit  # noqa: F401  (compile or load the kernels before timing)
    rows = []
    for bug in args.bugs.split(","):
        twin = str(HERE / f"{bug}.py")
        fz = [fuzz_time(twin, args.budget, s) for s in range(1, args.seeds + 1)]
        hy = [hypothesis_time(twin, args.budget, s) for s in range(1, args.seeds + 1)]
        rows.append({"bug": bug, "trigger": PLANTED[bug], "fuzz_seconds": fz,
                     "hypothesis_seconds": hy})
        print(bug, fz, hy, flush=True)
    cpu = next((ln.split(":", 1)[1].strip() for ln in
                Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")),
               platform.processor())
    meta = {"budget_seconds": args.budget, "seeds": args.seeds, "cpu": cpu,
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
            "note": "shared 2-core machine (other jobs running): times are noisy"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz_compare.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    lines = [f"# Time to first find, median of {args.seeds} seeds (budget {args.budget:.0f} s each)",
             "", f"{cpu}, Python {meta['python']}, {meta['date']}; {meta['note']}.", "",
             "| planted bug | trigger | parity fuzz | hypothesis suite |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['bug']} | {r['trigger']} | {_median(r['fuzz_seconds'], args.budget)} "
                     f"| {_median(r['hypothesis_seconds'], args.budget)} |")
    lines += ["", "(found/seeds in parentheses; a miss counts as the budget in the median)"]
    (args.out / "fuzz_compare.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""The targets table of ``make bench`` (bench/targets.py): every row of issue 14, each
with met, missed or not measured from the figures given."""
from bench.targets import ROWS, markdown


def _kernels(small: float, big: float) -> list[dict]:
    return [{"function": "validate", "impl": impl, "n": n, "seconds": s}
            for n, (lg, jt) in ((100_000, (small, 1.0)), (1_000_000, (big, 1.0)))
            for impl, s in (("legacy", lg), ("jit", jt))]


def test_every_row_is_written_with_its_verdict():
    extras = {
        "mode3": {"ratio": 1.2, "wall_seconds": 3.0, "kernel_seconds": 1.5,
                  "read_seconds": 1.0, "blocks_per_s": 333_000, "ratio_target": 1.25,
                  "blocks_per_s_target": 300_000},
        "shadow": [{"blocks": 1_000_000, "peak_rss_mib": 550.0, "overhead_vs_legacy": 0.02},
                   {"blocks": 5_000_000, "peak_rss_mib": 700.0, "overhead_vs_legacy": 0.02}],
        "per_call_overhead": {"overhead_us": {"legacy_only": 0.3, "refactored_only": 0.6,
                                              "shadow": 1.0, "refactored_primary": 1.5}},
        "startup": {"cold_seconds": 40.0},
        "contention": {"met": False, "competitor_core_share": 0.3, "functions": {
            "header_hash": {"idle_speedup": 10.0, "busy_speedup": 8.0, "retained": 0.8},
            "merkle_root": {"idle_speedup": 20.0, "busy_speedup": 13.0, "retained": 0.65}}},
        "dask": {"blocks": 1_000_000, "repeat": 3, "speedup": 1.9, "single_wall_seconds": 70.0,
                 "dask_wall_seconds": 36.8, "driver_peak_rss_mib": 250.0,
                 "single_peak_rss_mib": 600.0, "speedup_target": 1.85,
                 "driver_rss_target_mib": 300.0},
    }
    text = markdown(_kernels(36.0, 33.0), extras)
    lines = [t for t in text.splitlines() if t.startswith("| ") and "---" not in t][1:]
    assert len(lines) == len(ROWS) == 9
    verdicts = [t.rsplit("|", 2)[1].strip() for t in lines]
    assert verdicts == ["met", "met", "missed", "met", "missed", "met", "missed", "met", "met"]
    assert "1M 550 MiB, 5M 700 MiB (+27.3%)" in text
    assert "merkle_root 13.0x / 20.0x (65%); host not idle (the competitor got 30% of a core)" \
        in text
    assert "1.90x (70.0 s vs 36.8 s, median of 3), driver peak RSS 250 MiB" in text


def test_dask_row_misses_on_either_limit():
    base = {"blocks": 1_000_000, "repeat": 3, "speedup": 1.9, "single_wall_seconds": 70.0,
            "dask_wall_seconds": 36.8, "driver_peak_rss_mib": 250.0, "single_peak_rss_mib": 600.0,
            "speedup_target": 1.85, "driver_rss_target_mib": 300.0}
    for change in ({"speedup": 1.8}, {"driver_peak_rss_mib": 301.0}):
        text = markdown([], {"dask": {**base, **change}})
        assert "| Dask, 2 local workers vs 1 process, 1M blocks |" in text
        assert text.count("| missed |") == 1


def test_validation_row_prefers_the_paired_rounds():
    """Legacy and JIT at both sizes timed back to back per round: the row judges the
    median of the rounds' ratios, not the suite's single samples."""
    batch = {"speedup_small": 50.0, "speedup_large": 47.0, "ratio": 0.94,
             "ratios": [0.97, 0.94, 0.80]}
    text = markdown(_kernels(36.0, 25.0), {"batch": batch})  # suite alone: 69%, missed
    row = next(t for t in text.splitlines() if t.startswith("| validation, one batch"))
    assert "47.0x vs 50.0x (94%, median of 3 rounds: 97%, 94%, 80%)" in row
    assert row.endswith("| met |")
    text = markdown(_kernels(36.0, 35.0), {"batch": {**batch, "ratio": 0.89}})
    assert next(t for t in text.splitlines()
                if t.startswith("| validation, one batch")).endswith("| missed |")


def test_missing_figures_are_not_measured():
    text = markdown([], {})
    assert text.count("| not measured |") == len(ROWS)


def test_dask_row_names_what_two_processes_get_from_the_machine():
    """The speedup stays judged against its target; beside it, what two processes got
    from the machine just before (context, not a verdict)."""
    d = {"blocks": 1_000_000, "repeat": 3, "speedup": 1.70, "single_wall_seconds": 85.0,
         "dask_wall_seconds": 50.0, "driver_peak_rss_mib": 250.0, "single_peak_rss_mib": 530.0,
         "speedup_target": 1.85, "driver_rss_target_mib": 300.0,
         "pair_throughput": {"ratio": 1.78, "ratios": [1.7, 1.78, 1.9], "rounds": 3,
                             "alone_seconds": 1.4, "pair_seconds": 1.57}}
    text = markdown([], {"dask": d})
    assert "two copies of one CPU-bound process at once ran at 1.78x one copy alone " \
        "(median of 3, just before the pairs" in text
    assert text.count("| missed |") == 1

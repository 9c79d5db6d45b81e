"""The contention and Dask benchmarks (bench/contention.py, bench/dask_scaling.py): the
competing process really competes and is gone afterwards; a run that is wrong never counts."""
import time
from pathlib import Path

import numpy as np
import pytest

from bench.contention import Competitor
from bench.dask_scaling import _check


def test_competitor_spins_and_is_killed():
    with Competitor() as comp:
        pid = comp.proc.pid
        assert comp.proc.poll() is None
        time.sleep(0.2)
    assert comp.share > 0  # it ran while the block ran
    assert comp.proc.returncode is not None  # killed and reaped
    assert not Path(f"/proc/{pid}").exists()


def _report(blocks=10, **fn):
    f = {"comparisons": blocks, "mismatches": 0, "errors": 0, **fn}
    return {"report": {"blocks": blocks, "functions": {"header_hash": f}}}


@pytest.mark.parametrize("run, why", [
    (_report(mismatches=1), "1 mismatches"),
    (_report(errors=2), "2 errors"),
    (_report(comparisons=9), "9 comparisons"),
    ({"report": {"blocks": 9, "functions": {}}}, "9 blocks in the report"),
])
def test_a_wrong_shadow_run_is_refused(run, why):
    with pytest.raises(RuntimeError, match=why):
        _check(run, 10, np.zeros(10, np.uint32), "dask")


def test_served_statuses_must_equal_the_truth(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"status": pa.array([0, 4, 0], pa.uint32())}), tmp_path / "r.parquet")
    run = {**_report(3), "results": tmp_path / "r.parquet"}
    _check(run, 3, np.array([0, 4, 0], np.uint32), "dask")
    with pytest.raises(RuntimeError, match="differ from the generator's truth"):
        _check(run, 3, np.array([0, 0, 0], np.uint32), "dask")


def test_thread_scaling_alternates_rounds_and_takes_medians():
    import numba
    import numpy as np

    from bench import measure
    before = numba.get_num_threads()
    out = measure.thread_scaling(n_headers=2_000, merkle_blocks=50, chain_blocks=500, rounds=3)
    assert set(out) == {"header_hash", "merkle_root", "validate"}
    for v in out.values():
        assert len(v["scalings"]) == 3 and all(r > 0 for r in v["scalings"])
        assert v["scaling"] == float(np.median(v["scalings"]))
        assert v["seconds_1"] > 0 and v["seconds_2"] > 0
    numba.set_num_threads(before)

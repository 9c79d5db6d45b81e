"""Results parts of a run directory: Arrow IPC files merged into the ``--results``
Parquet; a Parquet part left by an earlier parity version still merges."""
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from parity.errors import ParityError
from parity.outputs import parquet_tagged
from parity.runlog import RESULTS_SCHEMA, RESULTS_WRITE, RunDir


def _table(start: int, n: int) -> pa.Table:
    rng = np.random.default_rng(start)

    def hashes() -> pa.Array:
        raw = rng.integers(0, 256, n * 32, dtype=np.uint8)
        return pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), n, [None, pa.py_buffer(raw)])
    return pa.table({"block": pa.array(np.arange(start, start + n), pa.int64()),
                     "header_hash": hashes(), "tx_root": hashes(),
                     "status": pa.array(rng.integers(0, 4, n, dtype=np.uint32)),
                     "commitment": pa.nulls(n, pa.binary(32))}, schema=RESULTS_SCHEMA)


def test_parts_round_trip_and_merge(tmp_path):
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    tables = [_table(0, 5), _table(5, 0), _table(5, 7)]
    for i, t in enumerate(tables):
        run.write_part(i, t)
    assert sorted(p.name for p in run.parts.iterdir()) == [
        "part-000000.arrow", "part-000001.arrow", "part-000002.arrow"]
    for i, t in enumerate(tables):
        assert run.read_part(i).equals(t)
    out = tmp_path / "r.parquet"
    run.merge_results(out, len(tables), force=False)
    assert parquet_tagged("results")(out)
    assert pq.read_table(out).equals(pa.concat_tables(tables))


def test_a_parquet_part_of_an_earlier_version_is_merged(tmp_path):
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    old, new = _table(0, 4), _table(4, 3)
    pq.write_table(old, run.parts / "part-000000.parquet", **RESULTS_WRITE)
    run.write_part(1, new)
    out = tmp_path / "r.parquet"
    run.merge_results(out, 2, force=False)
    assert pq.read_table(out).equals(pa.concat_tables([old, new]))


def test_a_part_in_a_read_only_directory_is_an_error_naming_it(tmp_path, readonly):
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    with readonly(run.parts):
        with pytest.raises(ParityError) as failed:
            run.write_part(3, _table(0, 5))
    assert re.fullmatch(f"cannot write results part {re.escape(str(run.parts))}/part-000003"
                        r"\.arrow: (Read-only file system|Permission denied)", str(failed.value))
    assert list(run.parts.iterdir()) == []

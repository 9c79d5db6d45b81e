"""A local run's durable writes on the writer thread (parity/shardwriter.py), the staged
file under them (parity/outputs.py), and the command's exit (parity.cli.run)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from parity.errors import ParityError
from parity.outputs import parquet_tagged, staged_file
from parity.runlog import RunDir
from parity.shardwriter import ShardWriter
from tests.test_runlog_parts import _table

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "corpora" / "sample-faults"


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _checkpoints(run: RunDir) -> list[int]:
    seen = []

    def checkpoint(next_shard: int, log_bytes: int) -> None:
        assert log_bytes == run.log_path.stat().st_size  # the records are in before it
        assert (run.parts / f"part-{next_shard - 1:06d}.arrow").exists()  # and the part
        run.checkpoint({"next_shard": next_shard, "log_bytes": log_bytes})
        seen.append(next_shard)
    return seen, checkpoint


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(*shards)``: writing those shards' results parts (every shard's, when
    none is named) fails inside RunDir.write_part as on a full disk (OSError 28). Returns
    an event set at the first failure."""
    import parity.runlog as runlog
    real = runlog.atomic_write

    def fail(*shards: int) -> threading.Event:
        failed = threading.Event()
        names = {f"part-{i:06d}.arrow" for i in shards}

        def atomic_write(path, write, **kw) -> None:
            path = Path(path)
            if path.name.startswith("part-") and (not names or path.name in names):
                failed.set()
                raise OSError(28, "No space left on device")
            real(path, write, **kw)
        monkeypatch.setattr(runlog, "atomic_write", atomic_write)
        return failed
    return fail


def _no_space(run: RunDir, shard: int) -> str:
    """The error of a full disk at ``shard``'s results part."""
    return f"cannot write results part {run.parts}/part-{shard:06d}.arrow: No space left on device"


def test_shards_written_in_order_and_results_streamed(tmp_path):
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    seen, checkpoint = _checkpoints(run)
    tables = [_table(0, 50), _table(50, 0), _table(50, 70)]
    out = tmp_path / "r.parquet"
    with ShardWriter(run, str(out), force=False, first=0) as writer:
        for i, t in enumerate(tables):
            writer.shard(i, [{"block": i, "shard": i}], t, checkpoint)
        assert not out.exists()  # installed only when the run completes
    assert seen == [1, 2, 3]
    assert parquet_tagged("results")(out)
    assert pq.read_table(out).equals(pa.concat_tables(tables))
    assert pq.ParquetFile(out).metadata.num_row_groups == 2  # one per non-empty shard
    assert [r["shard"] for r in run.records()] == [0, 1, 2]
    assert _leftovers(tmp_path) == []


def test_a_resumed_writer_streams_the_earlier_parts_first(tmp_path):
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    tables = [_table(0, 9), _table(9, 4), _table(13, 6)]
    for i, t in enumerate(tables[:2]):
        run.write_part(i, t)
    _, checkpoint = _checkpoints(run)
    out = tmp_path / "r.parquet"
    with ShardWriter(run, str(out), force=False, first=2) as writer:
        writer.shard(2, [], tables[2], checkpoint)
    assert pq.read_table(out).equals(pa.concat_tables(tables))


def test_an_error_in_the_run_keeps_the_shards_handed_over_and_no_results(tmp_path):
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    seen, checkpoint = _checkpoints(run)
    out = tmp_path / "r.parquet"
    with pytest.raises(KeyboardInterrupt):
        with ShardWriter(run, str(out), force=False, first=0) as writer:
            for i in range(3):
                writer.shard(i, [{"block": i}], _table(i * 10, 10), checkpoint)
            raise KeyboardInterrupt
    assert seen == [1, 2, 3]  # every shard handed over is durable
    assert json.loads(run.checkpoint_path.read_text())["next_shard"] == 3
    assert not out.exists() and _leftovers(tmp_path) == []


def test_a_failed_write_stops_the_run_at_the_next_shard(tmp_path, full_disk):
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    seen, checkpoint = _checkpoints(run)
    gate = full_disk(1)
    out = tmp_path / "r.parquet"
    with pytest.raises(ParityError, match=f"^{re.escape(_no_space(run, 1))}$"):
        with ShardWriter(run, str(out), force=False, first=0) as writer:
            writer.shard(0, [], _table(0, 5), checkpoint)
            writer.shard(1, [], _table(5, 5), checkpoint)
            gate.wait(10)
            assert writer._last.exception(10) is not None  # the failed write has ended
            writer.shard(2, [], _table(10, 5), checkpoint)  # raises: not handed over
    assert seen == [1]  # no checkpoint past the failed part
    assert not out.exists() and _leftovers(tmp_path) == []


def test_a_file_appearing_at_results_during_the_run_is_left_alone(tmp_path):
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    _, checkpoint = _checkpoints(run)
    out = tmp_path / "r.parquet"
    with pytest.raises(ParityError, match="appeared while parity was writing it"):
        with ShardWriter(run, str(out), force=False, first=0) as writer:
            writer.shard(0, [], _table(0, 5), checkpoint)
            writer._last.result(10)  # the results file is staged
            out.write_text("the user's own file")
    assert out.read_text() == "the user's own file"
    assert _leftovers(tmp_path) == []


def test_staged_file_installs_on_success_and_removes_only_itself_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with staged_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"a")
        with tmp.open("ab") as f:
            f.write(b"b")
    assert target.read_bytes() == b"ab"
    with pytest.raises(RuntimeError):
        with staged_file(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError
    assert target.read_bytes() == b"ab" and _leftovers(tmp_path) == []
    with pytest.raises(ParityError, match="appeared"):
        with staged_file(target, replace=False) as tmp:
            tmp.write_bytes(b"new")
    assert target.read_bytes() == b"ab" and _leftovers(tmp_path) == []


def test_shadow_results_equal_the_statuses_and_survive_a_resume(tmp_path):
    from parity.shadow import ShadowOptions, ShadowRun
    opts = ShadowOptions(corpus=str(SAMPLE), run_dir=str(tmp_path / "run"), quiet=True,
                         results=str(tmp_path / "r.parquet"))
    whole = ShadowRun(opts).execute()
    statuses = pq.read_table(tmp_path / "r.parquet").column("status").to_numpy()
    assert len(statuses) == whole.report["blocks"]

    def stop(run) -> None:
        if run.blocks_done >= 200:
            raise KeyboardInterrupt
    cut = ShadowOptions(**{**opts.__dict__, "run_dir": str(tmp_path / "cut"),
                           "results": str(tmp_path / "c.parquet")})
    with pytest.raises(KeyboardInterrupt):
        ShadowRun(cut).execute(on_shard=stop)
    assert not (tmp_path / "c.parquet").exists() and _leftovers(tmp_path) == []
    ShadowRun(ShadowOptions(**{**cut.__dict__, "resume": True})).execute()
    again = pq.read_table(tmp_path / "c.parquet").column("status").to_numpy()
    assert np.array_equal(again, statuses)


_EXIT = """
import atexit, sys, threading, time
from pathlib import Path
from parity.cli import run
flag, threads = Path(sys.argv[1]), sys.argv[2]
atexit.register(lambda: flag.write_text("atexit ran"))
if threads == "thread":
    threading.Thread(target=lambda: (time.sleep(0.5),
                                     flag.with_suffix(".thread").write_text("done"))).start()
sys.argv = ["parity", "shadow", "/nonexistent-corpus"]
print("printed before exit", end="")
run()
"""


@pytest.mark.parametrize("threads", ["none", "thread"])
def test_the_command_exit_runs_atexit_flushes_and_waits_for_threads(tmp_path, threads):
    flag = tmp_path / "flag"
    out = subprocess.run([sys.executable, "-c", _EXIT, str(flag), threads], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 2 and "not a corpus directory" in out.stderr
    assert out.stdout == "printed before exit"  # a pipe: flushed before the exit
    assert flag.read_text() == "atexit ran"
    if threads == "thread":  # a thread still working is waited for (the usual exit)
        assert flag.with_suffix(".thread").read_text() == "done"


_KILLED = """
import os, signal, sys
from pathlib import Path
from parity.runlog import RunDir
from parity.shardwriter import ShardWriter
from tests.test_runlog_parts import _table
run = RunDir(Path(sys.argv[1]))
run.start({"id": 1}, resume=False)
writer = ShardWriter(run, sys.argv[2], force=False, first=0)
writer.shard(0, [], _table(0, 5), lambda n, b: run.checkpoint({"identity": {"id": 1}, "next_shard": n,
                                                 "log_bytes": b}))
writer._last.result(10)  # the staged results file holds shard 0
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("resume", [True, False])
def test_a_staged_results_file_left_by_a_sigkill_is_removed_by_the_next_run(tmp_path, resume):
    out = tmp_path / "out" / "r.parquet"
    out.parent.mkdir()
    (out.parent / ".r.parquet.users.tmp").write_text("not parity's")  # a look-alike
    killed = subprocess.run([sys.executable, "-c", _KILLED, str(tmp_path / "run"), str(out)],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert killed.returncode == -9
    assert len(_leftovers(out.parent)) == 2  # the staged file of the killed run is there
    run = RunDir(tmp_path / "run", force=True)
    run.start({"id": 1}, resume=resume)  # a later run in the same run directory
    assert _leftovers(out.parent) == [".r.parquet.users.tmp"]  # only parity's is gone
    _, checkpoint = _checkpoints(run)
    with ShardWriter(run, str(out), force=False, first=1 if resume else 0) as writer:
        writer.shard(1, [], _table(5, 5), checkpoint)
    assert _leftovers(out.parent) == [".r.parquet.users.tmp"]
    assert pq.read_table(out).num_rows == (10 if resume else 5)


@pytest.mark.parametrize("closed", [1, 2])
def test_the_command_exit_with_a_standard_stream_closed(tmp_path, closed):
    """``parity ... >&-``: Python starts with that stream None; the exit neither fails on
    it nor changes the command's exit code."""
    out = subprocess.run(["sh", "-c", f'exec "$@" {closed}>&-', "sh", sys.executable, "-m",
                          "parity", "corpus", "verify", str(tmp_path / "none")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr + out.stdout


def test_a_results_file_the_user_put_in_place_of_parity_s_during_a_forced_run(tmp_path):
    """--force replaces parity's earlier results; a file the user put there while the run
    went on (minutes, now that the file is streamed) is not parity's: left alone."""
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    _, checkpoint = _checkpoints(run)
    out = tmp_path / "r.parquet"
    with ShardWriter(run, str(out), force=False, first=0) as writer:
        writer.shard(0, [], _table(0, 5), checkpoint)
    run = RunDir(tmp_path / "run", force=True)
    run.start({"id": 1}, resume=False)
    _, checkpoint = _checkpoints(run)
    with pytest.raises(ParityError, match="changed while parity was writing it"):
        with ShardWriter(run, str(out), force=True, first=0) as writer:
            writer.shard(0, [], _table(0, 7), checkpoint)
            writer._last.result(10)
            out.unlink()
            out.write_text("the user's own file")
    assert out.read_text() == "the user's own file"
    assert _leftovers(tmp_path) == []
    out.unlink()
    with ShardWriter(run, str(out), force=False, first=0) as writer:
        writer.shard(0, [], _table(0, 5), checkpoint)
    with ShardWriter(run, str(out), force=True, first=0) as writer:
        writer.shard(0, [], _table(0, 3), checkpoint)
        writer._last.result(10)
        out.unlink()  # parity's earlier file removed meanwhile: nothing to leave alone
    assert pq.read_table(out).num_rows == 3 and _leftovers(tmp_path) == []


def test_a_failed_write_of_the_last_shard_removes_the_staged_results(tmp_path, full_disk):
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    seen, checkpoint = _checkpoints(run)
    full_disk()
    out = tmp_path / "r.parquet"
    with pytest.raises(ParityError, match=f"^{re.escape(_no_space(run, 0))}$"):
        with ShardWriter(run, str(out), force=False, first=0) as writer:
            writer.shard(0, [], _table(0, 5), checkpoint)  # the last: raised at the end
    assert seen == [] and not out.exists()
    assert _leftovers(tmp_path) == [] and not run.staged_path.exists()


def test_a_failed_results_write_names_the_results_file(tmp_path, monkeypatch):
    """A full disk while --results streams: the command's one-line error says which file
    (``parity: error: FILENAME: STRERROR``), not just "No space left on device"."""
    import parity.shardwriter as shardwriter
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    _, checkpoint = _checkpoints(run)

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(shardwriter.os, "fdatasync", full)
    out = tmp_path / "r.parquet"
    with pytest.raises(OSError) as failed:
        with ShardWriter(run, str(out), force=False, first=0) as writer:
            writer.shard(0, [], _table(0, 5), checkpoint)
    assert failed.value.filename == f"--results {out}"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("ending", ["finish", "abort"])
def test_a_second_ctrl_c_while_waiting_leaves_the_writing_thread_its_file(tmp_path, ending):
    """Ctrl-C while the end waits for the writer thread: the stream that thread is still
    writing is not closed under it (the staged file is then the next run's to remove)."""
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    _, checkpoint = _checkpoints(run)
    writing, release = threading.Event(), threading.Event()

    def slow(index: int, log_bytes: int) -> None:
        writing.set()
        release.wait(10)
        checkpoint(index, log_bytes)
    writer = ShardWriter(run, str(tmp_path / "r.parquet"), force=False, first=0)
    writer.shard(0, [], _table(0, 5), slow)
    writing.wait(10)
    real = writer._pool.shutdown

    def interrupted(wait: bool = True) -> None:
        raise KeyboardInterrupt  # the second Ctrl-C, during the wait
    writer._pool.shutdown = interrupted
    with pytest.raises(KeyboardInterrupt):
        getattr(writer, ending)()
    release.set()
    writer._pool.shutdown = real
    writer.abort()  # the thread has ended: now the stream can be closed
    exc = writer._last.exception(10)
    assert exc is None, "".join(__import__("traceback").format_exception(exc))  # its stream was still open
    assert json.loads(run.checkpoint_path.read_text())["next_shard"] == 1
    assert _leftovers(tmp_path) == [] and not run.staged_path.exists()


def test_without_overlap_each_shard_is_durable_when_handed_over(tmp_path):
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    seen, checkpoint = _checkpoints(run)
    with ShardWriter(run, None, force=False, first=0, overlap=False) as writer:
        for i in range(3):
            writer.shard(i, [{"block": i}], _table(i * 10, 10), checkpoint)
            assert seen == list(range(1, i + 2))  # written before shard() returned
            assert json.loads(run.checkpoint_path.read_text())["next_shard"] == i + 1


def test_without_overlap_a_failed_write_raises_at_its_own_shard(tmp_path, full_disk):
    run = RunDir(tmp_path / "run")
    run.start({"id": 1}, resume=False)
    seen, checkpoint = _checkpoints(run)
    full_disk()
    with pytest.raises(ParityError, match=f"^{re.escape(_no_space(run, 0))}$"):
        with ShardWriter(run, None, force=False, first=0, overlap=False) as writer:
            writer.shard(0, [], _table(0, 5), checkpoint)
            raise AssertionError("shard() returned after its write failed")
    assert seen == []


@pytest.mark.parametrize("mode", ["shadow", "refactored_only"])  # with and without overlap
def test_a_full_disk_at_a_results_part_through_the_command(tmp_path, monkeypatch, capsys,
                                                          full_disk, mode):
    """Exit 2 with one line naming the part; the checkpoint stays at the last shard written,
    so --resume completes the run (and --results) from there."""
    from parity.cli import main
    run, out = RunDir(tmp_path / "run"), tmp_path / "r.parquet"
    args = ["shadow", str(SAMPLE), "--quiet", "--mode", mode, "--run-dir", str(run.path),
            "--results", str(out)]
    full_disk(2)
    assert main(args) == 2
    assert capsys.readouterr().err == f"parity: error: {_no_space(run, 2)}\n"
    assert json.loads(run.checkpoint_path.read_text())["next_shard"] == 2
    assert sorted(p.name for p in run.parts.iterdir()) == ["part-000000.arrow",
                                                           "part-000001.arrow"]
    assert not out.exists() and _leftovers(tmp_path) == []
    monkeypatch.undo()  # space again
    assert main([*args, "--resume"]) == 0
    served = pq.read_table(out).column("status").to_numpy()
    truth = pq.read_table(SAMPLE / "ground-truth.parquet").column("status").to_numpy()
    assert np.array_equal(served, truth)


@pytest.mark.parametrize("mode", [1, 3])
def test_freed_memory_is_given_back_only_when_the_legacy_twin_runs(tmp_path, monkeypatch, mode):
    """Mode 1 returns freed memory after every shard (flat peak RSS); mode 3 keeps it for
    the next shard (measured at 1M blocks: 53k page faults instead of 145k, 0.5 s less),
    and both serve the same statuses."""
    import parity.corpus.reader as reader
    import parity.recurring as recurring
    import parity.shadow as shadow
    import parity.shardwriter as shardwriter
    from parity.modes import Mode
    calls = []
    for mod in (reader, recurring, shadow, shardwriter):
        monkeypatch.setattr(mod, "release_freed_memory",
                            lambda name=mod.__name__: calls.append(name))
    opts = shadow.ShadowOptions(corpus=str(SAMPLE), run_dir=str(tmp_path / "run"), quiet=True,
                                mode=Mode(mode), results=str(tmp_path / "r.parquet"))
    run = shadow.ShadowRun(opts)
    run.execute()
    shards = len(run.corpus.row_groups())
    served = pq.read_table(tmp_path / "r.parquet").column("status").to_numpy()
    truth = pq.read_table(SAMPLE / "ground-truth.parquet").column("status").to_numpy()
    assert np.array_equal(served, truth)
    if mode == 3:
        assert calls == [] and run.corpus.release_memory is False
    else:
        # each shard: read, computed, written; and each row group of pass 1
        assert {n: calls.count(n) for n in set(calls)} == {
            reader.__name__: shards, shadow.__name__: shards, shardwriter.__name__: shards,
            recurring.__name__: shards}

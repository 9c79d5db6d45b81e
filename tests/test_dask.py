"""Shadow runs on a local Dask cluster of worker processes equal the single-process run."""
import json
import os
import signal
from pathlib import Path

import distributed  # noqa: F401  (a dev dependency: never skipped)
import numpy as np
import pyarrow.parquet as pq
import pytest

from kernels import constants as C
from kernels.legacy import decode_header
from parity.corpus import open_corpus
from parity.corpus.generate import GenerateOptions, generate, read_truth
from parity.modes import Mode
from parity.shadow import ShadowOptions, ShadowRun

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0", host="127.0.0.1", silence_logs=50)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("dask") / "faulty"
    generate(path, GenerateOptions(blocks=2400, seed=31, fault_rate=0.3, shard_size=257,
                                   rows_per_file=900))  # shards and files split mid-chain
    return path


def _set_env(client, **env):
    def apply(env=env):
        os.environ.update(env)
        for k, v in env.items():
            if not v:
                os.environ.pop(k, None)
    client.run(apply)
    apply()


def _single(corpus, tmp, **kw):
    opts = ShadowOptions(corpus=str(corpus), run_dir=str(tmp / "single"), quiet=True,
                         results=str(tmp / "single.parquet"), **kw)
    return ShadowRun(opts).execute()


def _dask(corpus, tmp, client, on_shard=None, engine_out=None, **kw):
    from parity.distributed import DaskShadow
    opts = ShadowOptions(corpus=str(corpus), run_dir=str(tmp / "dask"), quiet=True,
                         results=str(tmp / "dask.parquet"), **kw)
    engine = DaskShadow(opts)
    if engine_out is not None:
        engine_out.append(engine)
    return engine.execute(client=client, on_shard=on_shard)


def _same(a, b, tmp):
    keep = ("comparisons", "mismatches", "errors", "legacy_calls", "refactored_calls")
    fa = {fn: {k: f[k] for k in keep} for fn, f in a.report["functions"].items()}
    fb = {fn: {k: f[k] for k in keep} for fn, f in b.report["functions"].items()}
    assert fa == fb
    assert a.report["mismatched_blocks"] == b.report["mismatched_blocks"]
    assert a.report["replays_served"] == b.report["replays_served"]
    assert [json.dumps(r, sort_keys=True) for r in a.records] == \
        [json.dumps(r, sort_keys=True) for r in b.records]
    strip = [{k: v for k, v in c.items() if k != "time"} for c in a.report["mode"]["changes"]]
    assert strip == [{k: v for k, v in c.items() if k != "time"} for c in b.report["mode"]["changes"]]
    assert a.report["mode"]["end"] == b.report["mode"]["end"]
    assert pq.read_table(tmp / "single.parquet").equals(pq.read_table(tmp / "dask.parquet"))


def test_cross_shard_replay_exists(corpus):
    """The fixture has a replay whose first occurrence sits in an earlier shard."""
    c = open_corpus(corpus)
    first_seen, cross = {}, 0
    for k, shard in enumerate(c.shards()):
        for i in range(len(shard)):
            cm = shard.headers[i, C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32].tobytes()
            if cm in first_seen and first_seen[cm] != k:
                cross += 1
            first_seen.setdefault(cm, k)
    assert cross > 0
    every = 0
    for s in read_truth(corpus):
        every |= int(s)
    assert every == C.ALL_RULES


def test_equal_to_single_process(corpus, tmp_path, client):
    _set_env(client, BROKEN_TWIN="")
    a = _single(corpus, tmp_path)
    b = _dask(corpus, tmp_path, client)
    assert a.exit_code == b.exit_code == 0
    _same(a, b, tmp_path)
    status = pq.read_table(tmp_path / "dask.parquet").column("status").to_numpy()
    assert np.array_equal(status, read_truth(corpus))


@pytest.mark.parametrize("mode", [Mode.SHADOW, Mode.REFACTORED_PRIMARY])
def test_equal_with_planted_bugs(corpus, tmp_path, client, mode):
    heights = []
    for shard in open_corpus(corpus).shards():
        heights.append(decode_header(shard.headers[len(shard) // 2].tobytes())["height"])
    env = {"BROKEN_TWIN": "flip,negzero,odd_copy", "BROKEN_TWIN_HEIGHTS": ",".join(map(str, heights))}
    _set_env(client, **env)
    try:
        from tests import broken_twin
        a = ShadowRun(ShadowOptions(corpus=str(corpus), run_dir=str(tmp_path / "single"),
                                    quiet=True, results=str(tmp_path / "single.parquet"),
                                    mode=mode, refactored="tests.broken_twin")).execute()
        engines = []
        b = _dask(corpus, tmp_path, client, engine_out=engines, mode=mode,
                  refactored="tests.broken_twin")
    finally:
        _set_env(client, BROKEN_TWIN="", BROKEN_TWIN_HEIGHTS="")
    assert a.exit_code == b.exit_code == 1
    assert a.report["functions"]["header_hash"]["mismatches"] == len(heights)
    _same(a, b, tmp_path)
    registry = engines[0].run.metrics.registry  # aggregated over every shard at the driver
    for fn, f in b.report["functions"].items():
        assert registry.get_sample_value("dual_run_comparisons_total", {"function": fn}) == \
            f["comparisons"]
        assert registry.get_sample_value("dual_run_mismatches_total", {"function": fn}) == \
            f["mismatches"]
        assert registry.get_sample_value("dual_run_parity_match_rate", {"function": fn}) == \
            pytest.approx(1 - f["mismatches"] / f["comparisons"])
    assert broken_twin  # imported for the workers' sake too


def _transitions(dask_scheduler):
    """(key, start, finish, stimulus) of every task transition the scheduler logged."""
    return [(str(t.key), t.start, t.finish, t.stimulus_id) for t in dask_scheduler.transition_log]


def test_killed_worker_changes_nothing(corpus, tmp_path, client):
    """SIGKILL a worker while it runs a shard task: the scheduler sends the lost task to
    the other worker (seen in its transition log: processing twice, memory once), and the
    report, records and results equal the undisturbed single-process run."""
    _set_env(client, BROKEN_TWIN="")
    a = _single(corpus, tmp_path)
    killed = {}

    def kill_busy_worker(run):
        if killed:
            return
        busy = {w: [str(k) for k in keys if str(k).startswith("shard_task")]
                for w, keys in client.processing().items()}
        victim = next((w for w, keys in sorted(busy.items()) if keys), None)
        if victim is None:
            return  # nothing running right now: try after the next shard
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        killed.update(worker=victim, pid=pid, lost=busy[victim])

    b = _dask(corpus, tmp_path, client, on_shard=kill_busy_worker)
    assert killed and killed["lost"], "no shard task was running when a shard finished"
    log = client.run_on_scheduler(_transitions)
    for key in killed["lost"]:
        steps = [(start, finish, stimulus) for k, start, finish, stimulus in log if k == key]
        finishes = [f for _s, f, _st in steps]
        assert finishes.count("processing") >= 2, steps  # sent out again after the kill
        assert finishes.count("memory") == 1, steps      # and finished once, elsewhere
        first_run = finishes.index("processing")
        assert "memory" not in finishes[:finishes.index("processing", first_run + 1)], steps
    shard_keys = {k for k, _s, f, _st in log if k.startswith("shard_task") and f == "memory"}
    assert len(shard_keys) >= len(open_corpus(corpus).row_groups())
    _same(a, b, tmp_path)
    client.wait_for_workers(2, timeout=60)


def test_cli_dask_engine(tmp_path, capsys):
    import socket

    from parity.cli import main
    corpus = Path(__file__).resolve().parent.parent / "corpora" / "sample-faults"
    with socket.socket() as busy:  # Dask's default HTTP port taken: no warning (an error here)
        try:
            busy.bind(("127.0.0.1", 8787))
            busy.listen()
        except OSError:
            pass  # already taken by someone else: the same case
        code = main(["shadow", str(corpus), "--engine", "dask", "--workers", "2", "--quiet",
                     "--run-dir", str(tmp_path / "r"), "--report", str(tmp_path / "r.json"),
                     "--metrics-file", str(tmp_path / "m.prom")])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["engine"]["name"] == "dask"
    assert report["functions"]["validate"]["comparisons"] == 800
    # metrics are aggregated at the driver, as in a single-process run
    from prometheus_client.parser import text_string_to_metric_families
    samples = {(s.name, s.labels.get("function")): s.value for f in
               text_string_to_metric_families((tmp_path / "m.prom").read_text()) for s in f.samples}
    for fn in ("header_hash", "merkle_root", "validate"):
        assert samples[("dual_run_comparisons_total", fn)] == 800
        assert samples[("dual_run_mismatches_total", fn)] == 0
        assert samples[("dual_run_parity_match_rate", fn)] == 1.0
    replays = int((read_truth(corpus) & C.COMMITMENT_REPLAY != 0).sum())
    assert samples[("epoch_replay_detected_total", None)] == replays > 0
    assert main(["shadow", str(corpus), "--scheduler", "tcp://127.0.0.1:1"]) == 2


def test_a_prepared_worker_runs_its_first_shard_with_every_kernel_loaded(corpus, tmp_path):
    """``prepare_worker`` loads the twins and kernels on a fresh worker before any task:
    its first shard task then loads or compiles nothing more."""
    import sys
    import time

    from distributed import Client, LocalCluster

    from kernels.jit import _precompile
    from parity.distributed import DaskShadow, prepare_worker, shard_task
    if _precompile.cold():  # a fresh clone: what the first run does, once
        _precompile.precompile(lambda *a: None)
    engine = DaskShadow(ShadowOptions(corpus=str(corpus), run_dir=str(tmp_path / "d"),
                                      quiet=True))
    opts = engine._options(Mode.SHADOW)
    engine.run.close()

    def loaded() -> dict:
        from numba.core.registry import CPUDispatcher

        from kernels.jit import _blake3, _replay, header, merkle, reveal, validate
        return {f"{m.__name__}.{n}": len(o.signatures)
                for m in (_blake3, _replay, header, merkle, reveal, validate)
                for n, o in vars(m).items() if isinstance(o, CPUDispatcher)}

    def preparing() -> bool:
        import threading
        return any(t.name == "parity-prepare" for t in threading.enumerate())

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1", silence_logs=50) as cluster, Client(cluster) as c:
        assert list(c.run(lambda: "kernels.jit" in sys.modules).values()) == [False]
        c.run(prepare_worker, opts)
        deadline = time.monotonic() + 120
        while any(c.run(preparing).values()):
            assert time.monotonic() < deadline, "the worker is still preparing"
            time.sleep(0.1)
        (before,) = c.run(loaded).values()
        groups = open_corpus(corpus, verify=False).row_groups()
        out = c.submit(shard_task, opts, 0, groups, np.zeros((0, 32), np.uint8),
                       pure=False).result()
        (after,) = c.run(loaded).values()
    assert out["outcome"].blocks == groups[0].rows
    for kernel in ("_blake3.hash_rows_into", "merkle._merkle_roots", "validate._statuses"):
        assert before[f"kernels.jit.{kernel}"] >= 1, before
    assert after == before, "the first shard task loaded or compiled a kernel itself"


def test_own_local_cluster_runs_pass_one_at_the_driver(corpus, tmp_path, client, monkeypatch):
    """The engine's own local cluster: pass 1 runs in the driver while the cluster
    starts; a given cluster runs it as tasks. Both answer as the single process."""
    import parity.distributed as D
    calls = []
    real = D.recurring.scan
    monkeypatch.setattr(D.recurring, "scan", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    _set_env(client, BROKEN_TWIN="")
    single = _single(corpus, tmp_path)
    given = _dask(corpus, tmp_path, client)
    assert calls == []
    _same(single, given, tmp_path)
    flags = []  # the driver's hashes: numpy, so that it compiles nothing (its peak RSS)
    real_hash = D.recurring.hash32
    monkeypatch.setattr(D.recurring, "hash32",
                        lambda c, compiled=True: flags.append(compiled) or real_hash(c, compiled))
    opts = ShadowOptions(corpus=str(corpus), run_dir=str(tmp_path / "own"), quiet=True,
                         results=str(tmp_path / "dask.parquet"), force=True)
    own = D.DaskShadow(opts, workers=1).execute()
    assert calls == [1]
    assert flags and not any(flags)
    _same(single, own, tmp_path)

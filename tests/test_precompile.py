"""The first run's two-process compile (kernels/jit/_precompile.py), on a fresh numba
cache: the two processes compile disjoint sets of kernels (what makes the two concurrent
cache writers safe), each kernel once (but two tiny helpers called with literal
amounts, one compile per amount), the calling process then compiles nothing, and the
kernels it loads give legacy's results."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_RUN = """
import json
import numpy as np
from numba.core.registry import CPUDispatcher
from kernels.jit import _precompile
cold = _precompile.cold()
ran = _precompile.precompile()
import kernels.jit as J
import kernels.legacy as L
from kernels.jit import _blake3, _replay, header, merkle, reveal, validate
from parity.corpus import open_corpus
same = {}
for name in ("sample-valid", "sample-faults"):
    corpus = open_corpus("corpora/" + name)
    m = corpus.manifest
    states = {J: J.new_replay_state(), L: L.new_replay_state()}
    for shard in corpus.shards():
        a, b = (t.validate_blocks(*shard.arrays(), now=m.now, parent=m.anchor,
                                  difficulty_target=m.difficulty_target, replay=states[t])
                for t in (J, L))
        same[name] = same.get(name, True) and bool(np.array_equal(a, b))
        part = shard.slice(0, 40, copy=False)
        h = part.headers
        same["commitments"] = same.get("commitments", True) and bool(np.array_equal(
            J.commitments(h, *part.arrays()[3:]), L.commitments(h, *part.arrays()[3:])))
        ids = [bytes(range(32)), bytes(32), bytes([7]) * 32]
        same["single"] = same.get("single", True) and (
            J.hash_header(h[0].tobytes()) == L.hash_header(h[0].tobytes())
            and J.merkle_root(ids) == L.merkle_root(ids)
            and J.problem_hash([3, -4, 5], 1) == L.problem_hash([3, -4, 5], 1)
            and J.solution_ok([3, -4, 5], 1, [1, 2]) == L.solution_ok([3, -4, 5], 1, [1, 2]))
misses = {}
for mod in (_blake3, _replay, header, merkle, reveal, validate):
    for name, obj in vars(mod).items():
        if isinstance(obj, CPUDispatcher) and obj.stats.cache_misses:
            misses[name] = sum(obj.stats.cache_misses.values())
print(json.dumps({"cold": cold, "ran": ran, "same": same, "misses": misses}))
"""


#: a second process on the cache the first one filled: parity.step.preload loads every
#: kernel on its thread, then a mode-3 run over a corpus adds no specialization
_PRELOAD = """
import json, sys
from numba.core.registry import CPUDispatcher
import kernels.jit as J
from kernels.jit import _precompile, _blake3, _replay, header, merkle, reveal, validate
import parity.shadow
from parity import step
from parity.modes import Mode
def signatures():
    return {f"{m.__name__}.{n}": len(o.signatures)
            for m in (_blake3, _replay, header, merkle, reveal, validate)
            for n, o in vars(m).items() if isinstance(o, CPUDispatcher)}
before = signatures()
thread = step.preload(J)
thread.join()
loaded = signatures()
parity.shadow.preload = lambda twin: None  # the run must not load anything more itself
opts = parity.shadow.ShadowOptions(corpus="corpora/sample-faults", mode=Mode.REFACTORED_ONLY,
                                   run_dir=sys.argv[1], quiet=True)
parity.shadow.ShadowRun(opts).execute()
print(json.dumps({"cold": _precompile.cold(), "before": before, "loaded": loaded,
                  "run": signatures(), "compiled": _precompile._compiled()}))
"""


def _entries(index: Path) -> int:
    """Signatures in one numba cache index (a pickled version, then (stamp, overloads))."""
    with index.open("rb") as f:
        pickle.load(f)
        _stamp, overloads = pickle.loads(f.read())
    return len(overloads)


@pytest.mark.slow
def test_two_process_first_compile(tmp_path: Path) -> None:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PARITY_NUMBA_CACHE="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                          if p))
    out = subprocess.run([sys.executable, "-c", _RUN], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["cold"]
    groups = result["ran"]
    assert sorted(groups) == ["blocks", "hashes"] and all(groups.values()), groups
    both = set(groups["blocks"]) & set(groups["hashes"])
    assert not both, f"compiled by both processes: {sorted(both)}"
    assert result["misses"] == {}, "compiled in the caller after the two-process compile"
    assert result["same"] and all(result["same"].values()), result["same"]
    indexes = sorted(tmp_path.rglob("*.nbi"))
    assert len(indexes) >= 30
    several = {p.name.split("-")[0]: n for p in indexes if (n := _entries(p)) != 1}
    literal_sizes = {"validate._le": 2, "validate._same": 2}
    assert several == literal_sizes, f"kernels cached with several signatures: {several}"
    # a later process preloads from that cache: everything a run calls, nothing compiled
    out = subprocess.run([sys.executable, "-c", _PRELOAD, str(tmp_path / "run")], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    pre = json.loads(out.stdout.splitlines()[-1])
    assert not pre["cold"] and pre["compiled"] == []
    assert not any(pre["before"].values())
    entries = ("_blake3.hash_rows_into", "merkle._merkle_roots", "reveal._reveal_hashes_into",
               "validate._statuses", "_replay._mark")
    assert all(pre["loaded"][f"kernels.jit.{k}"] for k in entries), pre["loaded"]
    assert pre["run"] == pre["loaded"], "the run specialized a kernel the preload did not load"


_CHILD = """
import sys
for step in sys.argv[1:]:
    if step == "exit":
        sys.exit(1)
    if step == "wait":
        assert sys.stdin.readline() == "go\\n"
        continue
    print("step", step, flush=True)
print("compiled", "k." + sys.argv[1].split()[0], flush=True)
"""


def _children(**steps: list[str]) -> dict[str, subprocess.Popen]:
    return {name: subprocess.Popen([sys.executable, "-c", _CHILD, *s], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
            for name, s in steps.items()}


@pytest.mark.parametrize("case", ["both", "blocks_dies", "hashes_dies"])
def test_each_group_waits_for_the_others_step_or_its_end(case: str) -> None:
    """Each child goes on once the other reports the step it waits for, or once the other
    is gone before reporting it: no child waits forever, every step is counted."""
    from kernels.jit._precompile import CORE_STEP, SORT_STEP, _follow
    hashes = [CORE_STEP, "wait", "merkle"]
    blocks = ["rules", SORT_STEP, "wait", "reveal"]
    if case == "blocks_dies":
        blocks = ["rules", "exit"]
    elif case == "hashes_dies":
        hashes = ["exit"]
    children = _children(hashes=hashes, blocks=blocks)
    steps: list[int] = []
    compiled: dict = {}
    follow = threading.Thread(target=lambda: compiled.update(_follow(
        children, lambda: steps.append(1))), daemon=True)
    with children["hashes"], children["blocks"]:  # closes every pipe and waits for both
        follow.start()
        follow.join(60)
        hung = follow.is_alive()
        if hung:
            for child in children.values():
                child.kill()
    follow.join(60)
    assert not hung, "a child waited forever"
    counted = [s for s in hashes + blocks if s not in ("wait", "exit")]
    assert len(steps) == len(counted)
    assert sorted(compiled) == sorted(n for n, s in (("hashes", hashes), ("blocks", blocks))
                                      if "exit" not in s)


def test_warm_or_disabled_cache_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernels import config
    from kernels.jit import _precompile
    monkeypatch.setattr(config, "CACHE", False)
    assert not _precompile.cold()
    assert _precompile.precompile() is None


def test_warm_up_counts_the_two_process_compile_for_jit_twins_only(tmp_path, monkeypatch):
    import io

    import kernels.jit
    import kernels.legacy
    from kernels.jit import _precompile
    from parity import step
    from parity.modes import Mode
    from parity.shadow import ShadowOptions, ShadowRun
    calls = []

    def fake(advance):
        calls.append(advance)
        for _ in range(_precompile.STEPS):
            advance()
        return {}

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(_precompile, "cold", lambda: True)
    monkeypatch.setattr(_precompile, "precompile", fake)
    monkeypatch.setattr(step, "COMPILE_NOTICE_AFTER", 0.0)
    for twin, runs in ((kernels.legacy, False), (kernels.jit, True)):
        run = ShadowRun(ShadowOptions(corpus=str(ROOT / "corpora" / "sample-valid"),
                                      functions=("header_hash",), quiet=True,
                                      run_dir=str(tmp_path / twin.__name__)), refactored=twin)
        shard = run.corpus.read_shard(run.corpus.row_groups()[0])
        err = Tty()
        monkeypatch.setattr(sys, "stderr", err)
        step.warm_up(shard, run.context(Mode.SHADOW), announce=True)
        assert len(calls) == int(runs)
        total = 2 + (_precompile.STEPS if runs else 0)
        assert err.getvalue().rstrip().endswith(f"compiling kernels (first run only): {total}/{total}")


def test_preload_only_for_jit_twins_on_a_warm_cache(monkeypatch):
    import kernels.jit
    import kernels.legacy
    from kernels.jit import _precompile
    from parity import step
    loads = []
    monkeypatch.setattr(_precompile, "load", lambda: loads.append(1))
    assert step.preload(kernels.legacy) is None
    monkeypatch.setattr(_precompile, "cold", lambda: True)
    assert step.preload(kernels.jit) is None  # the warm-up compiles, with its count
    monkeypatch.setattr(_precompile, "cold", lambda: False)
    step.preload(kernels.jit).join(60)
    assert loads == [1]

    def broken() -> None:
        raise RuntimeError("a kernel failed to load")
    monkeypatch.setattr(_precompile, "load", broken)
    thread = step.preload(kernels.jit)  # the run's own first call meets that error
    thread.join(60)
    assert not thread.is_alive()


def test_a_corrupted_cache_index_is_no_traceback_before_the_run(monkeypatch):
    """Garbage in a kernel's ``.nbi`` (numba's cache index): ``cold`` (called by the
    preload, before the run) answers False instead of raising; the run's own first call
    then meets the error and reports it as a twin failure."""
    from kernels.jit import _precompile
    kernel = _precompile._entry_kernels()[0]

    def garbage() -> None:
        raise pickle.UnpicklingError("invalid load key, '\\xe9'.")
    monkeypatch.setattr(kernel._cache._cache_file, "_load_index", garbage)
    assert _precompile.cold() is False


def _cache_dir(root: Path, env: dict) -> str:
    out = subprocess.run([sys.executable, "-c", "import kernels.config, numba; "
                          "print(numba.config.CACHE_DIR)"], cwd=root, env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_a_change_to_any_kernel_source_starts_a_fresh_cache(tmp_path: Path) -> None:
    """numba checks a cached kernel against its own file only; validation inlines the
    BLAKE3 core from another file, so the cache directory is named by all sources."""
    import shutil
    copy = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parent.parent / "kernels", copy / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = str(copy)
    first = _cache_dir(copy, env)
    assert first.startswith(str(copy / "kernels")) and first == _cache_dir(copy, env)
    core = copy / "kernels" / "jit" / "_blake3.py"
    core.write_text(core.read_text() + "\n# a change beside validation's own file\n")
    second = _cache_dir(copy, env)
    assert second != first and Path(second).parent == Path(first).parent
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "given")
    assert Path(_cache_dir(copy, env)).parent == tmp_path / "given"

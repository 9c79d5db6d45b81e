"""The ``parity`` command's own process settings: its garbage collector and numpy's
BLAS threads (parity.cli), each checked in a fresh interpreter."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: ``parity shadow --mode 3`` through the command's entry point, counting the garbage
#: collector's passes by generation (run() runs the atexit handlers before it exits)
_COUNT_COLLECTIONS = """
import atexit, gc, json, sys
counts = [0, 0, 0]
gc.callbacks.append(lambda phase, info: phase == "stop" and
                    counts.__setitem__(info["generation"], counts[info["generation"]] + 1))
atexit.register(lambda: print(json.dumps({"counts": counts,
                                          "thresholds": gc.get_threshold()})))
from parity.cli import run
sys.argv = ["parity", *sys.argv[1:]]
run()
"""


def _python(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**base, "PYTHONPATH": str(ROOT), **(env or {})})


def test_the_command_start_runs_no_full_collection(chain, tmp_path):
    """numba's import and the kernels' load allocate objects by the hundred thousand: at
    Python's default thresholds two full collections ran in every start, one of 63 ms
    holding the GIL on the thread loading the kernels."""
    corpus, expected, _ = chain
    out = _python("-c", _COUNT_COLLECTIONS, "shadow", str(corpus), "--mode", "3", "--quiet",
                  "--run-dir", str(tmp_path / "run"), "--results", str(tmp_path / "r.parquet"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    from parity.cli import GC_THRESHOLDS
    assert tuple(seen["thresholds"]) == GC_THRESHOLDS
    assert seen["counts"][2] == 0, seen
    import pyarrow.parquet as pq
    status = pq.read_table(tmp_path / "r.parquet", columns=["status"]).column("status")
    assert status.to_pylist() == expected  # the run itself is unchanged


def test_numpy_blas_threads_sleep_soon_unless_the_user_says_otherwise():
    probe = "import os, parity.cli, numpy; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    assert _python("-c", probe).stdout.strip() == "4"
    assert _python("-c", probe, env={"OPENBLAS_THREAD_TIMEOUT": "12"}).stdout.strip() == "12"


def test_importing_parity_alone_leaves_the_process_as_it_was():
    """A program that imports parity as a library (not its command line, ``parity.cli``)
    keeps Python's collector thresholds and its own BLAS settings."""
    probe = ("import gc, os, parity, parity.shadow; "
             "print(gc.get_threshold(), os.environ.get('OPENBLAS_THREAD_TIMEOUT'))")
    assert _python("-c", probe).stdout.strip() == "(700, 10, 10) None"

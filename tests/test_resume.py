"""A shadow run killed with SIGKILL and resumed ends with the undisturbed run's report."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernels.legacy import decode_header
from parity.corpus import open_corpus
from parity.corpus.generate import GenerateOptions, generate

ROOT = Path(__file__).resolve().parent.parent


def _counts(report):
    keep = ("comparisons", "mismatches", "errors")
    return ({fn: {k: f[k] for k in keep} for fn, f in report["functions"].items()},
            report["mismatched_blocks"], report["mismatch_records_total"], report["replays_served"])


def _records(report):
    return sorted((r["function"], r["block"], json.dumps(r, sort_keys=True))
                  for r in report["mismatch_records"])


@pytest.mark.slow
def test_sigkill_then_resume_equals_undisturbed(tmp_path):
    corpus = tmp_path / "c"
    generate(corpus, GenerateOptions(blocks=6000, seed=21, fault_rate=0.05, shard_size=100,
                                     rows_per_file=1000, rules=[r for r in (
                                         "VERSION_UNSUPPORTED", "TX_ROOT_MISMATCH",
                                         "COMMITMENT_REPLAY", "SOLUTION_INVALID")]))
    heights = []
    for shard in open_corpus(corpus).shards():
        for i in range(0, len(shard), 97):
            heights.append(decode_header(shard.headers[i].tobytes())["height"])
    env = dict(os.environ, BROKEN_TWIN="flip", BROKEN_TWIN_HEIGHTS=",".join(map(str, heights)),
               PYTHONPATH=str(ROOT))

    def shadow(run_dir, report, *extra):
        return [sys.executable, "-m", "parity", "shadow", str(corpus), "--quiet",
                "--refactored", "tests.broken_twin", "--run-dir", str(run_dir),
                "--report", str(report), "--results", str(run_dir) + ".parquet", *extra]

    undisturbed = subprocess.run(shadow(tmp_path / "u", tmp_path / "u.json"), env=env,
                                 capture_output=True, text=True)
    assert undisturbed.returncode == 1, undisturbed.stderr

    proc = subprocess.Popen(shadow(tmp_path / "k", tmp_path / "k.json"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "k" / "checkpoint.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if json.loads(checkpoint.read_text())["next_shard"] >= 12:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = json.loads(checkpoint.read_text())["next_shard"]
    assert 12 <= killed_at < 60
    assert not (tmp_path / "k.json").exists()

    resumed = subprocess.run(shadow(tmp_path / "k", tmp_path / "k.json", "--resume"), env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 1, resumed.stderr
    a = json.loads((tmp_path / "u.json").read_text())
    b = json.loads((tmp_path / "k.json").read_text())
    assert _counts(a) == _counts(b)
    assert _records(a) == _records(b)
    assert a["functions"]["header_hash"]["mismatches"] == len(heights)
    import pyarrow.parquet as pq
    assert pq.read_table(str(tmp_path / "u") + ".parquet").equals(
        pq.read_table(str(tmp_path / "k") + ".parquet"))
    log_lines = (tmp_path / "k" / "mismatches.jsonl").read_text().splitlines()
    assert len(log_lines) == len(set(log_lines)) == a["mismatch_records_total"]


def test_resume_refuses_other_options(tmp_path, capsys):
    from parity.cli import main
    corpus = ROOT / "corpora" / "sample-valid"
    assert main(["shadow", str(corpus), "--quiet", "--run-dir", str(tmp_path / "r"),
                 "--functions", "header_hash"]) == 0
    assert main(["shadow", str(corpus), "--quiet", "--run-dir", str(tmp_path / "r"),
                 "--resume"]) == 2
    assert "another corpus or other options" in capsys.readouterr().err
    assert main(["shadow", str(corpus), "--quiet", "--run-dir", str(tmp_path / "none"),
                 "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err

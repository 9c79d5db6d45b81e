"""A newcomer's first hour (issue 15): one test, at least, for each point they tripped over.

Most runs here use the legacy twin on both sides: the points are about the harness, and
that keeps each test to a second or two (no JIT compilation).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parity.cli import build_parser, main
from parity.corpus import open_corpus
from parity.corpus.summary import bucket_label
from parity.modes import Mode
from parity.report import render_table
from parity.shadow import ShadowOptions, ShadowRun
from parity.state import ModeState
from parity.step import warm_up

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT / "corpora" / "sample-valid"
FAULTS = ROOT / "corpora" / "sample-faults"
README = (ROOT / "README.md").read_text()
LEGACY = ["--legacy", "kernels.legacy", "--refactored", "kernels.legacy"]
FLIP_TWIN = '''
import numpy as np
from kernels.legacy import *  # noqa: F403
from kernels.legacy import hash_headers as _hash_headers

def hash_headers(headers):
    out = _hash_headers(headers)
    heights = np.ascontiguousarray(headers[:, 4:12]).view("<u8").ravel()
    out[heights % 100 == 0, 7] ^= 0x10
    return out
'''


def cli(*argv: str, cwd: Path | None = None, env: dict | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """``parity ...`` in a fresh process running this checkout."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "parity", *argv], cwd=cwd or ROOT, env=full,
                          capture_output=True, text=True, timeout=timeout)


# 1. where the CLI lives ------------------------------------------------------------------
def test_1_readme_says_where_the_cli_lives():
    assert ".venv/bin/parity" in README and "source .venv/bin/activate" in README
    assert 'parity = "parity.cli:run"' in (ROOT / "pyproject.toml").read_text()


# 2. progress before the first result -----------------------------------------------------
def test_2_title_line_comes_before_any_work(tmp_path):
    """The title is on stderr while the first twin call is still blocked."""
    gate = tmp_path / "gate"
    (tmp_path / "gated.py").write_text(
        "import os, time\nfrom kernels.legacy import hash_headers as _h\n"
        "def hash_headers(headers):\n"
        f"    open({str(gate)!r} + '.started', 'w').close()\n"
        f"    while not os.path.exists({str(gate)!r} + '.go'):\n        time.sleep(0.02)\n"
        "    return _h(headers)\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "parity", "shadow", str(VALID), "--functions", "header_hash",
         "--legacy", str(tmp_path / "gated.py"), "--refactored", "kernels.legacy",
         "--run-dir", str(tmp_path / "run")], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{gate}.started").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        title = proc.stderr.readline()  # type: ignore[union-attr]
        assert title.startswith(f"parity shadow {VALID}: 1,000 blocks in 4 shard(s), mode shadow")
        assert f"legacy {tmp_path / 'gated.py'}, refactored kernels.legacy" in title
    finally:
        Path(f"{gate}.go").touch()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "header_hash" in out


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Slow:
    """The legacy twin, with a header hash as slow as a first compilation."""

    def hash_headers(self, headers):
        import kernels.legacy
        time.sleep(1.5)
        return kernels.legacy.hash_headers(headers)


def _warm(tmp_path, refactored, announce: bool) -> None:
    run = ShadowRun(ShadowOptions(corpus=str(VALID), functions=("header_hash",), quiet=True,
                                  run_dir=str(tmp_path / "r")), refactored=refactored)
    shard = run.corpus.read_shard(run.corpus.row_groups()[0])
    warm_up(shard, run.context(Mode.SHADOW), announce=announce)


def test_2_compiling_notice_only_when_the_warm_up_is_slow(tmp_path, monkeypatch):
    import kernels.legacy
    for twin, announce, tty, shown in ((_Slow(), True, True, True),
                                       (kernels.legacy, True, True, False),
                                       (_Slow(), True, False, False),
                                       (_Slow(), False, True, False)):
        err = _Tty() if tty else io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        _warm(tmp_path, twin, announce)
        text = err.getvalue()
        if shown:
            assert "compiling kernels (first run only): 1/2" in text
            assert text.endswith("compiling kernels (first run only): 2/2\n")
        else:
            assert text == ""


# 3. a twin from a file path; the replay command runs as printed ---------------------------
def test_3_file_twin_and_replay_command_from_anywhere(tmp_path):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "mytwin.py").write_text(FLIP_TWIN)
    shadow = cli("shadow", str(VALID), "--functions", "header_hash", "--refactored",
                 "./mytwin.py", "--legacy", "kernels.legacy", "--quiet", cwd=work)
    assert shadow.returncode == 1, shadow.stderr
    line = next(x for x in shadow.stdout.splitlines() if "replay: " in x)
    argv = shlex.split(line.split("replay: ", 1)[1])
    assert argv[:2] == ["parity", "replay"] and str(work / "mytwin.py") in argv
    replay = cli(*argv[1:], cwd=elsewhere)  # pasted into another directory
    assert replay.returncode == 1, replay.stderr
    assert json.loads(replay.stdout)["mismatches"][0]["function"] == "header_hash"


# 4. modes 2 and 3: the recorded mode, mode show, the promotion refusal --------------------
def test_4_mode_show_creates_nothing(tmp_path, capsys, monkeypatch):
    state = tmp_path / "sub" / "state.db"
    monkeypatch.delenv("CODEC_MODE", raising=False)
    assert main(["mode", "show", "--state", str(state)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "shadow" and shown["exists"] is False
    assert not (tmp_path / "sub").exists()
    monkeypatch.setenv("CODEC_MODE", "2")
    assert main(["mode", "show", "--state", str(state)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["name"] == "refactored_primary"
    assert f"no mode state at {state} yet" in err and "$CODEC_MODE" in err
    assert not (tmp_path / "sub").exists()


def test_4_recorded_mode_wins_with_a_notice(tmp_path, capsys, monkeypatch):
    state = tmp_path / "state.db"
    ModeState(state).close()  # recorded: shadow
    monkeypatch.setenv("CODEC_MODE", "refactored_only")
    assert main(["mode", "show", "--state", str(state)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["name"] == "shadow"
    assert err.count("\n") == 1 and f"parity: notice: {state} records mode shadow" in err
    assert f"parity mode set refactored_only --state {state}" in err
    proc = subprocess.Popen([sys.executable, "-m", "parity", "serve", "--port", "0", "--state",
                             str(state), "--mode", "2"], cwd=ROOT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert "parity serve: http://" in proc.stdout.readline()  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert "wins over --mode (refactored_primary)" in err and "parity mode set" in err


def test_4_promotion_refusal_says_how_to_get_comparisons(tmp_path, capsys):
    assert main(["mode", "set", "2", "--state", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fewer than 10,000" in err
    assert "parity serve --workload" in err and "parity shadow` runs do not count" in err


# 5. options that were ignored or hung ------------------------------------------------------
@pytest.mark.parametrize("argv, needle", [
    (["--engine", "dask", "--workers", "0"], "--workers must be at least 1, got 0"),
    (["--engine", "dask", "--workers", "-1"], "--workers must be at least 1, got -1"),
    (["--workers", "2"], "--workers goes with --engine dask"),
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler goes with --engine dask"),
    (["--aa", "--mode", "3"], "--aa always runs mode 1 (shadow), not refactored_only"),
    (["--aa", "--mode", "refactored_primary"], "not refactored_primary"),
    (["--aa", "--resume"], "--aa does not take --resume"),
])
def test_5_ignored_options_are_usage_errors(capsys, argv, needle):
    t0 = time.monotonic()
    assert main(["shadow", str(VALID), *argv]) == 2
    assert time.monotonic() - t0 < 1.0  # refused before any work, nothing started
    err = capsys.readouterr().err
    assert err.startswith("parity: error: ") and needle in err and err.count("\n") == 1


def test_5_dask_workers_0_exits_at_once():
    t0 = time.monotonic()
    r = cli("shadow", str(VALID), "--engine", "dask", "--workers", "0", timeout=20)
    assert r.returncode == 2 and r.stderr == "parity: error: --workers must be at least 1, got 0\n"
    assert time.monotonic() - t0 < 10  # interpreter start included; in process: < 1 s above


def test_5_serve_checks_before_the_banner(tmp_path):
    r = cli("serve", "--port", "0", "--state", str(tmp_path / "s.db"), "--workload",
            str(tmp_path / "nonexistent"), timeout=30)
    assert r.returncode == 2 and "parity serve:" not in r.stdout and r.stderr.count("\n") == 1
    r = cli("serve", "--port", "99999", timeout=30)
    assert r.returncode == 2 and "usage: parity serve" in r.stderr and "Traceback" not in r.stderr


# 6. an empty corpus --------------------------------------------------------------------------
def test_6_empty_corpus_shadow_is_clean(tmp_path):
    assert cli("corpus", "generate", str(tmp_path / "c"), "--blocks", "0",
               "--quiet").returncode == 0
    r = cli("shadow", str(tmp_path / "c"), "--quiet", "--run-dir", str(tmp_path / "r"),
            "--report", str(tmp_path / "r.json"), *LEGACY)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["mismatch_records_total"] == 0
    assert all(f["speedup"] is None and f["mismatches"] == 0
               for f in report["functions"].values())
    assert "shape" not in r.stdout and "nothing was run or compared" in r.stdout
    assert not re.search(r"\d\.\dx", r.stdout)  # no speedup figure anywhere


# 7. what the table says about the blocks and the speedups ---------------------------------
@pytest.fixture(scope="module")
def faults_report(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("faults")
    opts = ShadowOptions(corpus=str(FAULTS), legacy="kernels.legacy", refactored="kernels.legacy",
                         run_dir=str(tmp / "r"), quiet=True)
    return ShadowRun(opts).execute().report


def test_7_table_counts_blocks_served_and_rules(faults_report):
    table = render_table(faults_report)
    assert "0 mismatch" not in table
    line = next(x for x in table.splitlines() if x.startswith("blocks served:"))
    valid, invalid = faults_report["served"]["valid"], faults_report["served"]["invalid"]
    assert valid + invalid == 800 and invalid > 0
    assert line.startswith(f"blocks served: {valid:,} valid, {invalid:,} invalid (most broken "
                           "rules: ")
    assert "refact. s" in table.splitlines()[1]


def test_7_speedup_outside_its_spread_is_explained(faults_report):
    report = json.loads(json.dumps(faults_report))
    for f in report["functions"].values():
        f["speedup"] = {"overall": 20.0, "median": 20.0, "p10": 17.0, "p90": 39.0}
    assert "outside its p10-p90 spread" not in render_table(report)
    report["functions"]["validate"]["speedup"]["overall"] = 14.1
    note = [x for x in render_table(report).splitlines() if x.startswith("note:")]
    assert note == [note[0]] and note[0].startswith("note: validate speedup lies outside")
    assert "total legacy over total refactored time" in note[0]
    assert "the spread ranks the shards' own ratios" in note[0]


def test_7_verify_histogram_reads_as_ranges(capsys):
    assert [bucket_label(x) for x in (0, 1, 2, 8, 10_000, 10_001)] == \
        ["0", "1", "2-7", "8-31", "10000", ">10000"]
    assert main(["corpus", "verify", str(FAULTS)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "txids/block" in x)
    assert ">=" not in line and "2-7: " in line and ">10000: " in line
    counts = [int(part.rsplit(": ", 1)[1].replace(",", "")) for part in
              line.split("txids/block", 1)[1].split(", ")]
    assert sum(counts) == 800  # each block in exactly one bucket


# 8. help text everywhere, the subcommand's usage on errors, replays_served ---------------
def _parsers(parser: argparse.ArgumentParser, name: str = "parity"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_8_every_option_has_help():
    missing = [f"{name} {a.dest}" for name, p in _parsers(build_parser()) for a in p._actions
               if not isinstance(a, argparse._HelpAction) and not a.help]
    assert missing == []


@pytest.mark.parametrize("argv, usage", [
    (["shadow", str(VALID), "--bogus"], "usage: parity shadow"),
    (["corpus", "verify", str(VALID), "--bogus"], "usage: parity corpus verify"),
    (["mode", "show", "--bogus"], "usage: parity mode"),
])
def test_8_bad_flag_shows_the_subcommands_usage(capsys, argv, usage):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and "unrecognized arguments: --bogus" in err


def test_8_readme_explains_replays_served():
    line = next(x for x in README.split("\n\n") if "replays_served" in x)
    assert "COMMITMENT_REPLAY" in line


# 9. corpus import --shard-size, and the documented extra row group -------------------------
def test_9_import_shard_size_and_file_boundaries(tmp_path, capsys):
    jsonl = tmp_path / "v.jsonl"
    assert main(["corpus", "export", str(VALID), "--jsonl", str(jsonl)]) == 0
    assert main(["corpus", "import", "--jsonl", str(jsonl), str(tmp_path / "a"),
                 "--shard-size", "100", "--rows-per-file", "500"]) == 0
    assert len(open_corpus(tmp_path / "a").row_groups()) == 10
    # 300-block shards in 500-row files: the shard across the boundary becomes two groups
    assert main(["corpus", "import", "--jsonl", str(jsonl), str(tmp_path / "b"),
                 "--shard-size", "300", "--rows-per-file", "500"]) == 0
    assert [g.rows for g in open_corpus(tmp_path / "b").row_groups()] == [300, 200, 100, 300, 100]
    capsys.readouterr()
    assert main(["corpus", "import", "--jsonl", str(jsonl), str(tmp_path / "c"),
                 "--shard-size", "0"]) == 2
    assert "--shard-size must be at least 1" in capsys.readouterr().err
    doc = (ROOT / "corpora" / "README.md").read_text()
    assert "--shard-size 300" in doc and "300, 200 | 100, 300, 100" in doc


# 10. comparisons flushed at exit: tests/test_state.py::test_short_script_comparisons_survive_exit

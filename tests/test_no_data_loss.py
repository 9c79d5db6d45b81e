"""Every command that takes an output path leaves a user's files alone, with and without
--force: a one-line error, exit 2, and the file (or directory) exactly as it was."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CORPUS = ROOT / "corpora" / "sample-valid"


def parity(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "parity", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def precious(tmp_path: Path) -> Path:
    d = tmp_path / "user"
    d.mkdir()
    (d / "thesis.txt").write_text("years of work")
    return d


def intact(d: Path) -> None:
    assert sorted(p.name for p in d.iterdir()) == ["thesis.txt"]
    assert (d / "thesis.txt").read_text() == "years of work"


def refused(r, *words):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("parity: error: ") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    for w in words:
        assert w in r.stderr


OUTPUTS = [
    ("--run-dir", lambda d: d),                      # a directory holding a user's file
    ("--results", lambda d: d / "thesis.txt"),       # a user's file
    ("--report", lambda d: d / "thesis.txt"),
    ("--metrics-file", lambda d: d / "thesis.txt"),
    ("--results", lambda d: d),                      # a directory where a file is due
    ("--report", lambda d: d),
]


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])
@pytest.mark.parametrize("flag, target", OUTPUTS, ids=[f"{o[0]}-{i}" for i, o in enumerate(OUTPUTS)])
def test_shadow_outputs_never_destroy(tmp_path, flag, target, force):
    d = precious(tmp_path)
    extra = [] if flag == "--run-dir" else ["--run-dir", tmp_path / "run"]
    r = parity("shadow", CORPUS, "--quiet", flag, target(d), *extra, *force)
    refused(r)
    intact(d)


@pytest.mark.parametrize("path", ["/", "~", "."])
def test_run_dir_never_a_system_or_home_directory(path):
    r = parity("shadow", CORPUS, "--quiet", "--run-dir", path, "--force")
    refused(r, "refusing")


def test_second_run_needs_force_and_replaces_only_its_own(tmp_path):
    out = tmp_path / "run"
    args = ["shadow", CORPUS, "--quiet", "--run-dir", out, "--report", tmp_path / "r.json",
            "--results", tmp_path / "res.parquet"]
    assert parity(*args).returncode == 0
    refused(parity(*args), "--force")
    assert parity(*args, "--force").returncode == 0
    (out / "notes.txt").write_text("mine")
    refused(parity(*args, "--force"), "notes.txt")
    assert (out / "notes.txt").read_text() == "mine"


def test_resume_needs_a_parity_run_directory(tmp_path):
    d = precious(tmp_path)
    refused(parity("shadow", CORPUS, "--quiet", "--run-dir", d, "--resume"),
            "not a parity run directory")
    intact(d)

"""``parity shadow`` outputs that collide (one path however written, or one inside
another) are refused before any work: exit 2, one line, nothing written or changed."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from parity.cli import main
from parity.errors import ParityError
from parity.outputs import refuse_overlaps, write_marker

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "corpora" / "sample-faults"


def _tree(top: Path) -> dict[str, tuple]:
    """Every entry under ``top``: kind, size, modification time and content."""
    out = {}
    for dirpath, dirs, files in os.walk(top):
        for name in dirs + files:
            p = Path(dirpath, name)
            st = p.lstat()
            content = os.readlink(p) if p.is_symlink() else \
                (p.read_bytes() if p.is_file() else None)
            out[str(p.relative_to(top))] = (st.st_mode, st.st_size, st.st_mtime_ns, content)
    return out


def _symlink_to_file(d: Path) -> None:
    (d / "link.json").symlink_to("r.json")  # dangling: r.json is written by the run


def _symlinked_dir(d: Path) -> None:
    (d / "out").mkdir()
    (d / "alias").symlink_to("out")


def _hard_link(d: Path) -> None:
    (d / "r.json").write_text("{}")
    os.link(d / "r.json", d / "also.json")


def _nothing(d: Path) -> None:
    pass


#: (arguments after the corpus, set-up in the working directory, the two options named,
#: the path named, relative to the working directory)
CASES: list[tuple[list[str], Callable[[Path], None], tuple[str, str], str]] = [
    (["--results", "r.json", "--report", "r.json"], _nothing, ("--results", "--report"),
     "r.json"),
    (["--report", "./r.json", "--html", "r.json"], _nothing, ("--report", "--html"), "r.json"),
    (["--html", "sub/../r.html", "--metrics-file", "r.html"], _nothing,
     ("--html", "--metrics-file"), "r.html"),
    (["--report", "link.json", "--results", "r.json"], _symlink_to_file,
     ("--results", "--report"), "r.json"),
    (["--report", "alias/r.json", "--html", "out/r.json"], _symlinked_dir,
     ("--report", "--html"), "out/r.json"),
    (["--report", "r.json", "--html", "also.json"], _hard_link, ("--report", "--html"),
     "r.json"),
    (["--run-dir", "run", "--metrics-file", "run/checkpoint.json"], _nothing,
     ("--run-dir", "--metrics-file"), "run"),
    (["--run-dir", "run", "--results", "./run/results/part-000000.arrow"], _nothing,
     ("--run-dir", "--results"), "run"),
    (["--run-dir", "run", "--report", "run"], _nothing, ("--run-dir", "--report"), "run"),
    (["--results", f".parity-run/{SAMPLE.name}/r.parquet"], _nothing,
     ("--run-dir", "--results"), f".parity-run/{SAMPLE.name}"),  # the default run directory
    (["--aa", "--report", ".parity-run/aa/legacy/summary.json"], _nothing,
     ("--run-dir", "--report"), ".parity-run/aa"),
    (["--run-dir", "run/", "--shrink", "1", "--shrink-out", "run"], _nothing,
     ("--run-dir", "--shrink-out"), "run"),
    (["--report", "r.json", "--results", "r.json/x.parquet"], _nothing,
     ("--report", "--results"), "r.json"),
]


@pytest.mark.parametrize("args,setup,options,named", CASES,
                         ids=[" ".join(c[0]) for c in CASES])
def test_colliding_outputs_are_refused_before_any_work(tmp_path, monkeypatch, capsys, args,
                                                       setup, options, named):
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    before = _tree(tmp_path)
    code = main(["shadow", str(SAMPLE), "--quiet", *args])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("parity: error: ")
    assert all(o in err for o in options), err
    assert f"({(tmp_path / named).resolve()})" in err, err
    assert out == ""
    assert _tree(tmp_path) == before  # nothing written


def test_an_earlier_run_directory_is_left_as_it_was(tmp_path, monkeypatch, capsys):
    """--force with a colliding output: the earlier run's directory is not cleared."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    write_marker(run, "run")
    (run / "checkpoint.json").write_text('{"next_shard": 1}')
    (run / "mismatches.jsonl").write_text('{"block": 3}\n')
    before = _tree(tmp_path)
    code = main(["shadow", str(SAMPLE), "--quiet", "--force", "--run-dir", "run",
                 "--report", "run/mismatches.jsonl"])
    assert code == 2 and "--report run/mismatches.jsonl is inside --run-dir run" in \
        capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_distinct_outputs_still_run(tmp_path, monkeypatch, capsys):
    """Names that share a prefix (run, run.json, run2/) are distinct paths."""
    monkeypatch.chdir(tmp_path)
    outputs = {"--report": "run.json", "--results": "run2/r.parquet", "--html": "run.html",
               "--metrics-file": "run.prom"}
    code = main(["shadow", str(SAMPLE), "--quiet", "--run-dir", "run",
                 *[x for kv in outputs.items() for x in kv]])
    assert code == 0, capsys.readouterr().err
    assert all((tmp_path / p).is_file() for p in outputs.values())
    assert (tmp_path / "run" / "checkpoint.json").is_file()


def test_refuse_overlaps_skips_options_not_given_and_accepts_siblings(tmp_path):
    refuse_overlaps([("--a", tmp_path / "x"), ("--b", None), ("--c", tmp_path / "x2"),
                     ("--d", tmp_path / "y" / "x")])
    with pytest.raises(ParityError, match=r"^--b .* and --d .* are the same path"):
        refuse_overlaps([("--a", None), ("--b", tmp_path / "x"), ("--c", tmp_path / "y"),
                         ("--d", tmp_path / "y" / ".." / "x")])


def test_a_symbolic_link_loop_is_left_to_the_write(tmp_path):
    """No traceback here (Path.resolve raises RuntimeError on a loop in Python 3.11)."""
    (tmp_path / "loop").symlink_to("loop")
    refuse_overlaps([("--report", tmp_path / "loop" / "r.json"), ("--html", tmp_path / "r.html")])
    with pytest.raises(ParityError, match="same path"):
        refuse_overlaps([("--report", tmp_path / "loop"), ("--html", f"{tmp_path}/./loop")])

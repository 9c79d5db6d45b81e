"""parity.outputs: nothing parity did not write is ever deleted or overwritten."""
from pathlib import Path

import pytest

from parity.errors import ParityError
from parity.outputs import (
    MARKER,
    OutputDir,
    OutputFile,
    atomic_write_text,
    json_has,
    read_marker,
    refuse_dangerous,
    staging_dir,
)


def user_dir(tmp_path: Path) -> Path:
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.txt").write_text("years of work")
    return d


@pytest.mark.parametrize("force", [False, True])
def test_foreign_directory_refused_with_and_without_force(tmp_path, force):
    d = user_dir(tmp_path)
    out = OutputDir(d, "run", ["*.jsonl"], "--run-dir")
    with pytest.raises(ParityError, match="not written by parity"):
        out.prepare(force)
    assert (d / "thesis.txt").read_text() == "years of work"
    assert not (d / MARKER).exists()


def test_marked_directory_needs_force_and_keeps_foreign_files(tmp_path):
    d = tmp_path / "run"
    out = OutputDir(d, "run", ["*.jsonl", "results"], "--run-dir")
    out.prepare(False)
    assert read_marker(d)["kind"] == "run"
    (d / "log.jsonl").write_text("x")
    (d / "results").mkdir()
    (d / "results" / "part.parquet").write_text("y")
    with pytest.raises(ParityError, match="--force"):
        out.prepare(False)
    out.prepare(True)
    assert sorted(p.name for p in d.iterdir()) == [MARKER]
    (d / "notes.txt").write_text("mine")
    with pytest.raises(ParityError, match="did not write"):
        out.prepare(True)
    assert (d / "notes.txt").read_text() == "mine"


def test_empty_directory_is_taken(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    OutputDir(d, "run", [], "--run-dir").prepare(False)
    assert read_marker(d) is not None


@pytest.mark.parametrize("path", ["/", "~", ".", ".."])
def test_dangerous_paths_refused(path, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParityError, match="refusing"):
        refuse_dangerous(Path(path), "--run-dir")


def test_project_root_refused():
    from parity.outputs import PROJECT_ROOT
    with pytest.raises(ParityError, match="refusing"):
        OutputDir(PROJECT_ROOT, "run", ["*"], "--run-dir").prepare(True)


def test_file_not_ours_refused_with_force(tmp_path):
    f = tmp_path / "report.json"
    f.write_text('{"mine": 1}')
    out = OutputFile(f, "--report", json_has("format", "parity-report"))
    for force in (False, True):
        with pytest.raises(ParityError, match="not written by parity"):
            out.write(force, lambda tmp: tmp.write_text("{}"))
    assert f.read_text() == '{"mine": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temp left


def test_file_ours_replaced_only_with_force(tmp_path):
    f = tmp_path / "report.json"
    out = OutputFile(f, "--report", json_has("format", "parity-report"))
    out.write(False, lambda tmp: tmp.write_text('{"format": "parity-report", "n": 1}'))
    with pytest.raises(ParityError, match="--force"):
        out.write(False, lambda tmp: tmp.write_text('{"format": "parity-report", "n": 2}'))
    out.write(True, lambda tmp: tmp.write_text('{"format": "parity-report", "n": 2}'))
    assert '"n": 2' in f.read_text()


def test_symlink_and_directory_refused(tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep")
    link = tmp_path / "out.json"
    link.symlink_to(target)
    with pytest.raises(ParityError, match="symbolic link"):
        OutputFile(link, "--report", lambda p: True).write(True, lambda t: t.write_text("x"))
    with pytest.raises(ParityError, match="is a directory"):
        OutputFile(tmp_path, "--report", lambda p: True).write(True, lambda t: t.write_text("x"))
    assert target.read_text() == "keep"


def test_failed_write_leaves_nothing(tmp_path):
    f = tmp_path / "out.txt"

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk on fire")
    with pytest.raises(RuntimeError):
        OutputFile(f, "--x", lambda p: True).write(False, boom)
    assert list(tmp_path.iterdir()) == []


def test_temp_name_never_clobbers_user_file(tmp_path):
    f = tmp_path / "out.txt"
    (tmp_path / "out.txt.tmp").write_text("user's")
    atomic_write_text(f, "ours")
    assert (tmp_path / "out.txt.tmp").read_text() == "user's"
    assert f.read_text() == "ours"


def test_staging_dir_removed_on_failure_only_itself(tmp_path):
    target = tmp_path / "corpus"
    with pytest.raises(ValueError):
        with staging_dir(target) as tmp:
            (tmp / "a").write_text("x")
            raise ValueError("bad line")
    assert list(tmp_path.iterdir()) == []


def test_adopt_replaces_marked_output(tmp_path):
    target = tmp_path / "corpus"
    out = OutputDir(target, "corpus", ["manifest.json", "*.parquet"], "OUT")
    for n in (1, 2):
        with staging_dir(target) as tmp:
            (tmp / "manifest.json").write_text(str(n))
            if n == 2:
                with pytest.raises(ParityError, match="--force"):
                    out.adopt(tmp, force=False)
            out.adopt(tmp, force=n == 2)
    assert (target / "manifest.json").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]


def test_read_only_parent(tmp_path, readonly):
    ro = tmp_path / "ro"
    ro.mkdir()
    with readonly(ro):
        with pytest.raises(OSError):
            OutputDir(ro / "run", "run", [], "--run-dir").prepare(False)
    assert list(ro.iterdir()) == []

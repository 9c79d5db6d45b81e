"""Hostile corpora and outputs: every refusal is one line naming the file and the
reason (exit 2), and nothing parity did not write is ever removed or overwritten."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels.jit as jit
from parity.cli import main
from parity.corpus import open_corpus
from parity.corpus.jsonl import export_jsonl, import_jsonl
from parity.corpus.manifest import MAX_FILES, MAX_MANIFEST_BYTES, read_manifest
from parity.corpus.reader import file_blake3
from parity.corpus.shard import SCHEMA
from parity.errors import CorpusError, ParityError
from parity.outputs import MARKER

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "corpora"
EDGE = (CORPORA / "edge-cases.jsonl").read_text().splitlines()
USER = "years of work\n"


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def refused(capsys, *argv: str, needles: tuple[str, ...] = ()) -> str:
    code, err = run(capsys, *argv)
    assert code == 2, err
    assert err.startswith("parity: error: ") and err.count("\n") == 1, err
    for n in needles:
        assert n in err, err
    return err


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def user_dir(path: Path) -> Path:
    path.mkdir()
    (path / "thesis.txt").write_text(USER)
    return path


def jsonl(path: Path, lines: list[str] = EDGE[:6]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def rewrite(corpus: Path, name: str, table: pa.Table, **kw) -> None:
    """Replace a data file (or add one) and fix its manifest entry."""
    pq.write_table(table, corpus / name, **kw)
    m = json.loads((corpus / "manifest.json").read_text())
    entry = {"path": name, "rows": table.num_rows, "blake3": file_blake3(corpus / name)}
    m["files"] = [entry if f["path"] == name else f for f in m["files"]]
    if entry not in m["files"]:
        m["files"].append(entry)
    (corpus / "manifest.json").write_text(json.dumps(m))


@pytest.fixture()
def small(tmp_path):
    dst = tmp_path / "c"
    shutil.copytree(CORPORA / "sample-valid", dst)
    return dst


# ---- 1. outputs: a user's directory or file survives, with and without --force -----------

@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("cmd", ["import", "generate"])
def test_foreign_output_directory_survives(tmp_path, capsys, monkeypatch, cmd, force):
    def no_work(*_a: object) -> None:
        raise AssertionError("work started before the output was checked")
    monkeypatch.setattr("parity.corpus.generate._shard", no_work)
    out = user_dir(tmp_path / "out")
    argv = (["corpus", "import", "--jsonl", jsonl(tmp_path / "in.jsonl"), out] if cmd == "import"
            else ["corpus", "generate", out, "--blocks", "1000"])
    refused(capsys, *argv, *force, needles=(str(out), "not written by parity"))
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]
    assert (out / "thesis.txt").read_text() == USER
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["out"] + (["in.jsonl"] if cmd == "import" else []))  # no staging directory left


def test_output_is_checked_before_the_input_is_read(tmp_path, capsys):
    out = user_dir(tmp_path / "out")
    refused(capsys, "corpus", "import", "--jsonl", tmp_path / "missing.jsonl", out,
            needles=("OUT", "not written by parity"))


def test_old_corpus_without_marker_is_not_replaced(small, tmp_path, capsys):
    before = {p.name: p.read_bytes() for p in small.iterdir()}
    refused(capsys, "corpus", "import", "--jsonl", jsonl(tmp_path / "in.jsonl"), small, "--force",
            needles=("not written by parity",))
    assert {p.name: p.read_bytes() for p in small.iterdir()} == before


def test_force_replaces_only_a_parity_corpus(tmp_path, capsys):
    out = tmp_path / "g"
    assert run(capsys, "corpus", "generate", out, "--blocks", "20", "--quiet")[0] == 0
    assert (out / MARKER).is_file()
    first = (out / "manifest.json").read_text()
    refused(capsys, "corpus", "generate", out, "--blocks", "20", "--seed", "1",
            needles=("use --force",))
    assert run(capsys, "corpus", "import", "--jsonl", jsonl(tmp_path / "in.jsonl"), out,
               "--force")[0] == 0
    assert open_corpus(out).blocks == 5 and (out / "manifest.json").read_text() != first
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "blocks-00000.parquet",
                                                     "manifest.json"]
    for p in (out, out / "manifest.json", out / "blocks-00000.parquet"):  # not private 0600
        assert p.stat().st_mode & 0o777 == (0o777 if p.is_dir() else 0o666) & ~umask(), p
    (out / "notes.txt").write_text(USER)  # the user's file in parity's corpus
    for force in ([], ["--force"]):
        refused(capsys, "corpus", "generate", out, "--blocks", "20", *force)
    assert (out / "notes.txt").read_text() == USER and open_corpus(out).blocks == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g", "in.jsonl"]


def test_export_signature_and_force(small, tmp_path, capsys):
    dst = tmp_path / "x.jsonl"
    assert run(capsys, "corpus", "export", small, "--jsonl", dst)[0] == 0
    assert dst.stat().st_mode & 0o777 == 0o666 & ~umask()
    head = json.loads(dst.read_text().split("\n", 1)[0])
    assert head["written_by"] == "parity corpus export" and "corpus" in head
    refused(capsys, "corpus", "export", small, "--jsonl", dst, needles=("use --force",))
    assert run(capsys, "corpus", "export", small, "--jsonl", dst, "--force")[0] == 0
    assert import_jsonl(dst, tmp_path / "back", rows_per_file=500) == 1000  # key ignored
    mine = tmp_path / "mine.jsonl"
    mine.write_text(EDGE[0] + "\n" + USER)  # a corpus line without the signature
    for force in ([], ["--force"]):
        refused(capsys, "corpus", "export", small, "--jsonl", mine, *force,
                needles=("mine.jsonl", "not written by parity"))
    assert mine.read_text() == EDGE[0] + "\n" + USER
    folder = user_dir(tmp_path / "folder")
    refused(capsys, "corpus", "export", small, "--jsonl", folder, "--force",
            needles=("is a directory",))
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back", "c", "folder", "mine.jsonl",
                                                          "x.jsonl"]


def test_read_only_destination_is_one_line(small, tmp_path, capsys, readonly):
    ro = tmp_path / "ro"
    ro.mkdir()
    src = jsonl(tmp_path / "in.jsonl")
    with readonly(ro):
        refused(capsys, "corpus", "import", "--jsonl", src, ro / "out", needles=("ro",))
        refused(capsys, "corpus", "generate", ro / "out", "--blocks", "3", "--quiet")
        refused(capsys, "corpus", "export", small, "--jsonl", ro / "x.jsonl")
    assert list(ro.iterdir()) == []


# ---- 3. a failed import leaves nothing behind (and keeps what was there) ----------------

@pytest.mark.parametrize("bad", [
    b'{"header": ', b'{"header": {}}\x00', EDGE[3].encode() + b" trailing", b"\xff\xfe{}",
    EDGE[3].replace('"txids": [', '"txids": [null, ', 1).encode(),
    b"[" * 100_000, b'{"target": 1' + b"0" * 5000 + b"}",
], ids=["truncated", "nul", "trailing", "utf8", "null-txid", "deep", "digits"])
def test_failed_import_leaves_nothing(tmp_path, capsys, bad):
    src = tmp_path / "bad.jsonl"
    src.write_bytes("\n".join(EDGE[:4]).encode() + b"\n" + bad + b"\n" + EDGE[5].encode())
    refused(capsys, "corpus", "import", "--jsonl", src, tmp_path / "out",
            needles=("bad.jsonl:5: ",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]
    good = tmp_path / "good"
    import_jsonl(jsonl(tmp_path / "in.jsonl"), good)
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    refused(capsys, "corpus", "import", "--jsonl", src, good, "--force")
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "good", "in.jsonl"]


# ---- 5. the empty corpus --------------------------------------------------------------

def test_empty_corpus_generates_verifies_and_round_trips(tmp_path, capsys):
    out = tmp_path / "e"
    assert run(capsys, "corpus", "generate", out, "--blocks", "0", "--quiet")[0] == 0
    code = main(["corpus", "verify", str(out)])
    assert code == 0 and "blocks      0 in 1 file(s), 0 row group(s)" in capsys.readouterr().out
    assert open_corpus(out).row_groups() == [] and list(open_corpus(out).shards()) == []
    assert export_jsonl(out, tmp_path / "e.jsonl") == 0
    assert import_jsonl(tmp_path / "e.jsonl", tmp_path / "back") == 0
    assert open_corpus(tmp_path / "back").blocks == 0


# ---- 2. reader: nulls, empty row groups, symlinks, repeats, caps, hostile JSON -------------

@pytest.mark.parametrize("column, value", [
    ("numbers", [None]), ("txids", [None]), ("indices", [0, None]), ("numbers", None),
    ("target", None)])
def test_nulls_are_refused(small, capsys, column, value):
    t = pq.read_table(small / "blocks-00001.parquet")
    values = t.column(column).to_pylist()
    values[7] = value
    rewrite(small, "blocks-00001.parquet", t.set_column(
        SCHEMA.names.index(column), SCHEMA.field(column), pa.array(values, SCHEMA.field(column).type)))
    refused(capsys, "corpus", "verify", small,
            needles=("blocks-00001.parquet", f"column {column} has 1 null"))


def test_zero_row_groups_and_empty_files_change_nothing(small, tmp_path, capsys):
    t = pq.read_table(small / "blocks-00000.parquet")
    with pq.ParquetWriter(small / "blocks-00000.parquet", SCHEMA) as w:
        for part in (t.slice(0, 0), t.slice(0, 100), t.slice(100, 0), t.slice(100)):
            w.write_table(part)
    m = json.loads((small / "manifest.json").read_text())
    m["files"][0]["blake3"] = file_blake3(small / "blocks-00000.parquet")
    (small / "manifest.json").write_text(json.dumps(m))
    assert pq.ParquetFile(small / "blocks-00000.parquet").metadata.num_row_groups == 4
    rewrite(small, "empty.parquet", SCHEMA.empty_table())  # a listed file of no rows
    c = open_corpus(small)
    assert all(g.rows for g in c.row_groups())
    assert [g.start for g in c.row_groups()] == [0, 100, 500, 750]
    got = np.concatenate([jit.hash_headers(s.headers) for s in c.shards()])
    want = jit.hash_headers(np.concatenate([s.headers for s in
                                            open_corpus(CORPORA / "sample-valid").shards()]))
    assert np.array_equal(got, want)
    code = main(["shadow", str(small), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert code == 0, capsys.readouterr()  # was 1: a false "shape" mismatch on 0 rows


def test_data_file_symlinked_outside_is_refused(small, tmp_path, capsys):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(small / "blocks-00000.parquet", outside / "blocks-00000.parquet")
    (small / "blocks-00000.parquet").symlink_to(outside / "blocks-00000.parquet")
    refused(capsys, "corpus", "verify", small,
            needles=("blocks-00000.parquet", "outside the corpus directory"))


def test_directory_symlinked_outside_is_refused(small, tmp_path, capsys):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(small / "blocks-00000.parquet", outside / "b.parquet")
    (small / "sub").symlink_to(outside)
    m = json.loads((small / "manifest.json").read_text())
    m["files"][0]["path"] = "sub/b.parquet"
    (small / "manifest.json").write_text(json.dumps(m))
    refused(capsys, "corpus", "verify", small, needles=("sub/b.parquet", "outside the corpus"))


@pytest.mark.parametrize("how", ["same", "dot", "symlink", "hardlink"])
def test_repeated_file_entries_are_refused(small, capsys, how):
    m = json.loads((small / "manifest.json").read_text())
    first = m["files"][0]
    dup = dict(first, path={"same": first["path"], "dot": "./" + first["path"],
                            "symlink": "alias.parquet", "hardlink": "alias.parquet"}[how])
    if how == "symlink":
        (small / "alias.parquet").symlink_to(first["path"])
    if how == "hardlink":
        os.link(small / first["path"], small / "alias.parquet")
    m["files"].append(dup)
    m["blocks"] += first["rows"]
    (small / "manifest.json").write_text(json.dumps(m))
    needle = "repeats files[0]" if how in ("same", "dot") else "same file as blocks-00000.parquet"
    refused(capsys, "corpus", "verify", small, needles=("manifest.json" if how in ("same", "dot")
                                                        else "alias.parquet", needle))


def test_fifo_data_file_is_refused_without_hanging(small, capsys):
    m = json.loads((small / "manifest.json").read_text())
    m["files"].append({"path": "pipe", "rows": 0, "blake3": "0" * 64})
    (small / "manifest.json").write_text(json.dumps(m))
    os.mkfifo(small / "pipe")
    refused(capsys, "corpus", "verify", small, needles=("pipe", "not a regular file"))


@pytest.mark.parametrize("path", ["", ".", "/etc/passwd", "../c/x", "a\x00b", "sub/../x"])
def test_bad_file_paths_are_refused(small, capsys, path):
    m = json.loads((small / "manifest.json").read_text())
    m["files"][0]["path"] = path
    (small / "manifest.json").write_text(json.dumps(m))
    refused(capsys, "corpus", "verify", small, needles=("manifest.json", "files[0].path"))


def test_too_many_entries_and_too_large_a_manifest(small, capsys):
    m = json.loads((small / "manifest.json").read_text())
    m["files"] = [dict(m["files"][0], path=f"f{i}") for i in range(MAX_FILES + 1)]
    (small / "manifest.json").write_text(json.dumps(m))
    refused(capsys, "corpus", "verify", small, needles=("manifest.json", "100,001 entries"))
    (small / "manifest.json").write_text(" " * MAX_MANIFEST_BYTES + "{}")
    refused(capsys, "corpus", "verify", small, needles=("manifest.json", "larger than 32 MiB"))


@pytest.mark.parametrize("text, reason", [
    ("[" * 100_000, "nested too deeply"),
    ('{"format": "parity-corpus", "version": 1, "blocks": 1' + "0" * 5000 + "}", "digits"),
    ("\ufeff{}", "not valid JSON"),
    ('{"format": "parity-corpus", "version": true}', "unsupported version"),
])
def test_hostile_manifest_json(small, capsys, text, reason):
    (small / "manifest.json").write_text(text)
    refused(capsys, "corpus", "verify", small, needles=("manifest.json: malformed", reason))
    (small / "manifest.json").write_bytes(b'{"format": "\xff"}')
    refused(capsys, "corpus", "verify", small, needles=("manifest.json", "not UTF-8"))


@pytest.mark.parametrize("edit, needle", [
    (lambda b: b.update(txids=["0 " * 32]), "txids[0]: not hex"),
    (lambda b: b["header"].update(work_score="7ff8 00000000000"), "not hex"),
    (lambda b: b["header"].update(work_score=10**400), "too large for a float"),
    (lambda b: b.update(numbers=[[[[1]]]]), "numbers[0]: expected an integer"),
])
def test_hostile_block_values(tmp_path, capsys, edit, needle):
    block = json.loads(EDGE[3])
    edit(block)
    src = jsonl(tmp_path / "bad.jsonl", EDGE[:3] + [json.dumps(block)])
    refused(capsys, "corpus", "import", "--jsonl", src, tmp_path / "out",
            needles=("bad.jsonl:4: ", needle))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


# ---- 4. fuzz: only success or ParityError, never a traceback or a hang -----------------

VALID_MANIFEST = (CORPORA / "sample-valid" / "manifest.json").read_bytes()
VALID_JSONL = "\n".join(EDGE[:4]).encode() + b"\n"


def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for kind, pos, chunk in edits:
        pos %= len(data) + 1
        if kind == 0:
            data = data[:pos] + chunk + data[pos:]
        elif kind == 1:
            data = data[:pos] + data[pos + len(chunk) + 1:]
        else:
            data = data[:pos] + chunk + data[pos + len(chunk):]
    return data


_TOKENS = st.sampled_from([b"[", b"{", b"}", b"]", b",", b":", b'"', b"\\", b"null", b"\x00",
                           b"\xff", b"-", b"9" * 30, b"1e999", b"NaN", b"\n", b"0" * 64])
EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6),
                           st.one_of(st.binary(max_size=8), _TOKENS)), min_size=1, max_size=6)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c,
                                                                        max_size=4), max_leaves=12)


def _manifest_ok(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "manifest.json").write_bytes(data)
        try:
            read_manifest(Path(d))
        except CorpusError as exc:
            assert "\n" not in str(exc)


@given(EDITS)
def test_fuzz_manifest_mutations(edits):
    _manifest_ok(mutate(VALID_MANIFEST, edits))


@given(st.binary(max_size=400))
def test_fuzz_manifest_random_bytes(data):
    _manifest_ok(data)


@given(st.sampled_from(["format", "version", "blocks", "now", "difficulty_target", "anchor",
                        "files"]), JSON)
def test_fuzz_manifest_field_values(key, value):
    m = json.loads(VALID_MANIFEST)
    m[key] = value
    _manifest_ok(json.dumps(m).encode())


def _import_ok(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "in.jsonl", Path(d) / "out"
        src.write_bytes(data)
        try:
            import_jsonl(src, out)
        except ParityError as exc:
            assert "\n" not in str(exc)
            assert sorted(p.name for p in Path(d).iterdir()) == ["in.jsonl"]
        else:
            assert open_corpus(out).blocks >= 0


@given(EDITS)
def test_fuzz_jsonl_mutations(edits):
    _import_ok(mutate(VALID_JSONL, edits))


@given(st.binary(max_size=400))
def test_fuzz_jsonl_random_bytes(data):
    _import_ok(data)


@given(st.sampled_from(["header", "txids", "numbers", "target", "indices", "corpus"]), JSON)
def test_fuzz_jsonl_field_values(key, value):
    lines = [json.loads(x) for x in EDGE[:3]]
    (lines[0]["corpus"] if key == "corpus" else lines[2])[
        "anchor" if key == "corpus" else key] = value
    _import_ok("\n".join(json.dumps(x) for x in lines).encode())


def test_cli_subprocess_errors_are_one_line(tmp_path):
    cases = []
    for name, text in (("deep", "[" * 100_000), ("digits", "1" * 5000)):
        d = tmp_path / name
        d.mkdir()
        (d / "manifest.json").write_text(text)
        cases.append(["corpus", "verify", str(d)])
    for name, data in (("nul.jsonl", VALID_JSONL + b'{"a": "\x00"}\n'),
                       ("utf8.jsonl", VALID_JSONL + b"\xc3\x28\n"),
                       ("deep.jsonl", VALID_JSONL + b"[" * 100_000 + b"\n")):
        (tmp_path / name).write_bytes(data)
        cases.append(["corpus", "import", "--jsonl", str(tmp_path / name), str(tmp_path / "o")])
    for argv in cases:
        r = subprocess.run([sys.executable, "-m", "parity", *argv], capture_output=True, text=True,
                           cwd=ROOT, timeout=120)
        assert r.returncode == 2, (argv, r.stderr)
        assert r.stderr.startswith("parity: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "o").exists()

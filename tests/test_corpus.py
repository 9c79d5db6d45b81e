"""Corpus format, generator ground truth, JSONL round trip and bad input."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import kernels.jit as jit
import kernels.legacy as legacy
from kernels import constants as C
from kernels.constants import rule_names
from parity.cli import main
from parity.corpus import open_corpus
from parity.corpus.generate import GenerateOptions, generate, read_truth
from parity.corpus.jsonl import block_to_json, export_jsonl, import_jsonl
from parity.errors import CorpusError

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "corpora"


def validate_corpus(twin, path):
    c = open_corpus(path)
    m = c.manifest
    seen, parent, out = twin.new_replay_state(), m.anchor, []
    for shard in c.shards():
        out.append(twin.validate_blocks(*shard.arrays(), now=m.now,
                                        difficulty_target=m.difficulty_target, parent=parent,
                                        replay=seen))
        last = shard.headers[-1].tobytes()
        h = twin.decode_header(last)
        parent = (h["height"], twin.hash_header(last), h["timestamp"])
    return np.concatenate(out) if out else np.zeros(0, np.uint32)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "faulty"
    generate(out, GenerateOptions(blocks=1500, seed=11, fault_rate=0.4, shard_size=333,
                                  rows_per_file=700))
    return out


def test_generator_truth_equals_legacy_and_jit(faulty):
    truth = read_truth(faulty)
    every = 0
    for s in truth:
        every |= int(s)
    assert every == C.ALL_RULES  # every rule broken somewhere
    assert np.array_equal(validate_corpus(legacy, faulty), truth)
    assert np.array_equal(validate_corpus(jit, faulty), truth)


def test_generator_is_deterministic(tmp_path):
    for name in ("a", "b"):
        generate(tmp_path / name, GenerateOptions(blocks=300, seed=5, fault_rate=0.2,
                                                  shard_size=100))
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert a == b
    generate(tmp_path / "c", GenerateOptions(blocks=300, seed=6, shard_size=100))
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["files"] != a["files"]


def test_block_files_store_hash_columns_plain_and_read_like_zstd_ones(faulty, tmp_path):
    """The header and txids columns (hash bytes) are written uncompressed, the rest with
    zstd; a file written with zstd everywhere (corpora of earlier versions, the samples)
    reads into the same shards."""
    c = open_corpus(faulty)
    f = c.path / c.manifest.files[0].path
    meta = pq.ParquetFile(f).metadata.row_group(0)
    kinds = {meta.column(i).path_in_schema: meta.column(i).compression
             for i in range(meta.num_columns)}
    assert kinds == {"header": "UNCOMPRESSED", "txids.list.element": "UNCOMPRESSED",
                     "numbers.list.element": "ZSTD", "target": "ZSTD",
                     "indices.list.element": "ZSTD"}
    old = tmp_path / "old"
    shutil.copytree(faulty, old)
    table = pq.read_table(f)
    pq.write_table(table, old / f.name, compression="zstd",
                   row_group_size=meta.num_rows)
    manifest = json.loads((old / "manifest.json").read_text())
    from parity.corpus.reader import file_blake3
    manifest["files"][0]["blake3"] = file_blake3(old / f.name)
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert pq.ParquetFile(old / f.name).metadata.row_group(0).column(0).compression == "ZSTD"
    a, b = open_corpus(faulty), open_corpus(old)
    for g, h in zip(a.row_groups(), b.row_groups(), strict=True):
        sa, sb = a.read_shard(g), b.read_shard(h)
        assert all(np.array_equal(x, y) for x, y in zip(sa.arrays(), sb.arrays(), strict=True))


def test_generator_without_anchor_and_chosen_rules(tmp_path):
    opts = GenerateOptions(blocks=400, seed=3, fault_rate=0.5, anchor=False,
                           rules=["PREV_HASH_MISMATCH", "COMMITMENT_REPLAY"], tiers=["cluster"])
    generate(tmp_path / "x", opts)
    truth = read_truth(tmp_path / "x")
    names = {n for s in truth for n in rule_names(int(s))}
    assert names == {"PREV_HASH_MISMATCH", "COMMITMENT_REPLAY", "COMMITMENT_MISMATCH"}
    assert open_corpus(tmp_path / "x").manifest.anchor is None
    assert np.array_equal(validate_corpus(legacy, tmp_path / "x"), truth)


def _tables(path):
    c = open_corpus(path)
    return pa.concat_tables([pq.read_table(c.path / f.path) for f in c.manifest.files])


def test_jsonl_round_trip(faulty, tmp_path):
    export_jsonl(faulty, tmp_path / "x.jsonl")
    import_jsonl(tmp_path / "x.jsonl", tmp_path / "back", rows_per_file=700)
    assert _tables(faulty).equals(_tables(tmp_path / "back"))
    a, b = open_corpus(faulty).manifest, open_corpus(tmp_path / "back").manifest
    assert (a.now, a.difficulty_target, a.anchor, a.blocks) == (b.now, b.difficulty_target,
                                                                b.anchor, b.blocks)
    assert np.array_equal(validate_corpus(jit, tmp_path / "back"), read_truth(faulty))


def test_jsonl_keeps_nan_payloads():
    fields = {name: (bytes(32) if kind == "b32" else 0) for name, _o, _s, kind in C.HEADER_FIELDS}
    fields["work_score"] = np.frombuffer(bytes.fromhex("efbeadde00f4ff7f"), "<f8")[0].item()
    fields["solution_quality"] = -0.0
    block = C.Block(legacy.encode_header(fields), [], [1], 1, [0])
    line = block_to_json(block)
    assert line["header"]["work_score"] == "7ffff400deadbeef"  # the bits, payload included
    assert line["header"]["solution_quality"] == -0.0
    from parity.corpus.jsonl import block_from_json
    assert block_from_json(json.loads(json.dumps(line))).header == block.header


def test_public_chain_as_corpus(public_vectors, tmp_path):
    c = public_vectors["chain"]
    anchor = c["anchor"]
    lines = [json.dumps({"corpus": {"now": c["now"], "difficulty_target": c["difficulty_target"],
                                    "anchor": anchor}})]
    for b in c["blocks"]:
        block = C.Block(bytes.fromhex(b["header"]), [bytes.fromhex(t) for t in b["txids"]],
                        b["numbers"], b["target"], b["indices"])
        lines.append(json.dumps(block_to_json(block)))
    (tmp_path / "chain.jsonl").write_text("\n".join(lines) + "\n")
    import_jsonl(tmp_path / "chain.jsonl", tmp_path / "chain", rows_per_file=120)
    expected = [b["expect"]["status"] for b in c["blocks"]]
    assert validate_corpus(legacy, tmp_path / "chain").tolist() == expected
    assert validate_corpus(jit, tmp_path / "chain").tolist() == expected


def test_sample_corpora():
    assert np.array_equal(validate_corpus(jit, CORPORA / "sample-valid"),
                          np.zeros(1000, np.uint32))
    assert np.array_equal(validate_corpus(jit, CORPORA / "sample-faults"),
                          read_truth(CORPORA / "sample-faults"))
    every = 0
    for s in read_truth(CORPORA / "sample-faults"):
        every |= int(s)
    assert every == C.ALL_RULES


def test_edge_case_corpus_matches_its_expectations():
    lines = [json.loads(x) for x in (CORPORA / "edge-cases.jsonl").read_text().splitlines()][1:]
    for twin in (legacy, jit):
        got = validate_corpus(twin, CORPORA / "edge-cases")
        assert [sorted(rule_names(int(s))) for s in got] == [sorted(x["expect"]) for x in lines]


# ---- bad input: one line naming the file and the reason, exit code 2 ----

@pytest.fixture()
def small(tmp_path):
    dst = tmp_path / "c"
    shutil.copytree(CORPORA / "sample-valid", dst)
    return dst


def _run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def _expect_error(capsys, path, *needles):
    code, err = _run(capsys, "corpus", "verify", str(path))
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    for n in needles:
        assert n in err, err


def test_missing_manifest(small, capsys):
    (small / "manifest.json").unlink()
    _expect_error(capsys, small, "manifest.json", "missing manifest")


@pytest.mark.parametrize("text, reason", [
    ("{not json", "not valid JSON"),
    ('{"format": "parity-corpus", "version": 2}', "unsupported version"),
    ('{"format": "other"}', "format"),
])
def test_malformed_manifest(small, capsys, text, reason):
    (small / "manifest.json").write_text(text)
    _expect_error(capsys, small, "manifest.json", reason)


def test_manifest_field_errors(small, capsys):
    m = json.loads((small / "manifest.json").read_text())
    m["difficulty_target"] = "xyz"
    (small / "manifest.json").write_text(json.dumps(m))
    _expect_error(capsys, small, "difficulty_target")


def test_flipped_byte(small, capsys):
    f = small / "blocks-00001.parquet"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    _expect_error(capsys, small, "blocks-00001.parquet", "checksum mismatch")


def test_bad_corpus_is_refused_first_beside_a_bad_twin(small, tmp_path, capsys):
    """parity shadow checks the checksums on a thread while the twins import: a corrupt
    corpus is still the error given, before a twin that cannot load, and no run starts."""
    f = small / "blocks-00001.parquet"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    code, err = _run(capsys, "shadow", str(small), "--refactored", str(tmp_path / "none.py"),
                     "--run-dir", str(tmp_path / "run"), "--quiet")
    assert code == 2 and "Traceback" not in err
    assert "checksum mismatch" in err and "none.py" not in err, err
    assert not (tmp_path / "run").exists()
    small_ok = tmp_path / "ok"
    shutil.copytree(CORPORA / "sample-valid", small_ok)
    code, err = _run(capsys, "shadow", str(small_ok), "--refactored", str(tmp_path / "none.py"),
                     "--run-dir", str(tmp_path / "run"), "--quiet")
    assert code == 2 and "none.py" in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def _rewrite(small, name, data):
    """Replace a data file and fix its checksum, so the deeper check is the one that fires."""
    from parity.corpus.reader import file_blake3
    (small / name).write_bytes(data) if isinstance(data, bytes) else pq.write_table(data, small / name)
    m = json.loads((small / "manifest.json").read_text())
    for f in m["files"]:
        if f["path"] == name:
            f["blake3"] = file_blake3(small / name)
    (small / "manifest.json").write_text(json.dumps(m))


def test_truncated_parquet(small, capsys):
    data = (small / "blocks-00000.parquet").read_bytes()
    _rewrite(small, "blocks-00000.parquet", data[: len(data) // 2])
    _expect_error(capsys, small, "blocks-00000.parquet", "not a readable Parquet file")


def test_wrong_column_type(small, capsys):
    t = pq.read_table(small / "blocks-00000.parquet")
    t = t.set_column(3, "target", t.column("target").cast(pa.int32()))
    _rewrite(small, "blocks-00000.parquet", t)
    _expect_error(capsys, small, "blocks-00000.parquet", "column target has type int32")


def test_row_count_differs(small, capsys):
    t = pq.read_table(small / "blocks-00000.parquet").slice(0, 499)
    _rewrite(small, "blocks-00000.parquet", t)
    _expect_error(capsys, small, "blocks-00000.parquet", "has 499 rows, manifest says 500")


def test_block_count_differs(small, capsys):
    m = json.loads((small / "manifest.json").read_text())
    m["blocks"] = 999
    (small / "manifest.json").write_text(json.dumps(m))
    _expect_error(capsys, small, "manifest.json", "files hold 1000 blocks, manifest says 999")


def test_missing_data_file(small, capsys):
    (small / "blocks-00000.parquet").unlink()
    _expect_error(capsys, small, "blocks-00000.parquet", "missing data file")


@pytest.mark.parametrize("edit, needle", [
    (lambda b: b.update(numbers=[2**63]), "numbers[0]: 9223372036854775808 is outside the i64 range"),
    (lambda b: b.update(indices=[-1]), "indices[0]: -1 is outside the u64 range"),
    (lambda b: b.update(target=-(2**63) - 1), "target"),
    (lambda b: b["header"].update(version=2**32), "header.version"),
    (lambda b: b["header"].update(work_score="7ff8"), "16 hex digits"),
    (lambda b: b.update(txids=["00" * 31]), "txids[0]"),
    (lambda b: b.pop("indices"), "missing 'indices'"),
])
def test_jsonl_reveal_and_field_errors(tmp_path, capsys, edit, needle):
    lines = (CORPORA / "edge-cases.jsonl").read_text().splitlines()
    block = json.loads(lines[3])
    edit(block)
    lines[3] = json.dumps(block)
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    code, err = _run(capsys, "corpus", "import", "--jsonl", str(tmp_path / "bad.jsonl"),
                     str(tmp_path / "out"))
    assert code == 2 and "Traceback" not in err
    assert "bad.jsonl:4: " in err and needle in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_cli_generate_and_verify_in_a_subprocess(tmp_path):
    out = tmp_path / "g"
    run = subprocess.run([sys.executable, "-m", "parity", "corpus", "generate", str(out),
                          "--blocks", "50", "--seed", "4", "--fault-rate", "0.5"],
                         capture_output=True, text=True, check=True)
    assert "wrote 50 blocks" in run.stdout and run.stderr == ""  # no progress bar off a terminal
    run = subprocess.run([sys.executable, "-m", "parity", "corpus", "verify", str(out)],
                         capture_output=True, text=True, check=True)
    assert "blocks      50" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "parity", "corpus", "generate", str(out),
                          "--blocks", "5", "--rules", "NOPE"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown rule 'NOPE'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_read_ahead_gives_the_shards_in_order_and_raises_where_a_plain_read_would(
        faulty, monkeypatch):
    corpus = open_corpus(faulty)
    groups = corpus.row_groups()
    assert len(groups) >= 3
    plain = [corpus.read_shard(g) for g in groups]
    ahead = list(corpus.read_ahead(groups))
    assert [s.start for s in ahead] == [s.start for s in plain]
    assert all(np.array_equal(a.headers, b.headers) and np.array_equal(a.numbers, b.numbers)
               for a, b in zip(ahead, plain))
    assert list(corpus.read_ahead([])) == []
    one_by_one = list(corpus.read_ahead(groups, ahead=False))
    assert [s.start for s in one_by_one] == [s.start for s in plain]

    real = type(corpus).read_shard

    def broken(self, g):
        if g.start == groups[2].start:
            raise CorpusError(self.path, "row group 2: planted")
        return real(self, g)
    monkeypatch.setattr(type(corpus), "read_shard", broken)
    got = []
    with pytest.raises(CorpusError, match="planted"):
        for shard in corpus.read_ahead(groups):
            got.append(shard.start)
    assert got == [groups[0].start, groups[1].start]  # the shards before it were handed out
    stream = corpus.read_ahead(groups)
    assert next(stream).start == groups[0].start
    stream.close()  # a consumer that stops early leaves no reader behind


def test_one_chunk_takes_a_single_chunk_as_it_is_and_joins_several():
    from parity.corpus.shard import one_chunk
    one = pa.chunked_array([pa.array([b"ab", b"cd"], pa.binary(2))])
    got = one_chunk(one)
    assert got.buffers()[1].address == one.chunk(0).buffers()[1].address  # not copied
    several = pa.chunked_array([pa.array([1, 2]), pa.array([3])])
    assert one_chunk(several).to_pylist() == [1, 2, 3]
    none = pa.chunked_array([], pa.int64())
    assert len(one_chunk(none)) == 0 and one_chunk(none).type == pa.int64()


def test_from_batch_reads_sliced_and_chunked_lists_like_fresh_ones(faulty):
    """List columns are read as a slice of their items: a table slice (list offsets not
    from 0, items before and after it) and a table of several chunks give the blocks a
    freshly built table of the same rows gives."""
    from parity.corpus.shard import from_batch
    c = open_corpus(faulty)
    table = pq.read_table(c.path / c.manifest.files[0].path)
    for start, rows in ((0, len(table)), (3, 10), (len(table) - 3, 3), (50, 0), (1, 1)):
        part = table.slice(start, rows)
        fresh = pa.Table.from_pylist(part.to_pylist(), schema=table.schema)
        split = pa.concat_tables([table.slice(start, rows // 2),
                                  table.slice(start + rows // 2, rows - rows // 2)])
        want = from_batch(fresh).arrays()
        for got in (from_batch(part).arrays(), from_batch(split).arrays()):
            assert all(np.array_equal(a, b) for a, b in zip(got, want)), (start, rows)


def test_reading_a_shard_does_not_import_pyarrow_compute(faulty):
    """Its import costs 0.08-0.11 s of every run's start, holding the GIL."""
    code = ("import sys; from parity.corpus import open_corpus; c = open_corpus(sys.argv[1]); "
            "[c.read_shard(g) for g in c.row_groups()]; print('pyarrow.compute' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(faulty)], capture_output=True,
                         text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_headers_of_opens_each_file_once_and_reads_like_read_headers(faulty, monkeypatch):
    """Pass 1 reads the header column group by group; opening a file once for all its
    groups (not once per group) gives exactly what read_headers gives."""
    corpus = open_corpus(faulty)
    groups = corpus.row_groups()
    assert len({g.file for g in groups}) > 1 and len(groups) > len({g.file for g in groups})
    singles = [corpus.read_headers(g) for g in groups]
    opened = []
    real = pq.ParquetFile

    def counting(path, *a, **kw):
        opened.append(Path(path).name)
        return real(path, *a, **kw)
    monkeypatch.setattr(pq, "ParquetFile", counting)
    together = list(corpus.headers_of(groups))
    assert opened == sorted(set(opened)) == sorted({g.file for g in groups})
    assert len(together) == len(singles)
    assert all(np.array_equal(a, b) for a, b in zip(together, singles, strict=True))


def test_headers_of_names_an_unreadable_file(small):
    corpus = open_corpus(small)
    groups = corpus.row_groups()
    (small / groups[-1].file).write_bytes(b"PAR1 not parquet")
    with pytest.raises(CorpusError, match=groups[-1].file):
        list(corpus.headers_of(groups))


@pytest.mark.parametrize("size", [0, 1, 6, 7, 8, 13, 14, 15, 1000])
def test_file_checksum_over_step_boundaries(tmp_path, monkeypatch, size):
    from blake3 import blake3

    from parity.corpus import reader
    monkeypatch.setattr(reader, "CHECKSUM_STEP", 7)
    data = bytes(i % 251 for i in range(size))
    (tmp_path / "f").write_bytes(data)
    assert reader.file_blake3(tmp_path / "f") == blake3(data).hexdigest()

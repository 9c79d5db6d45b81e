"""The corpus generator builds its blocks without either twin, and writes exactly what it
wrote when it still used ``kernels.jit``.

The expected digests below were computed with the generator of commit 616ff08 (numba
miner, ``kernels.jit`` encoding and hashing) before it was rewritten on the ``blake3``
package: equal digests prove the same blocks and ground truth, not self-consistency."""
import json
import subprocess
import sys
from pathlib import Path

import blake3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kernels import constants as C
from parity.corpus import _chain
from parity.corpus.generate import GenerateOptions, generate
from parity.errors import ParityError
from tests.test_architecture import graph

ROOT = Path(__file__).resolve().parent.parent


def _arrow_bytes(arr: pa.Array) -> bytes:
    if pa.types.is_list(arr.type):
        lengths = np.diff(arr.offsets.to_numpy()).astype(np.int64)
        return lengths.tobytes() + _arrow_bytes(arr.flatten())
    if pa.types.is_fixed_size_binary(arr.type):
        w = arr.type.byte_width
        return arr.buffers()[1].to_pybytes()[arr.offset * w:(arr.offset + len(arr)) * w]
    return arr.to_numpy(zero_copy_only=False).tobytes()


def corpus_digest(path: Path) -> str:
    """BLAKE3 over a corpus's data: manifest fields (file checksums excepted), every row
    group's column contents in order, and the ground truth (not the Parquet file bytes)."""
    m = json.loads((path / "manifest.json").read_text())
    h = blake3.blake3()
    head = {k: m[k] for k in ("format", "version", "blocks", "now", "difficulty_target",
                              "anchor")}
    head["files"] = [(f["path"], f["rows"]) for f in m["files"]]
    h.update(json.dumps(head, sort_keys=True).encode())
    for f in m["files"]:
        pf = pq.ParquetFile(path / f["path"])
        for g in range(pf.num_row_groups):
            t = pf.read_row_group(g)
            h.update(b"group %d" % t.num_rows)
            for name in ("header", "txids", "numbers", "target", "indices"):
                data = _arrow_bytes(t.column(name).combine_chunks())
                h.update(name.encode() + len(data).to_bytes(8, "little") + data)
    truth = pq.read_table(path / "ground-truth.parquet")
    for name in ("block", "status"):
        data = truth.column(name).to_numpy().tobytes()
        h.update(name.encode() + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


CASES = {
    "every-rule-2000": (dict(blocks=2000, seed=7, fault_rate=0.3, shard_size=500,
                             rows_per_file=700),
                        "6737bb5e49a722ffc89431f30fbd5984db0740141b84d938974097188795d4c9"),
    "anchorless": (dict(blocks=600, seed=3, fault_rate=0.5, anchor=False,
                        tiers=["cluster", "mobile"],
                        rules=["PREV_HASH_MISMATCH", "COMMITMENT_REPLAY", "HEIGHT_NOT_SEQUENTIAL",
                               "TIMESTAMP_BEFORE_PARENT", "COMMITMENT_MISMATCH"]),
                   "5672605ec6ae37ddd27ed7449a379b0a7d08eb803f4bc6fe1fc2d8299bca87b8"),
    "tiny-shards": (dict(blocks=40, seed=4, fault_rate=0.6, shard_size=1, rows_per_file=7),
                    "d62db2de62d38f19fb30091b26acef22f5eef16c37358b214c1be57154cb7263"),
    "shards-of-3-anchorless": (dict(blocks=31, seed=5, fault_rate=1.0, shard_size=3,
                                    anchor=False),
                               "ca1a6cff53f43aae991545f85c8670a284c88c1db809fbb875e2a3103ca0aa85"),
    "zero-blocks": (dict(blocks=0, seed=1),
                    "80466e19a58d6b36c5ac84723c08e3e2f6d2d9a3de808197deae550298b64aaa"),
    "one-block": (dict(blocks=1, seed=2),
                  "f800ffb9acc761c742cca6724e6d8883b0e285e37494060a792e098cf00bde93"),
    "one-block-anchorless": (dict(blocks=1, seed=2, anchor=False, fault_rate=1.0),
                             "966194c793cb52fea6c750195b06b717e582d881aaf64411fa9300e7c476891e"),
    "hard-target-misses": (dict(blocks=300, seed=8, fault_rate=0.5, rules=["DIFFICULTY_NOT_MET"],
                                difficulty_target=bytes.fromhex("00ff" + "ff" * 30),
                                mean_transactions=30.0, now=1_800_000_000, shard_size=128),
                           "ad6901e197c8752d7ba544536b0ffde9ab43ba61c149792669c90f69516f3c5b"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_generator_output_is_unchanged(tmp_path, name):
    options, expected = CASES[name]
    generate(tmp_path / name, GenerateOptions(**options))
    assert corpus_digest(tmp_path / name) == expected


def test_every_rule_case_breaks_every_rule(tmp_path):
    generate(tmp_path / "x", GenerateOptions(**CASES["every-rule-2000"][0]))
    every = 0
    for s in pq.read_table(tmp_path / "x" / "ground-truth.parquet").column("status").to_pylist():
        every |= s
    assert every == C.ALL_RULES


def test_unreachable_target_message_is_unchanged(tmp_path):
    with pytest.raises(ParityError) as err:
        generate(tmp_path / "x", GenerateOptions(blocks=3, seed=1, difficulty_target=bytes(32)))
    assert str(err.value) == ("block 0 of shard 0: no nonce in 1048576 tries hashes below "
                              "difficulty target " + "00" * 32)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name, options", [
    ("sample-valid", dict(blocks=1000, seed=1, shard_size=250, rows_per_file=500)),
    ("sample-faults", dict(blocks=800, seed=2, fault_rate=0.15, shard_size=200,
                           rows_per_file=400)),
])
def test_sample_corpora_regenerate(tmp_path, name, options):
    """The committed samples come back, data for data, from the commands in corpora/README."""
    readme = (ROOT / "corpora" / "README.md").read_text()
    assert f"parity corpus generate corpora/{name} " in readme
    generate(tmp_path / name, GenerateOptions(**options))
    assert corpus_digest(tmp_path / name) == corpus_digest(ROOT / "corpora" / name)


def test_generator_reaches_neither_twin(tmp_path):
    """Neither through any import chain nor at run time (numba neither)."""
    g = graph()
    seen, todo = set(), ["parity.corpus.generate"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(g.get(m, ()))
    assert not {m for m in seen if m.startswith(("kernels.jit", "kernels.legacy"))}
    code = ("import sys; from parity.corpus.generate import GenerateOptions, generate; "
            "generate(sys.argv[1], GenerateOptions(blocks=20, seed=1, fault_rate=0.5)); "
            "print(sorted(m for m in sys.modules if m.startswith(('kernels.', 'numba'))))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x")], capture_output=True,
                         text=True, cwd=ROOT, check=True)
    # the SPEC's numbers and the twin-neutral input checks, nothing of either twin
    assert out.stdout.strip() == "['kernels.checks', 'kernels.constants']"


def test_chain_primitives_match_the_public_vectors(public_vectors):
    ids = [[bytes.fromhex(t) for t in m["txids"]] for m in public_vectors["merkle"]]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in ids])
    flat = np.frombuffer(b"".join(t for x in ids for t in x), np.uint8).reshape(-1, 32)
    roots = _chain.merkle_roots(flat, offsets)
    assert [r.tobytes().hex() for r in roots] == [m["root"] for m in public_vectors["merkle"]]

    blocks = public_vectors["chain"]["blocks"]
    headers = np.frombuffer(b"".join(bytes.fromhex(b["header"]) for b in blocks),
                            np.uint8).reshape(-1, C.HEADER_SIZE)
    records = headers.reshape(-1).view(_chain.HEADER_DTYPE)
    fields = {name: records[name] for name, *_ in C.HEADER_FIELDS}
    assert _chain.encode_headers(fields).tobytes() == headers.tobytes()
    assert [h.tobytes().hex() for h in _chain.hash_rows(headers)] == \
        [b["expect"]["header_hash"] for b in blocks]

    def csr(key, dtype):
        lists = [b[key] for b in blocks]
        off = np.zeros(len(lists) + 1, dtype=np.int64)
        off[1:] = np.cumsum([len(x) for x in lists])
        return np.array([v for x in lists for v in x], dtype=dtype), off
    nums, num_off = csr("numbers", np.int64)
    idxs, idx_off = csr("indices", np.uint64)
    targets = np.array([b["target"] for b in blocks], dtype=np.int64)
    raw, bounds = _chain._bincode_lists(nums, num_off, targets)
    assert [raw[a:b].tobytes().hex() for a, b in zip(bounds[:-1], bounds[1:], strict=True)] == \
        [b["expect"]["problem_bytes"] for b in blocks]
    raw, bounds = _chain._bincode_lists(idxs, idx_off, None)
    assert [raw[a:b].tobytes().hex() for a, b in zip(bounds[:-1], bounds[1:], strict=True)] == \
        [b["expect"]["solution_bytes"] for b in blocks]
    problem, solution = _chain.reveal_hashes(nums, num_off, targets, idxs, idx_off)
    assert [p.tobytes() for p in problem] == \
        [blake3.blake3(bytes.fromhex(b["expect"]["problem_bytes"])).digest() for b in blocks]
    assert [s.tobytes() for s in solution] == \
        [blake3.blake3(bytes.fromhex(b["expect"]["solution_bytes"])).digest() for b in blocks]

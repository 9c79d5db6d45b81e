"""The batch parser of POST /blocks: the same shard, digests and refusals as parsing
block by block with ``block_from_json`` (the per-object definition)."""
import json
import random

import numpy as np
import pytest

from parity import liveparse
from parity.corpus import open_corpus
from parity.corpus.generate import GenerateOptions, generate
from parity.corpus.jsonl import block_from_json, block_to_json
from parity.corpus.shard import from_blocks
from parity.live import block_digest
from parity.liveparse import BadBody, parse_body
from tests.conftest import ROOT

FIELDS = ("headers", "ids", "id_offsets", "numbers", "num_offsets", "targets", "indices",
          "idx_offsets")


def reference(body: bytes):
    """Line by line with block_from_json: (shard, digests) or the refusal's message."""
    blocks = []
    for number, line in enumerate(body.decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if isinstance(obj, dict) and "corpus" in obj and "header" not in obj:
                continue
            blocks.append(block_from_json(obj))
        except ValueError as exc:
            return f"line {number}: {str(exc)[:300]}"
    return from_blocks(blocks), [block_digest(b) for b in blocks]


def assert_same(body: bytes, monkeypatch) -> None:
    """Refused with the reference's message, or parsed to the same arrays; a valid body
    takes the fast path (the line-by-line one would pass trivially)."""
    want = reference(body)
    if isinstance(want, str):
        with pytest.raises(BadBody) as e:
            parse_body(body)
        assert str(e.value) == want
        return
    with monkeypatch.context() as m:
        m.setattr(liveparse, "_slow", lambda objs: pytest.fail("the fast path refused it"))
        got = parse_body(body)
    for name in FIELDS:
        a, b = getattr(got.shard, name), getattr(want[0], name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
        assert a.flags.writeable == b.flags.writeable, name  # numba compiles per kind
    assert got.digests == want[1]
    assert got.heights == [int(h) for h in want[0].headers[:, 4:12].copy().view("<u8").ravel()]


@pytest.fixture(scope="module")
def corpus_lines(tmp_path_factory):
    path = tmp_path_factory.mktemp("parse") / "c"
    generate(path, GenerateOptions(blocks=300, seed=5, fault_rate=0.2, shard_size=300,
                                   rows_per_file=300))
    c = open_corpus(path)
    return [json.dumps(block_to_json(s.block(i))) for s in c.shards() for i in range(len(s))]


def test_edge_cases_and_a_generated_corpus_parse_the_same(corpus_lines, monkeypatch):
    edge = (ROOT / "corpora" / "edge-cases.jsonl").read_bytes()  # NaN payloads, infinities
    assert_same(edge, monkeypatch)
    assert_same(("\n".join(corpus_lines) + "\n").encode(), monkeypatch)
    assert_same(("\n\n" + corpus_lines[0] + "\r\n" + corpus_lines[1]).encode(), monkeypatch)


MUTATIONS = [
    lambda b: b["header"].__setitem__("height", True),
    lambda b: b["header"].__setitem__("height", -1),
    lambda b: b["header"].__setitem__("version", 2**32),
    lambda b: b["header"].__setitem__("nonce", 1.0),
    lambda b: b["header"].__setitem__("timestamp", 2**63),
    lambda b: b["header"].__setitem__("prev_hash", "zz" * 32),
    lambda b: b["header"].__setitem__("prev_hash", "ab " * 21 + "a"),
    lambda b: b["header"].__setitem__("miner", "AB" * 32),                # valid: upper case
    lambda b: b["header"].__setitem__("work_score", 3),                   # valid: an int
    lambda b: b["header"].__setitem__("work_score", "7ff8000000000001"),  # valid: bits
    lambda b: b["header"].__setitem__("work_score", "7ff80000000000zz"),
    lambda b: b["header"].__setitem__("work_score", 10**400),
    lambda b: b["header"].__setitem__("work_score", None),
    lambda b: b["header"].__setitem__("extra", 1),
    lambda b: b["header"].pop("nonce"),
    lambda b: b.__setitem__("header", []),
    lambda b: b.__setitem__("target", None),
    lambda b: b.__setitem__("target", "7"),
    lambda b: b.__setitem__("target", 2**63),
    lambda b: b.pop("indices"),
    lambda b: b.__setitem__("txids", "00" * 32),
    lambda b: b.__setitem__("txids", b["txids"] + ["0" * 63]),
    lambda b: b.__setitem__("txids", b["txids"] + ["0" * 62 + " 0"]),
    lambda b: b.__setitem__("txids", b["txids"] + [7]),
    lambda b: b.__setitem__("numbers", b["numbers"] + [2**63]),
    lambda b: b.__setitem__("numbers", b["numbers"] + [False]),
    lambda b: b.__setitem__("numbers", b["numbers"] + [-2**63]),       # valid: i64 min
    lambda b: b.__setitem__("indices", b["indices"] + [-1]),
    lambda b: b.__setitem__("indices", b["indices"] + [2**64 - 1]),    # valid: u64 max
    lambda b: b.__setitem__("extra", {"ignored": True}),               # valid: ignored
]


@pytest.mark.parametrize("k", range(len(MUTATIONS)))
def test_every_refusal_names_the_same_line_and_reason(corpus_lines, k, monkeypatch):
    rng = random.Random(k)
    lines = corpus_lines[:20]
    at = rng.randrange(len(lines))
    block = json.loads(lines[at])
    MUTATIONS[k](block)
    lines = lines[:at] + [json.dumps(block)] + lines[at + 1:]
    assert_same(("\n".join(lines) + "\n").encode(), monkeypatch)


@pytest.mark.parametrize("body, message", [
    (b"", "no blocks in the body"), (b"\n \n", "no blocks in the body"),
    (b"\xff\xfe", "body is not UTF-8 text"), (b"[1]\n", "line 1: a block line must be a JSON object"),
    (b'{"corpus": {}}\n{nope\n', "line 2: Expecting property name enclosed in double quotes: "
                                 "line 1 column 2 (char 1)"),
])
def test_bodies_that_are_no_batch(body, message):
    with pytest.raises(BadBody) as e:
        parse_body(body)
    assert str(e.value) == message


def test_a_retry_slice_keeps_the_parsed_arrays(corpus_lines):
    got = parse_body(("\n".join(corpus_lines[:10])).encode())
    part = got.shard.slice(4, 10)
    want = reference(("\n".join(corpus_lines[4:10])).encode())
    assert isinstance(want, tuple)
    for name in FIELDS:
        assert np.array_equal(getattr(part, name), getattr(want[0], name)), name

"""The JIT twin works on a large batch chunk by chunk (``kernels.config.CHUNK_BLOCKS``):
every chunk boundary must give the outputs of one batch (in validation, the parent of a
chunk's first block is the previous chunk's last, and replays are found across chunks)."""
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels.jit as jit
import kernels.legacy as legacy
from kernels import config
from kernels.checks import pack_blocks
from parity import strategies as ps
from tests.conftest import public_chain
from tests.profiles import examples


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 299, 300, 301])
def test_public_chain_any_chunk_size(chunk, public_vectors, monkeypatch):
    monkeypatch.setattr(config, "CHUNK_BLOCKS", chunk)
    c, blocks, anchor = public_chain(public_vectors)
    got = jit.validate_blocks(*pack_blocks(blocks), now=c["now"],
                              difficulty_target=bytes.fromhex(c["difficulty_target"]),
                              parent=anchor)
    assert got.tolist() == [b["expect"]["status"] for b in c["blocks"]]


@settings(max_examples=examples(40))
@given(ps.chains(max_blocks=10), st.one_of(st.just(ps.CHAIN_NOW), ps.i64s()), st.integers(1, 11))
def test_chunks_equal_legacy(chain, now, chunk):
    blocks, anchor = chain
    expected = legacy.validate_chain(blocks, now, ps.CHAIN_TARGET, anchor)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "CHUNK_BLOCKS", chunk)
        assert jit.validate_chain(blocks, now, ps.CHAIN_TARGET, anchor) == expected


def _generated(n: int, seed: int, fault_rate: float):
    from parity.corpus import open_corpus
    from parity.corpus.generate import GenerateOptions, generate, read_truth
    with tempfile.TemporaryDirectory() as tmp:
        generate(f"{tmp}/c", GenerateOptions(blocks=n, seed=seed, fault_rate=fault_rate,
                                             shard_size=n))
        corpus = open_corpus(f"{tmp}/c")
        shards = list(corpus.shards())
        truth = read_truth(f"{tmp}/c")
    assert len(shards) == 1
    return shards[0], corpus.manifest, truth


@pytest.mark.parametrize("chunk", [3, 64, 65])
def test_faulty_corpus_across_chunk_boundaries(chunk, monkeypatch):
    """A generated corpus with faults (every rule, replays among them) in one batch."""
    shard, m, truth = _generated(300, 11, 0.3)
    monkeypatch.setattr(config, "CHUNK_BLOCKS", chunk)
    got = jit.validate_blocks(*shard.arrays(), now=m.now, difficulty_target=m.difficulty_target,
                              parent=m.anchor)
    assert np.any(truth) and np.array_equal(got, truth)


@pytest.mark.slow
def test_default_chunks_on_a_batch_of_several():
    """More than two chunks of the shipped size, with faults, a partial chunk last."""
    n = 2 * config.CHUNK_BLOCKS + 37
    shard, m, truth = _generated(n, 5, 0.05)
    got = jit.validate_blocks(*shard.arrays(), now=m.now, difficulty_target=m.difficulty_target,
                              parent=m.anchor)
    assert np.any(truth) and np.array_equal(got, truth)


@pytest.mark.parametrize("chunk", [1, 3, 64, 299, 300])
def test_merkle_roots_and_commitments_any_chunk_size(chunk, monkeypatch):
    """The batch merkle roots and commitments chunk the same way: equal to legacy's."""
    shard, _m, _truth = _generated(300, 12, 0.3)
    ids, offs = shard.ids, shard.id_offsets
    reveal = (shard.numbers, shard.num_offsets, shard.targets, shard.indices,
              shard.idx_offsets)
    roots = legacy.merkle_roots(ids, offs)
    commits = legacy.commitments(shard.headers, *reveal)
    monkeypatch.setattr(config, "CHUNK_BLOCKS", chunk)
    for parallel in (True, False):
        assert np.array_equal(jit.merkle_roots(ids, offs, parallel=parallel), roots)
        assert np.array_equal(jit.commitments(shard.headers, *reveal, parallel=parallel),
                              commits)

"""Legacy vs JIT per function and batch size (pytest-benchmark).

Warm-up (JIT compilation, caches) happens outside the timed rounds; every
benchmark checks its result against the legacy twin's.
"""
import numba
import numpy as np
import pytest

import kernels.jit as jit
import kernels.legacy as legacy
from bench import data
from bench.conftest import SIZES

TWINS = {"legacy": legacy, "jit": jit}
_reference: dict = {}


def _rounds(impl, n):
    return 1 if (impl == "legacy" and n >= 100_000) else 3


def _warmup(impl, n):
    return 0 if (impl == "legacy" and n >= 100_000) else 1  # legacy has nothing to compile


def _check(key, result, compute_reference):
    if key not in _reference:
        _reference[key] = compute_reference()
    ref = _reference[key]
    assert np.array_equal(np.asarray(result), np.asarray(ref)), f"{key}: result differs from legacy"


@pytest.fixture(autouse=True)
def one_thread():
    numba.set_num_threads(1)
    yield


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", TWINS)
def test_header_hash(benchmark, impl, n):
    h = data.headers(n)
    fn = TWINS[impl].hash_headers
    benchmark.group = f"header_hash n={n}"
    benchmark.extra_info.update(function="header_hash", impl=impl, n=n)
    out = benchmark.pedantic(fn, args=(h,), rounds=_rounds(impl, n), iterations=1,
                             warmup_rounds=_warmup(impl, n))
    _check(("hdr", n), out, lambda: legacy.hash_headers(h))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", TWINS)
def test_merkle_root(benchmark, impl, n):
    blocks = max(1, n // 100) if n >= 100 else n  # n ids in blocks of 100 (fewer for tiny n)
    per = 100 if n >= 100 else 1
    ids, off = data.id_lists(blocks, per)
    fn = TWINS[impl].merkle_roots
    benchmark.group = f"merkle_root n={n}"
    benchmark.extra_info.update(function="merkle_root", impl=impl, n=n, blocks=blocks, ids=per)
    out = benchmark.pedantic(fn, args=(ids, off), rounds=_rounds(impl, n), iterations=1,
                             warmup_rounds=_warmup(impl, n))
    _check(("merkle", n), out, lambda: legacy.merkle_roots(ids, off))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", TWINS)
def test_validate(benchmark, impl, n):
    shard = data.chain(n)
    benchmark.group = f"validate n={n}"
    benchmark.extra_info.update(function="validate", impl=impl, n=n)
    out = benchmark.pedantic(lambda: data.validate(TWINS[impl], shard, n),
                             rounds=_rounds(impl, n), iterations=1,
                             warmup_rounds=_warmup(impl, n))
    _check(("validate", n), out, lambda: data.validate(legacy, shard, n))
    assert not np.any(out)  # an honest chain: every block valid


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", TWINS)
def test_commitment(benchmark, impl, n):
    shard = data.chain(n)
    benchmark.group = f"commitment n={n}"
    benchmark.extra_info.update(function="commitment", impl=impl, n=n)
    out = benchmark.pedantic(lambda: data.commitments(TWINS[impl], shard),
                             rounds=_rounds(impl, n), iterations=1,
                             warmup_rounds=_warmup(impl, n))
    _check(("commitment", n), out, lambda: data.commitments(legacy, shard))
    # an honest chain: every block carries its expected commitment
    assert np.array_equal(out, shard.headers[:, 116:148])

"""Metrics tell the truth: one validation observation per block, bulk observations equal
single ones, every registry function exported at 0 from the start."""
from collections import Counter

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from kernels import constants as C
from parity.corpus import open_corpus
from parity.functions import FUNCTIONS
from parity.metrics import BUCKETS, Metrics, observe_many
from parity.shadow import ShadowOptions, ShadowRun
from tests.conftest import ROOT

FAULTS = ROOT / "corpora" / "sample-faults"


def test_observe_many_equals_single_observations():
    r = CollectorRegistry()
    h = Histogram("h", "h", ["x"], buckets=BUCKETS, registry=r)
    for value, n in ((3e-6, 5), (0.02, 1), (50.0, 3), (0.0, 2)):
        observe_many(h.labels(x="bulk"), value, n)
        for _ in range(n):
            h.labels(x="one").observe(value)
    bulk = {s.name + str(s.labels.get("le")): s.value for s in list(r.collect())[0].samples
            if s.labels["x"] == "bulk" and not s.name.endswith("_created")}
    one = {s.name + str(s.labels.get("le")): s.value for s in list(r.collect())[0].samples
           if s.labels["x"] == "one" and not s.name.endswith("_created")}
    assert bulk == one and bulk["h_countNone"] == 11


def test_block_validation_counts_blocks_by_tier(tmp_path):
    run = ShadowRun(ShadowOptions(str(FAULTS), quiet=True, run_dir=str(tmp_path / "r"),
                                  functions=("validate",)))
    run.execute()
    expected: Counter[str] = Counter()
    for shard in open_corpus(FAULTS).shards():
        expected.update(C.tier_of(int(k)) for k in np.diff(shard.num_offsets))
    reg = run.metrics.registry
    for tier in C.TIER_NAMES:
        got = reg.get_sample_value("block_validation_duration_seconds_count", {"tier": tier})
        assert got == expected[tier], tier
    assert sum(expected.values()) == 800


def test_every_function_exported_at_zero():
    m = Metrics()
    for fn in FUNCTIONS:
        assert m.registry.get_sample_value("dual_run_comparisons_total", {"function": fn}) == 0
    assert "commitment" in FUNCTIONS

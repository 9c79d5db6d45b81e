"""Results never depend on the shard size: parents cross shard boundaries as header
bytes that each twin hashes inside its own validation."""
import numpy as np
import pytest

import kernels.legacy as legacy
from parity.corpus import CorpusWriter, open_corpus
from parity.corpus.shard import from_blocks
from parity.shadow import ShadowOptions, ShadowRun
from tests import broken_twin
from tests.conftest import ROOT

FAULTS = ROOT / "corpora" / "sample-faults"


def resharded(src, dst, size, n=300):
    """The first ``n`` blocks of ``src`` in row groups of ``size`` (None: one group)."""
    c = open_corpus(src)
    m = c.manifest
    whole = from_blocks([s.block(i) for s in c.shards() for i in range(len(s))][:n])
    with CorpusWriter(dst, now=m.now, difficulty_target=m.difficulty_target,
                      anchor=m.anchor, rows_per_file=10**6) as w:
        step = size or len(whole)
        for lo in range(0, len(whole), step):
            w.append(whole.slice(lo, min(len(whole), lo + step)))
    return dst


@pytest.mark.slow
def test_records_identical_at_every_shard_size(tmp_path, monkeypatch):
    blocks = [s.block(i) for s in open_corpus(FAULTS).shards() for i in range(len(s))]
    chosen = [0, 6, 7, 13, 14, 255, 256, 257, 299]  # around the boundaries of the sizes below
    heights = [legacy.decode_header(blocks[i].header)["height"] for i in chosen]
    monkeypatch.setenv("BROKEN_TWIN", "flip")  # hash_headers disagrees with its validation
    monkeypatch.setenv("BROKEN_TWIN_HEIGHTS", ",".join(map(str, heights)))
    seen = {}
    for size in (1, 7, 257, None):
        corpus = resharded(FAULTS, tmp_path / f"c{size}", size)
        groups = open_corpus(corpus).row_groups()
        assert len(groups) == (-(-300 // size) if size else 1)
        result = ShadowRun(ShadowOptions(str(corpus), quiet=True, run_dir=str(tmp_path / f"r{size}"),
                                         functions=("header_hash", "validate")),
                           refactored=broken_twin).execute()
        records = [{k: v for k, v in r.items() if k not in ("file", "row", "replay")}
                   for r in result.records]
        seen[size] = records
        status = result.report["functions"]["validate"]
        assert status["mismatches"] == 0  # the planted hash bug never leaks into validation
    assert seen[1] == seen[7] == seen[257] == seen[None]
    assert [r["block"] for r in seen[None]] == chosen
    assert np.all([r["function"] == "header_hash" for r in seen[None]])

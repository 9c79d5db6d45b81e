"""One-screen summary of a verified corpus (``parity corpus verify``)."""
from __future__ import annotations

from collections import Counter

import numpy as np

from kernels import constants as C
from parity.corpus.reader import Corpus

#: lower edges of the txids-per-block histogram's buckets (the last: above the limit)
TX_BUCKETS = (0, 1, 2, 8, 32, 128, 1024, C.MAX_TRANSACTIONS, C.MAX_TRANSACTIONS + 1)


def bucket_label(low: int) -> str:
    """A bucket as the range it counts: "0", "2-7", ..., "10000", ">10000"."""
    i = TX_BUCKETS.index(low)
    if i == len(TX_BUCKETS) - 1:
        return f">{low - 1}"
    high = TX_BUCKETS[i + 1] - 1
    return str(low) if high == low else f"{low}-{high}"


def summarize(corpus: Corpus) -> dict:
    """Counts over the whole corpus, read shard by shard."""
    tiers: Counter[str] = Counter()
    tx_hist: Counter[int] = Counter()
    tx_total = 0
    tx_max = 0
    groups = 0
    buckets = np.array(TX_BUCKETS)
    for shard in corpus.shards():
        groups += 1
        tier_index = C.tier_indices(np.diff(shard.num_offsets))
        for i, n in zip(*np.unique(tier_index, return_counts=True), strict=True):
            tiers[C.TIER_NAMES[int(i)]] += int(n)
        tx = np.diff(shard.id_offsets)
        tx_total += int(tx.sum())
        tx_max = max(tx_max, int(tx.max(initial=0)))
        for i, n in zip(*np.unique(np.searchsorted(buckets, tx, side="right") - 1,
                                   return_counts=True)):
            tx_hist[int(buckets[i])] += int(n)
    m = corpus.manifest
    return {
        "path": str(corpus.path), "blocks": m.blocks, "now": m.now,
        "difficulty_target": m.difficulty_target.hex(),
        "anchor": None if m.anchor is None else {"height": m.anchor[0], "hash": m.anchor[1].hex(),
                                                 "timestamp": m.anchor[2]},
        "files": [{"path": f.path, "rows": f.rows} for f in m.files], "row_groups": groups,
        "tiers": dict(tiers), "transactions": {"total": tx_total, "max": tx_max,
                                               "mean": tx_total / m.blocks if m.blocks else 0.0,
                                               "histogram": dict(sorted(tx_hist.items()))},
    }


def render(summary: dict) -> str:
    lines = [f"corpus {summary['path']}: OK (manifest, checksums, row counts, column types)",
             f"  blocks      {summary['blocks']:,} in {len(summary['files'])} file(s), "
             f"{summary['row_groups']} row group(s)",
             f"  now         {summary['now']}",
             f"  difficulty  {summary['difficulty_target']}"]
    a = summary["anchor"]
    lines.append("  anchor      none" if a is None else
                 f"  anchor      height {a['height']}, timestamp {a['timestamp']}, "
                 f"hash {a['hash'][:16]}...")
    for f in summary["files"][:5]:
        lines.append(f"    {f['path']:<28} {f['rows']:>12,} rows")
    if len(summary["files"]) > 5:
        lines.append(f"    ... and {len(summary['files']) - 5} more file(s)")
    tiers = summary["tiers"]
    lines.append("  tiers       " + ", ".join(f"{t} {tiers.get(t, 0):,}" for t in C.TIER_NAMES))
    tx = summary["transactions"]
    lines.append(f"  txids       total {tx['total']:,}, mean {tx['mean']:.2f}/block, max {tx['max']:,}")
    hist = {int(k): v for k, v in tx["histogram"].items()}  # JSON keys are strings
    lines.append("  txids/block " + (", ".join(f"{bucket_label(k)}: {v:,}"
                                                for k, v in sorted(hist.items())) or "-"))
    return "\n".join(lines)

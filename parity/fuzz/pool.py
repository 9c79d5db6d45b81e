"""The base blocks a fuzz input starts from: blocks of seed corpora in their chain context.

Every fuzz input names one base (a block with its true parent, ``now`` and difficulty
target) and perturbs it, so most inputs are a valid block with a field or two changed.
The pool is built once by the parent process and handed to the fuzzing child as a
pickle inside the fuzz directory, so both decode an input to the same block.
"""
from __future__ import annotations

import pickle
from pathlib import Path

from kernels import constants as C
from parity.corpus import open_corpus
from parity.errors import ParityError
from parity.outputs import PROJECT_ROOT, atomic_write
from parity.shrink.case import Case

#: seed corpora shipped with the project (used when --corpus is not given)
DEFAULT_SEEDS = ("corpora/sample-valid", "corpora/sample-faults", "corpora/edge-cases")
PER_CORPUS = 48  # base blocks taken from each seed corpus
POOL_FILE = "pool.pickle"


def _from_corpus(path: Path, limit: int) -> list[Case]:
    corpus = open_corpus(path)
    m = corpus.manifest
    parent: object = m.anchor
    out: list[Case] = []
    for shard in corpus.shards():
        for i in range(len(shard)):
            if len(out) >= limit:
                return out
            b = shard.block(i)
            block = b._replace(txids=list(b.txids), numbers=list(b.numbers),
                               indices=list(b.indices))
            out.append(Case("validate", block, parent, (), m.now, m.difficulty_target))  # type: ignore[arg-type]
            parent = b.header
    return out


def _vectors_chain() -> list[Case]:
    """The public vectors' chain (shipped gzipped with the pytest plugin), in context."""
    import gzip
    import json

    path = Path(__file__).resolve().parent.parent / "pytest_plugin" / \
        "coinjecture_v1_public.json.gz"  # read as data: the plugin itself needs pytest
    if not path.is_file():
        return []
    c = json.loads(gzip.decompress(path.read_bytes()))["chain"]
    a = c["anchor"]
    parent: object = (a["height"], bytes.fromhex(a["hash"]), a["timestamp"]) if a else None
    target = bytes.fromhex(c["difficulty_target"])
    out = []
    for b in c["blocks"][:PER_CORPUS]:
        block = C.Block(bytes.fromhex(b["header"]), [bytes.fromhex(t) for t in b["txids"]],
                        list(b["numbers"]), int(b["target"]), list(b["indices"]))
        out.append(Case("validate", block, parent, (), int(c["now"]), target))  # type: ignore[arg-type]
        parent = block.header
    return out


def _synthetic(now: int, target: bytes) -> list[Case]:
    """An empty block without a parent: the smallest base."""
    return [Case("validate", C.Block(bytes(C.HEADER_SIZE), [], [], 0, []), None, (), now, target)]


def build_pool(corpora: list[str] | None) -> list[Case]:
    """Base cases from ``corpora`` (default: the shipped sample and edge-case corpora and
    the public vectors' chain)."""
    paths = [Path(p) for p in corpora] if corpora else \
        [PROJECT_ROOT / p for p in DEFAULT_SEEDS if (PROJECT_ROOT / p).is_dir()]
    if not paths:
        raise ParityError("--corpus: no seed corpus given and the shipped samples are not "
                          "here; name one or more corpus directories")
    pool: list[Case] = []
    for p in paths:
        pool += _from_corpus(p, PER_CORPUS)
    if not corpora:
        pool += _vectors_chain()
    first = pool[0] if pool else None
    pool += _synthetic(first.now if first else 0, first.difficulty_target if first
                       else b"\xff" * 32)
    return pool


def save_pool(pool: list[Case], directory: Path) -> Path:
    path = directory / POOL_FILE
    atomic_write(path, lambda tmp: tmp.write_bytes(pickle.dumps(pool)))
    return path


def load_pool(path: str | Path) -> list[Case]:
    """The pool the parent saved (a file parity wrote itself in the fuzz directory)."""
    with open(path, "rb") as f:
        pool: list[Case] = pickle.load(f)
    return pool

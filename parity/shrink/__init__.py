"""Every mismatch becomes a minimal, permanent regression case.

:class:`Shrinker` starts from a block in its chain context (:func:`from_corpus`: its
true parent and the replay history it saw) and, while the two twins still disagree on
one registry function, runs the pass of every input part the function declares
(:mod:`parity.shrink.passes`) until none changes anything. The result is a
:class:`~parity.shrink.case.Case` with a generated name and both twins' outcomes, written
as JSONL (:func:`~parity.shrink.case.write_case`). :func:`neighbours` lists the one-step
reductions of a case, so a test can check it is 1-minimal.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernels import constants as C
from parity.errors import ParityError
from parity.functions import REGISTRY, BatchFunction
from parity.shrink.case import Case, case_name, load_case, outcome, rendered, write_case
from parity.shrink.ddmin import ddmin
from parity.shrink.passes import PASSES, ZERO32, numbers_without, strip

if TYPE_CHECKING:
    from parity.shadow import ShadowRun

DEFAULT_OUT = "tests/regressions"
__all__ = ["DEFAULT_OUT", "Case", "Shrinker", "check_case", "ddmin", "from_corpus", "load_case",
           "neighbours", "shrink_records", "write_case"]


@dataclass
class ShrinkResult:
    case: Case
    tests: int        # distinct candidates run through both twins
    seconds: float


class Shrinker:
    """Minimizes cases for one function while ``legacy`` and ``refactored`` disagree."""

    def __init__(self, fn: BatchFunction | str, legacy: Any, refactored: Any) -> None:
        self.fn = REGISTRY[fn] if isinstance(fn, str) else fn
        unknown = [p for p in self.fn.parts if p not in PASSES]
        if unknown:
            raise ParityError(f"{self.fn.name}: no shrinking pass for parts {unknown}")
        self.legacy, self.refactored = legacy, refactored
        self._seen: dict[tuple, bool] = {}

    def outcomes(self, case: Case) -> tuple[Any, Any]:
        return outcome(self.fn, self.legacy, case), outcome(self.fn, self.refactored, case)

    def disagree(self, case: Case) -> bool:
        key = case.key()
        if key not in self._seen:
            a, b = self.outcomes(case)
            self._seen[key] = a != b
        return self._seen[key]

    def shrink(self, case: Case) -> ShrinkResult:
        """The smallest case reached: every part's pass, repeated until none changes it."""
        t0 = time.perf_counter()
        case = replace(case, function=self.fn.name)
        if not self.disagree(case):
            raise ParityError(f"the twins agree on {self.fn.name} for this block in its chain "
                              "context: nothing to shrink")
        stripped = strip(case, self.fn.parts)
        case = stripped if self.disagree(stripped) else case
        before = None
        while before != case.key():
            before = case.key()
            for part in self.fn.parts:
                case = PASSES[part](case, self.disagree)
        a, b = self.outcomes(case)
        case = replace(case, outputs={"legacy": rendered(a), "refactored": rendered(b)})
        case = replace(case, name=case_name(case))
        return ShrinkResult(case, len(self._seen), time.perf_counter() - t0)


def check_case(case: Case, legacy: Any, refactored: Any) -> str | None:
    """None when legacy still gives the outcome recorded at shrink time and the refactored
    twin gives the same; else the reason, naming the function and the case."""
    a, b = Shrinker(case.function, legacy, refactored).outcomes(case)
    if "legacy" in case.outputs and rendered(a) != case.outputs["legacy"]:
        return (f"{case.function} regression case {case.name}: legacy now gives "
                f"{rendered(a)!r}, {case.outputs['legacy']!r} when it was shrunk")
    if a != b:
        return (f"{case.function} disagrees on regression case {case.name}: legacy "
                f"{rendered(a)!r}, refactored {rendered(b)!r}")
    return None


def neighbours(case: Case, parts: tuple[str, ...]) -> Iterator[tuple[str, Case]]:
    """Every one-step reduction of ``case``: one element removed from a list part (a
    number with its indices remapped, as the pass does), one remaining header field or
    nonzero byte, id, number, index, commitment, the target or the parent reset."""
    b = case.block
    if "header" in parts:
        for name, off, size, _kind in C.HEADER_FIELDS:
            if any(b.header[off:off + size]):
                raw = b.header[:off] + bytes(size) + b.header[off + size:]
                yield f"header.{name} reset", case.with_block(header=raw)
                for i in range(off, off + size):
                    if b.header[i]:
                        one = b.header[:i] + b"\0" + b.header[i + 1:]
                        yield f"header byte {i} reset", case.with_block(header=one)
    lists = {"txids": ZERO32, "indices": 0}
    for name, zero in lists.items():
        if name in parts:
            items = list(getattr(b, name))
            for i, item in enumerate(items):
                yield f"{name}[{i}] removed", case.with_block(**{name: items[:i] + items[i + 1:]})
                if item != zero:
                    yield f"{name}[{i}] reset", case.with_block(
                        **{name: items[:i] + [zero] + items[i + 1:]})
    if "numbers" in parts:
        nums = list(b.numbers)
        for i, x in enumerate(nums):
            yield f"numbers[{i}] removed", numbers_without(case, i)
            if x:
                yield f"numbers[{i}] reset", case.with_block(numbers=nums[:i] + [0] + nums[i + 1:])
    if "target" in parts and b.target:
        yield "target reset", case.with_block(target=0)
    if "parent" in parts and case.parent is not None:
        yield "parent dropped", replace(case, parent=None)
    if "replay" in parts:
        for i, c in enumerate(case.replay):
            yield f"replay[{i}] removed", replace(case, replay=case.replay[:i] + case.replay[i + 1:])
            if c != ZERO32:
                yield f"replay[{i}] reset", replace(
                    case, replay=case.replay[:i] + (ZERO32,) + case.replay[i + 1:])


def from_corpus(run: ShadowRun, block: int, function: str) -> Case:
    """Block ``block`` of the run's corpus for ``function``, in its chain context: the
    parent the twins see there and every earlier block's commitment (when it reads them)."""
    corpus, m = run.corpus, run.corpus.manifest
    if not 0 <= block < m.blocks:
        raise ParityError(f"--block {block}: the corpus has blocks 0..{m.blocks - 1}")
    fn = REGISTRY[function]
    parent: Any = m.anchor
    history: list[bytes] = []
    groups = corpus.row_groups()
    for g in groups:
        if g.start >= block or not {"parent", "replay"} & set(fn.parts):
            break
        headers = corpus.read_headers(g)[:block - g.start]
        history += [r.tobytes() for r in
                    headers[:, C.OFF_COMMITMENT_HASH:C.OFF_COMMITMENT_HASH + 32]]
        parent = headers[-1].tobytes()
    g = next(g for g in groups if g.start <= block < g.start + g.rows)
    b = corpus.read_shard(g).block(block - g.start)
    return Case(function, b._replace(txids=list(b.txids), numbers=list(b.numbers),
                                     indices=list(b.indices)),
                parent if "parent" in fn.parts else None,
                tuple(history) if "replay" in fn.parts else (), m.now, m.difficulty_target)


def _distinct(record: dict) -> tuple:
    """What makes two mismatches distinct: the function and, for a status, the rules
    that differ (a hash output has no fields: any differing bit is the same kind)."""
    return (record["function"], tuple(record.get("differing_rules") or ()))


def shrink_records(run: ShadowRun, records: list[dict], k: int,
                   out: str | Path = DEFAULT_OUT) -> list[dict]:
    """Shrink the first ``k`` distinct row mismatches (:func:`_distinct`) and write their
    cases; one entry per mismatch shrunk (``file`` and ``case``, or ``error``)."""
    done: list[dict] = []
    seen: set[tuple] = set()
    for r in records:
        if len(done) >= k:
            break
        if "kind" in r or _distinct(r) in seen:
            continue
        seen.add(_distinct(r))
        entry = {"function": r["function"], "block": r["block"]}
        try:
            shrinker = Shrinker(r["function"], run.legacy.twin, run.refactored.twin)
            result = shrinker.shrink(from_corpus(run, r["block"], r["function"]))
            entry.update(case=result.case.name, file=str(write_case(result.case, out)),
                         seconds=round(result.seconds, 3), tests=result.tests)
        except ParityError as exc:
            entry["error"] = str(exc)
        done.append(entry)
    return done

"""``parity fuzz``: fuzzing children under a budget, then findings shrunk and saved.

The parent never fuzzes itself: it runs :mod:`parity.fuzz.worker` children one after
another until the budget (seconds or executions) is spent. A child that dies (a deadly
signal or a timeout in a twin) leaves its input in ``artifacts/``; the parent probes
each side on it in a fresh process to say which crashed, records it and starts the next
child on the grown input corpus. At the end each disagreement is shrunk to a minimal
case (:class:`parity.shrink.Shrinker`), saved as a case file, a regression corpus and a
record, and the inputs that reached new coverage are saved as corpora.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kernels import constants as C
from parity.errors import ParityError
from parity.functions import REGISTRY, resolve
from parity.fuzz import DEFAULT_TIMEOUT, save
from parity.fuzz.crashes import CrashShrinker, probe_case, side_status
from parity.fuzz.decode import decode
from parity.fuzz.mutate import seeds
from parity.fuzz.pool import build_pool, save_pool
from parity.outputs import OutputDir, atomic_write_text
from parity.records import ShardFailure
from parity.shrink import Shrinker, write_case
from parity.shrink.case import Case
from parity.twins import DEFAULT_LEGACY, DEFAULT_REFACTORED, load_twin

#: libFuzzer artifacts that are findings (``slow-unit-*`` only notes an input over 10 s)
FINDING_ARTIFACTS = ("crash-", "timeout-", "oom-", "leak-")
OWNED = ("pool.pickle", "inputs", "artifacts", "findings.jsonl", "stats.json", "worker.log",
         "findings", "coverage", "summary.json")


@dataclass
class FuzzOptions:
    out: str
    functions: tuple[str, ...] = tuple(REGISTRY)
    legacy: str = DEFAULT_LEGACY
    refactored: str = DEFAULT_REFACTORED
    seconds: float | None = None
    runs: int | None = None
    corpora: tuple[str, ...] = ()
    seed: int = 1
    force: bool = False
    quiet: bool = False
    max_findings: int = 0  # stop after this many distinct disagreements (0: never)
    timeout: int = DEFAULT_TIMEOUT


def check_options(opts: FuzzOptions) -> Path:
    """Refuse bad options and unsafe output paths before any work; the output path."""
    if (opts.seconds is None) == (opts.runs is None):
        raise ParityError("give exactly one budget: --seconds N or --runs N")
    if opts.seconds is not None and not opts.seconds > 0:
        raise ParityError(f"--seconds {opts.seconds}: must be more than 0")
    if importlib.util.find_spec("atheris") is None:
        raise ParityError("parity fuzz needs atheris: pip install 'parity[fuzz]' (or atheris)")
    if opts.timeout < 1:
        raise ParityError(f"--timeout {opts.timeout}: must be at least 1 second")
    if opts.max_findings < 0:
        raise ParityError(f"--max-findings {opts.max_findings}: must be 0 or more")
    if opts.runs is not None and opts.runs < 1:
        raise ParityError(f"--runs {opts.runs}: must be at least 1")
    if not 0 <= opts.seed < 2**31 - 1000:
        raise ParityError(f"--seed {opts.seed}: must be in 0..{2**31 - 1001}")
    for c in opts.corpora:
        if not Path(c).is_dir():
            raise ParityError(f"--corpus {c}: no such directory")
    resolve(list(opts.functions))
    return OutputDir(opts.out, "fuzz", OWNED, "--out").check(opts.force)


class Fuzzer:
    def __init__(self, opts: FuzzOptions) -> None:
        check_options(opts)
        self.opts = opts
        self.functions = resolve(list(opts.functions))
        self.legacy = load_twin(opts.legacy, "legacy", self.functions)
        self.refactored = load_twin(opts.refactored, "refactored", self.functions)
        self.pool = build_pool(list(opts.corpora) or None)
        self.dir = OutputDir(opts.out, "fuzz", OWNED, "--out").prepare(opts.force)
        save_pool(self.pool, self.dir)
        for sub in ("inputs", "artifacts", "findings", "coverage"):
            (self.dir / sub).mkdir()
        for i, data in enumerate(seeds(len(self.pool), opts.seed)):
            (self.dir / "inputs" / f"seed-{i:04d}").write_bytes(data)
        self.crashes: list[dict] = []
        self.children = 0
        self.execs = 0
        self.busy = 0.0  # seconds spent in children

    def _say(self, text: str) -> None:
        if not self.opts.quiet:
            print(f"parity fuzz: {text}", file=sys.stderr, flush=True)

    def _pythonpath(self) -> str:
        """This parity first on the children's path."""
        return os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                os.environ.get("PYTHONPATH", "")])

    def _stats(self) -> dict:
        path = self.dir / "stats.json"
        return json.loads(path.read_text()) if path.exists() else \
            {"execs": 0, "seconds": 0.0, "set": 0, "clear": 0}

    def _worker(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "parity.fuzz.worker", "--dir", str(self.dir),
                "--legacy", self.opts.legacy, "--refactored", self.opts.refactored,
                "--functions", ",".join(f.name for f in self.functions),
                f"--max-findings={self.opts.max_findings}", *extra]

    def run_children(self) -> None:
        t0 = time.monotonic()
        env = {**os.environ, "PYTHONPATH": self._pythonpath()}
        while True:
            flags = [f"-seed={self.opts.seed * 1000 + self.children + 1}",
                     f"-timeout={self.opts.timeout}", "-rss_limit_mb=4096",
                     f"-artifact_prefix={self.dir / 'artifacts'}/", "-print_final_stats=1"]
            if self.opts.seconds is not None:
                left = self.opts.seconds - (time.monotonic() - t0)
                if left < 1:
                    break
                flags.append(f"-max_total_time={max(1, int(left))}")
            if self.opts.runs is not None:
                left_runs = self.opts.runs - self.execs
                if left_runs < 1:
                    break
                flags.append(f"-runs={left_runs}")
            log_path = self.dir / "worker.log"
            start = log_path.stat().st_size if log_path.exists() else 0
            t_child = time.monotonic()
            offset = f"--offset={self.execs},{self.busy:.3f}"
            with open(log_path, "a", encoding="utf-8") as log:
                rc = subprocess.run([*self._worker(offset, *flags), str(self.dir / "inputs")],
                                    stdout=log, stderr=subprocess.STDOUT, env=env,
                                    check=False).returncode
            self.busy += time.monotonic() - t_child
            self.children += 1
            self.execs += self._child_execs(log_path, start)
            new = sorted(p for p in (self.dir / "artifacts").iterdir()
                         if p.name.startswith(FINDING_ARTIFACTS)
                         and not p.name.endswith(".reported"))
            for path in new:
                self._crash(path, env)
                self._retire(path)
            if rc == 0 and not new:
                break
            if self.opts.max_findings and len(self._keys()) >= self.opts.max_findings:
                break
            if not new:
                tail = (self.dir / "worker.log").read_text(errors="replace").splitlines()[-5:]
                raise ParityError(f"the fuzzing child failed (exit {rc}): {' | '.join(tail)}")
            self._say(f"{new[0].name.split('-')[0]} in a child; reported, fuzzing goes on")

    def _keys(self) -> set[str]:
        path = self.dir / "findings.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return {json.loads(x)["key"] for x in lines} | {c["key"] for c in self.crashes}

    def _child_execs(self, log_path: Path, start: int) -> int:
        """The executions of the child that wrote ``log_path`` from byte ``start`` on
        (libFuzzer's final statistics; the child's own count when it died without them)."""
        with open(log_path, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        for line in text.splitlines():
            if line.startswith("stat::number_of_executed_units:"):
                return int(line.split(":")[-1])
        return int(self._stats()["execs"])

    def _retire(self, path: Path) -> None:
        """A reported input leaves the input corpus (a seed that crashes would end every
        later child at once) and is kept as ``<artifact>.reported``."""
        data = path.read_bytes()
        for p in (self.dir / "inputs").iterdir():
            if p.is_file() and p.stat().st_size == len(data) and p.read_bytes() == data:
                p.unlink()
        path.replace(path.with_name(path.name + ".reported"))

    def _crash(self, path: Path, env: dict) -> None:
        """Which side dies on the input, and in which function (each in a fresh process)."""
        sides = {}
        for side in ("legacy", "refactored"):
            try:
                p = subprocess.run(self._worker("--probe", str(path), "--side", side),
                                   capture_output=True, text=True, env=env, check=False,
                                   timeout=self.opts.timeout + 20)  # + loading the twins
            except subprocess.TimeoutExpired as exc:
                out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
                sides[side] = f"timeout in {(out.split() or ['?'])[-1]}"
                continue
            sides[side] = side_status(p.returncode, p.stdout)
        kind = path.name.split("-")[0]
        key = f"{kind}:" + ";".join(f"{k} {v}" for k, v in sides.items())
        if key in {c["key"] for c in self.crashes}:
            return  # the same side dying the same way: reported once
        self.crashes.append({"key": key, "artifact": path.name, "kind": kind,
                             "input": path.read_bytes().hex(), "sides": sides,
                             "execs": self.execs, "seconds": round(self.busy, 3)})

    def _save_case(self, case: Case, fn_name: str, extra: dict) -> dict:
        fn = REGISTRY[fn_name]
        path = write_case(case, self.dir / "findings")
        corpus_dir = self.dir / "findings" / case.name
        if not corpus_dir.exists():  # two findings may shrink to the same case
            blocks, anchor = save.case_blocks(case)
            save.write_corpus(corpus_dir, blocks, case.now, case.difficulty_target, anchor)
        cmd = f"parity replay {corpus_dir}"
        twin = self.opts.refactored
        if twin != DEFAULT_REFACTORED:
            cmd += f" --refactored {os.path.abspath(twin) if os.path.isfile(twin) else twin}"
        record: Any = extra.pop("record", None)
        reproduces: bool | None = None  # a crash is not re-run here: it would end this process
        if record is None:
            record = save.corpus_record(fn, corpus_dir, self.legacy, self.refactored, cmd)
            reproduces = record is not None
        entry = {"case": case.name, "function": fn_name, "file": str(path),
                 "corpus": str(corpus_dir), "reproduces": reproduces,
                 "record": record.to_json() if record is not None else None, **extra}
        save.save_json(self.dir / "findings" / f"{case.name}.json", entry)
        return entry

    def findings(self) -> list[dict]:
        out = []
        path = self.dir / "findings.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            f = json.loads(line)
            case = replace(decode(self.pool, bytes.fromhex(f["input"])), function=f["function"])
            shrinker = Shrinker(f["function"], self.legacy, self.refactored)
            extra = {k: f[k] for k in ("key", "input", "execs", "seconds")}
            if not shrinker.disagree(case):
                out.append({**extra, "function": f["function"],
                            "error": "the twins agree on it in the parent process (flaky)"})
                continue
            result = shrinker.shrink(case)
            self._say(f"{f['key']}: shrunk to {result.case.name} ({result.tests} tests)")
            out.append(self._save_case(result.case, f["function"], extra))
        for c in self.crashes:
            case = decode(self.pool, bytes.fromhex(c["input"]))
            dead = [s for s, how in c["sides"].items() if how != "ok"]
            where = c["sides"].get(dead[0], "") if dead else ""
            fn = where.split(" in ")[-1] if " in " in where else self.functions[0].name
            fn = fn if fn in REGISTRY else self.functions[0].name
            case = replace(case, function=fn, name=f"{c['kind']}-{c['artifact'][-8:]}")
            if dead and c["kind"] == "crash":  # a timeout would cost its timeout per probe
                case = self._shrink_crash(case, dead[0], c["sides"][dead[0]])
            record = ShardFailure(fn, 0, 1, "", 0, c["kind"],
                                  detail=f"legacy: {c['sides']['legacy']}; refactored: "
                                         f"{c['sides']['refactored']}")
            out.append(self._save_case(case, fn, {**c, "record": record}))
        return out

    def _shrink_crash(self, case: Case, side: str, how: str) -> Case:
        env = {**os.environ, "PYTHONPATH": self._pythonpath()}
        worker = self._worker(f"--functions={case.function}")
        shrinker = CrashShrinker(case.function, self.legacy, self.refactored,
                                 probe_case(worker, env, side, self.opts.timeout + 20), how)
        try:
            result = shrinker.shrink(case)
        except ParityError:  # the case alone does not crash (the input was not the cause)
            return case
        self._say(f"{how}: shrunk to {result.case.name} ({result.tests} probes)")
        return result.case

    def coverage(self) -> list[dict]:
        cases = [decode(self.pool, p.read_bytes())
                 for p in sorted((self.dir / "inputs").iterdir()) if p.is_file()]
        return save.coverage_corpora(self.dir / "coverage", cases)


def run_fuzz(opts: FuzzOptions) -> dict:
    """Fuzz under the budget, then shrink and save; the summary (also ``summary.json``)."""
    fz = Fuzzer(opts)
    fz._say(f"fuzzing {opts.refactored} against {opts.legacy} "
            f"({', '.join(f.name for f in fz.functions)}), pool of {len(fz.pool)} base blocks")
    t0 = time.monotonic()
    fz.run_children()
    stats = fz._stats()
    found = fz.findings()
    coverage = fz.coverage()
    summary = {"out": str(fz.dir), "legacy": opts.legacy, "refactored": opts.refactored,
               "functions": [f.name for f in fz.functions], "seed": opts.seed,
               "execs": fz.execs, "seconds": round(time.monotonic() - t0, 3),
               "children": fz.children, "findings": found,
               "rules_seen_set": C.rule_names(stats["set"]),
               "rules_seen_clear": C.rule_names(stats["clear"]),
               "rules_never_set": [n for n in C.RULE_NAMES if n not in C.rule_names(stats["set"])],
               "rules_never_clear": [n for n in C.RULE_NAMES
                                     if n not in C.rule_names(stats["clear"])],
               "coverage_corpora": coverage}
    atomic_write_text(fz.dir / "summary.json",
                      json.dumps({"written_by": save.WRITTEN_BY, **summary}, indent=2) + "\n")
    return summary

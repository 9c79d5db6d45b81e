"""``parity shadow`` and ``parity replay``: batch runs over a corpus."""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from parity.cli.args import add_parser, csv_list, mode
from parity.cli.report import HTML_RECORDS_HELP, html_records, write_run_html
from parity.errors import ParityError
from parity.functions import FUNCTIONS
from parity.htmlreport import DEFAULT_RECORDS
from parity.proctwin import DEFAULT_TIMEOUT, TIMEOUT_HELP
from parity.twins import DEFAULT_LEGACY, DEFAULT_REFACTORED

if TYPE_CHECKING:
    from parity.shadow import ShadowRun

TWIN_HELP = ("the {} twin: a module name, a .py file path or exec:COMMAND (a process, "
             "twins/PROTOCOL.md) (default {})")


AA_RUN_DIR = ".parity-run/aa"  # the A/A run's default --run-dir


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse outputs that collide or are foreign, and bad URLs, before any work."""
    from parity.outputs import refuse_overlaps
    from parity.report import report_output
    from parity.shadow import default_run_dir
    refuse_overlaps([
        ("--run-dir", args.run_dir or (AA_RUN_DIR if args.aa else default_run_dir(args.corpus))),
        ("--results", args.results), ("--report", args.report), ("--html", args.html),
        ("--metrics-file", args.metrics_file),
        ("--shrink-out", args.shrink_out if args.shrink else None)])
    if args.report:
        report_output(args.report).check(args.force)
    if args.html:
        if args.aa:
            raise ParityError("--html goes with a shadow run, not --aa")
        from parity.htmlreport import html_output
        html_output(args.html).check(args.force)
    if args.metrics_file:
        from parity.exporters import metrics_file_output
        metrics_file_output(args.metrics_file).check(args.force)
    if args.pushgateway is not None:
        from parity.exporters import validate_pushgateway_url
        validate_pushgateway_url(args.pushgateway)


def _check_combinations(args: argparse.Namespace) -> None:
    """Options that would be silently ignored are usage errors, before any work."""
    if args.engine != "dask":
        for flag, value in (("--workers", args.workers), ("--scheduler", args.scheduler)):
            if value is not None:
                raise ParityError(f"{flag} goes with --engine dask")
    elif args.workers is not None and args.workers < 1 and not args.scheduler:
        raise ParityError(f"--workers must be at least 1, got {args.workers}")
    if args.aa:
        from parity.modes import Mode
        if args.mode is not None and args.mode != Mode.SHADOW:
            raise ParityError(f"--aa always runs mode 1 (shadow), not {args.mode.label}: drop "
                              "--mode or --aa")
        ignored = [flag for flag, given in (
            ("--resume", args.resume), ("--results", args.results),
            ("--engine dask", args.engine == "dask"), ("--pushgateway", args.pushgateway),
            ("--metrics-file", args.metrics_file)) if given]
        if ignored:
            raise ParityError(f"--aa does not take {', '.join(ignored)}")


def _announce(run: ShadowRun) -> None:
    """The run's title line on stderr before any work (the table comes at the end)."""
    import sys
    c, o = run.corpus, run.opts
    only = (f"; legacy only (the refactored twin does not implement them): "
            f"{','.join(run.legacy_only)}" if run.legacy_only else "")
    print(f"parity shadow {c.path}: {c.manifest.blocks:,} blocks in {len(c.row_groups()):,} "
          f"shard(s), mode {o.mode.label}, functions {','.join(o.functions)}; legacy "
          f"{o.legacy}, refactored {o.refactored}{only}", file=sys.stderr, flush=True)


def _shadow(args: argparse.Namespace) -> int:
    _check_combinations(args)
    from parity.exporters import BatchExporter
    from parity.modes import mode_from_env
    from parity.report import render_table, write_report
    from parity.shadow import ShadowOptions, ShadowRun
    _check_outputs(args)
    common = dict(corpus=args.corpus, functions=tuple(args.functions), sample=args.sample,
                  repeat=args.repeat, seed=args.seed, quiet=args.quiet,
                  max_records=args.max_records, twin_timeout=args.twin_timeout)
    if args.aa:
        if args.shrink:
            raise ParityError("--shrink goes with a shadow run, not --aa")
        return _aa(args, common)
    opts = ShadowOptions(mode=args.mode if args.mode is not None else mode_from_env(),
                         legacy=args.legacy, refactored=args.refactored, results=args.results,
                         run_dir=args.run_dir, resume=args.resume, force=args.force,
                         shrink=args.shrink, shrink_out=args.shrink_out, **common)
    engine: object
    if args.engine == "dask":
        from parity.distributed import DaskShadow
        engine = DaskShadow(opts, scheduler=args.scheduler,
                            workers=2 if args.workers is None else args.workers)
        run = engine.run
    else:
        engine = run = ShadowRun(opts)
    with run:  # stops exec: twins at the end, also on an error or Ctrl-C
        if not args.quiet:
            _announce(run)
        with BatchExporter(run.metrics, args.pushgateway, args.metrics_file, run.corpus,
                           force=args.force) as exporter:
            result = engine.execute(on_shard=exporter.on_shard)
        if opts.shrink and "reproducers" not in result.report:  # the dask engine
            result.report["reproducers"] = run.reproducers(result.records)
    if exporter.warnings:
        result.report["warnings"] = result.report.get("warnings", []) + list(exporter.warnings)
    if args.report:
        write_report(result.report, args.report, args.force)
    print(render_table(result.report))
    if args.html:
        write_run_html(args.html, result.report, run.summary, result.records, args.html_records,
                       args.force, "parity shadow")
    return int(result.exit_code)


def _aa(args: argparse.Namespace, common: dict) -> int:
    """A/A: legacy vs legacy and refactored vs refactored must show zero differences."""
    from parity.modes import Mode
    from parity.report import render_table, write_report
    from parity.shadow import ShadowOptions, ShadowRun
    run_dir = args.run_dir or AA_RUN_DIR
    reports = {}
    code = 0
    for name, module in (("legacy", args.legacy), ("refactored", args.refactored)):
        opts = ShadowOptions(mode=Mode.SHADOW, legacy=module, refactored=module,
                             run_dir=f"{run_dir}/{name}", force=args.force or not args.run_dir,
                             **common)
        with ShadowRun(opts) as aa_run:
            if not args.quiet:
                _announce(aa_run)
            result = aa_run.execute()
        reports[f"{name}_vs_{name}"] = result.report
        print(f"A/A {name} vs {name}:")
        print(render_table(result.report))
        code = max(code, result.exit_code)
    if args.report:
        write_report({"aa": reports, "differences": sum(
            f["mismatches"] for r in reports.values() for f in r["functions"].values())},
            args.report, args.force)
    return code


def _replay(args: argparse.Namespace) -> int:
    import tempfile

    from parity.modes import Mode
    from parity.shadow import ShadowOptions, ShadowRun
    with tempfile.TemporaryDirectory() as tmp:
        opts = ShadowOptions(corpus=args.corpus, mode=Mode.SHADOW,
                             functions=tuple(args.functions), legacy=args.legacy,
                             refactored=args.refactored, run_dir=tmp, quiet=True,
                             twin_timeout=args.twin_timeout)
        with ShadowRun(opts) as run:
            records, outputs = run.replay_block(args.block)
    print(json.dumps({"block": args.block, "outputs": outputs, "mismatches": records}, indent=2))
    return 1 if records else 0


def register(sub: argparse._SubParsersAction) -> None:
    fns = ",".join(FUNCTIONS)
    s = add_parser(sub, "shadow", help="run both twins over a corpus and compare every output")
    s.add_argument("corpus", help="the corpus directory")
    s.add_argument("--mode", type=mode, default=None,
                   help="0-3 or legacy_only|shadow|refactored_primary|refactored_only "
                        "(default: $CODEC_MODE, else shadow)")
    s.add_argument("--functions", type=csv_list, default=list(FUNCTIONS),
                   help=f"comma-separated functions to run and compare (default {fns})")
    s.add_argument("--report", help="write the JSON report here")
    s.add_argument("--results", help="write the served results Parquet here")
    s.add_argument("--html", help="write the self-contained HTML report here")
    s.add_argument("--html-records", type=html_records, default=DEFAULT_RECORDS,
                   help=HTML_RECORDS_HELP.format(DEFAULT_RECORDS))
    s.add_argument("--sample", type=float, default=1.0,
                   help="mode 2: share of shards on which legacy also runs (default 1.0)")
    s.add_argument("--legacy", default=DEFAULT_LEGACY,
                   help=TWIN_HELP.format("legacy", DEFAULT_LEGACY))
    s.add_argument("--refactored", default=DEFAULT_REFACTORED,
                   help=TWIN_HELP.format("refactored", DEFAULT_REFACTORED))
    s.add_argument("--twin-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=TIMEOUT_HELP)
    s.add_argument("--aa", action="store_true",
                   help="A/A determinism check instead: each twin against itself, mode 1")
    s.add_argument("--run-dir", help="mismatch log, checkpoint and result parts (default "
                                     ".parity-run/<corpus name>)")
    s.add_argument("--resume", action="store_true", help="continue from the last completed shard")
    s.add_argument("--force", action="store_true",
                   help="replace earlier parity output at --run-dir, --results, --report, "
                        "--html, --metrics-file (never a file or directory parity did not write)")
    s.add_argument("--repeat", type=int, default=1, help="timed calls per function and shard")
    s.add_argument("--seed", type=int, default=0,
                   help="seed of the mode-2 legacy sample (which shards legacy also runs on)")
    s.add_argument("--max-records", type=int, default=100_000,
                   help="mismatch records kept at most (counts stay exact beyond it)")
    s.add_argument("--shrink", type=int, default=0, metavar="K",
                   help="at the end, shrink the first K distinct mismatches (by function and "
                        "differing rule or byte) to regression cases (see parity shrink)")
    s.add_argument("--shrink-out", default="tests/regressions", metavar="DIR",
                   help="with --shrink: directory for the case files (default tests/regressions/)")
    s.add_argument("--pushgateway", help="push metrics to this Pushgateway URL")
    s.add_argument("--metrics-file", help="write metrics in the textfile format here")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--engine", choices=["local", "dask"], default="local",
                   help="local: this process; dask: one task per shard on a Dask cluster")
    s.add_argument("--scheduler", help="with --engine dask: a running scheduler's address")
    s.add_argument("--workers", type=int, default=None,
                   help="with --engine dask and no --scheduler: local worker processes, at "
                        "least 1 (default 2)")
    s.set_defaults(func=_shadow)
    r = add_parser(sub, "replay", help="run both twins on one block of a corpus")
    r.add_argument("corpus", help="the corpus directory")
    r.add_argument("--block", type=int, required=True,
                   help="the block's position in the corpus (0-based)")
    r.add_argument("--functions", type=csv_list, default=list(FUNCTIONS),
                   help=f"comma-separated functions to replay (default {fns})")
    r.add_argument("--legacy", default=DEFAULT_LEGACY,
                   help=TWIN_HELP.format("legacy", DEFAULT_LEGACY))
    r.add_argument("--refactored", default=DEFAULT_REFACTORED,
                   help=TWIN_HELP.format("refactored", DEFAULT_REFACTORED))
    r.add_argument("--twin-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=TIMEOUT_HELP)
    r.set_defaults(func=_replay)

"""``parity`` command line: corpora, shadow runs, replays, codec mode, metrics server."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from kernels import constants as C
from parity.errors import ParityError, StateError


def _hex32(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not hex: {text!r}") from None
    if len(raw) != 32:
        raise argparse.ArgumentTypeError("expected 64 hex digits")
    return raw


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _cmd_generate(args: argparse.Namespace) -> int:
    from parity.corpus.generate import GenerateOptions, generate
    from parity.progress import Progress
    opts = GenerateOptions(blocks=args.blocks, seed=args.seed, fault_rate=args.fault_rate,
                           rules=args.rules or C.RULE_NAMES, tiers=args.tiers, now=args.now,
                           difficulty_target=args.difficulty, anchor=not args.no_anchor,
                           shard_size=args.shard_size, rows_per_file=args.rows_per_file)
    with Progress(args.blocks, "generate", quiet=args.quiet) as bar:
        generate(args.out, opts, force=args.force, progress=bar.advance)
    print(f"wrote {args.blocks:,} blocks to {args.out} (ground truth: {args.out}/ground-truth.parquet)")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from parity.corpus import open_corpus
    from parity.corpus.summary import render, summarize
    summary = summarize(open_corpus(args.path))
    print(json.dumps(summary, indent=2) if args.json else render(summary))
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from parity.corpus.jsonl import import_jsonl
    n = import_jsonl(args.jsonl, args.out, rows_per_file=args.rows_per_file, force=args.force)
    print(f"imported {n:,} blocks from {args.jsonl} into {args.out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from parity.corpus.jsonl import export_jsonl
    n = export_jsonl(args.path, args.jsonl, force=args.force)
    print(f"exported {n:,} blocks from {args.path} to {args.jsonl}")
    return 0


def _corpus_parser(sub: argparse._SubParsersAction) -> None:
    corpus = sub.add_parser("corpus", help="generate, verify, import and export corpora")
    csub = corpus.add_subparsers(dest="corpus_cmd", required=True)
    g = csub.add_parser("generate", help="write a deterministic chain with injected faults")
    g.add_argument("out")
    g.add_argument("--blocks", type=int, required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--fault-rate", type=float, default=0.0,
                   help="fraction of blocks that break one rule (default 0)")
    g.add_argument("--rules", type=_csv, default=None,
                   help="comma-separated rule names to inject (default: all)")
    g.add_argument("--tiers", type=_csv, default=["mobile", "desktop", "workstation", "server"])
    g.add_argument("--now", type=int, default=1_767_225_600)
    g.add_argument("--difficulty", type=_hex32, default=bytes.fromhex("0f" + "ff" * 31))
    g.add_argument("--no-anchor", action="store_true")
    g.add_argument("--shard-size", type=int, default=10_000, help="rows per row group")
    g.add_argument("--rows-per-file", type=int, default=100_000)
    g.add_argument("--force", action="store_true",
                   help="replace a corpus parity wrote there (never other files)")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=_cmd_generate)
    v = csub.add_parser("verify", help="check manifest, checksums, rows and types; summarize")
    v.add_argument("path")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_cmd_verify)
    i = csub.add_parser("import", help="JSONL -> corpus")
    i.add_argument("--jsonl", required=True)
    i.add_argument("out")
    i.add_argument("--rows-per-file", type=int, default=100_000)
    i.add_argument("--force", action="store_true",
                   help="replace a corpus parity wrote there (never other files)")
    i.set_defaults(func=_cmd_import)
    e = csub.add_parser("export", help="corpus -> JSONL")
    e.add_argument("path")
    e.add_argument("--jsonl", required=True)
    e.add_argument("--force", action="store_true",
                   help="replace a JSONL file an earlier export wrote (never another file)")
    e.set_defaults(func=_cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parity", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    _corpus_parser(sub)
    for register in _EXTRA_PARSERS:
        register(sub)
    return parser


_EXTRA_PARSERS: list = []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ParityError as exc:
        print(f"parity: error: {exc}", file=sys.stderr)
        return 2
    except StateError as exc:  # not bad input: the change could not be made durable
        print(f"parity: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"parity: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("parity: interrupted", file=sys.stderr)
        return 130


# ---- shadow, replay, mode, serve ------------------------------------------------------

def _mode_arg(text: str):
    from parity.modes import parse_mode
    try:
        return parse_mode(text, "--mode")
    except ParityError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_shadow(args: argparse.Namespace) -> int:
    from parity.modes import mode_from_env
    from parity.report import render_table, report_output, write_report
    from parity.shadow import ShadowOptions, ShadowRun
    mode = args.mode if args.mode is not None else mode_from_env()
    if args.report:
        report_output(args.report).check(args.force)
    if args.metrics_file:
        from parity.exporters import metrics_file_output
        metrics_file_output(args.metrics_file).check(args.force)
    if args.pushgateway is not None:
        from parity.exporters import validate_pushgateway_url
        validate_pushgateway_url(args.pushgateway)  # a usage error, before any work
    common = dict(corpus=args.corpus, functions=tuple(args.functions), sample=args.sample,
                  repeat=args.repeat, seed=args.seed, quiet=args.quiet,
                  max_records=args.max_records)
    if args.aa:
        return _run_aa(args, common)
    opts = ShadowOptions(mode=mode, legacy=args.legacy, refactored=args.refactored,
                         results=args.results, run_dir=args.run_dir, resume=args.resume,
                         force=args.force, **common)
    from parity.exporters import BatchExporter
    if args.engine == "dask":
        from parity.distributed import DaskShadow
        engine = DaskShadow(opts, scheduler=args.scheduler, workers=args.workers)
        run = engine.run
    else:
        if args.scheduler:
            raise ParityError("--scheduler goes with --engine dask")
        engine = run = ShadowRun(opts)
    with BatchExporter(run.metrics, args.pushgateway, args.metrics_file, run.corpus,
                       force=args.force) as exporter:
        result = engine.execute(on_shard=exporter.on_shard)
    if exporter.warnings:
        result.report["warnings"] = result.report.get("warnings", []) + list(exporter.warnings)
    if args.report:
        write_report(result.report, args.report, args.force)
    print(render_table(result.report))
    return result.exit_code


def _run_aa(args: argparse.Namespace, common: dict) -> int:
    """A/A: legacy vs legacy and refactored vs refactored must show zero differences."""
    from parity.modes import Mode
    from parity.report import render_table, write_report
    from parity.shadow import ShadowOptions, ShadowRun
    run_dir = args.run_dir or ".parity-run/aa"
    reports = {}
    code = 0
    for name, module in (("legacy", args.legacy), ("refactored", args.refactored)):
        opts = ShadowOptions(mode=Mode.SHADOW, legacy=module, refactored=module,
                             run_dir=f"{run_dir}/{name}", force=args.force or not args.run_dir,
                             **common)
        result = ShadowRun(opts).execute()
        reports[f"{name}_vs_{name}"] = result.report
        print(f"A/A {name} vs {name}:")
        print(render_table(result.report))
        code = max(code, result.exit_code)
    if args.report:
        write_report({"aa": reports, "differences": sum(
            f["mismatches"] for r in reports.values() for f in r["functions"].values())},
            args.report, args.force)
    return code


def _cmd_replay(args: argparse.Namespace) -> int:
    import tempfile

    from parity.modes import Mode
    from parity.shadow import ShadowOptions, ShadowRun
    with tempfile.TemporaryDirectory() as tmp:
        opts = ShadowOptions(corpus=args.corpus, mode=Mode.SHADOW, functions=tuple(args.functions),
                             legacy=args.legacy, refactored=args.refactored, run_dir=tmp, quiet=True)
        records, outputs = ShadowRun(opts).replay_block(args.block)
    print(json.dumps({"block": args.block, "outputs": outputs, "mismatches": records}, indent=2))
    return 1 if records else 0


def _shadow_parser(sub: argparse._SubParsersAction) -> None:
    from parity.shadow import FUNCTIONS
    from parity.twins import DEFAULT_LEGACY, DEFAULT_REFACTORED
    s = sub.add_parser("shadow", help="run both twins over a corpus and compare every output")
    s.add_argument("corpus")
    s.add_argument("--mode", type=_mode_arg, default=None,
                   help="0-3 or legacy_only|shadow|refactored_primary|refactored_only "
                        "(default: $CODEC_MODE, else shadow)")
    s.add_argument("--functions", type=_csv, default=list(FUNCTIONS))
    s.add_argument("--report", help="write the JSON report here")
    s.add_argument("--results", help="write the served results Parquet here")
    s.add_argument("--sample", type=float, default=1.0,
                   help="mode 2: share of shards on which legacy also runs (default 1.0)")
    s.add_argument("--legacy", default=DEFAULT_LEGACY, help="module of the legacy twin")
    s.add_argument("--refactored", default=DEFAULT_REFACTORED, help="module of the refactored twin")
    s.add_argument("--aa", action="store_true", help="A/A determinism check instead")
    s.add_argument("--run-dir", help="mismatch log, checkpoint and result parts (default "
                                     ".parity-run/<corpus name>)")
    s.add_argument("--resume", action="store_true", help="continue from the last completed shard")
    s.add_argument("--force", action="store_true",
                   help="replace earlier parity output at --run-dir, --results, --report, "
                        "--metrics-file (never a file or directory parity did not write)")
    s.add_argument("--repeat", type=int, default=1, help="timed calls per function and shard")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--max-records", type=int, default=100_000)
    s.add_argument("--pushgateway", help="push metrics to this Pushgateway URL")
    s.add_argument("--metrics-file", help="write metrics in the textfile format here")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--engine", choices=["local", "dask"], default="local")
    s.add_argument("--scheduler", help="with --engine dask: a running scheduler's address")
    s.add_argument("--workers", type=int, default=2,
                   help="with --engine dask and no --scheduler: local worker processes")
    s.set_defaults(func=_cmd_shadow)
    r = sub.add_parser("replay", help="run both twins on one block of a corpus")
    r.add_argument("corpus")
    r.add_argument("--block", type=int, required=True)
    r.add_argument("--functions", type=_csv, default=list(FUNCTIONS))
    r.add_argument("--legacy", default=DEFAULT_LEGACY)
    r.add_argument("--refactored", default=DEFAULT_REFACTORED)
    r.set_defaults(func=_cmd_replay)


_EXTRA_PARSERS.append(_shadow_parser)


def _state(args: argparse.Namespace, initial=None):
    from parity.state import ModeState, default_state_path
    return ModeState(args.state or default_state_path(), initial=initial)


def _cmd_mode(args: argparse.Namespace) -> int:
    state = _state(args)
    if args.action == "promote":
        change = state.promote(args.reason)
        print(f"promoted {change['from']} -> {change['to']}")
    elif args.action == "demote":
        change = state.demote(args.reason)
        print(f"demoted {change['from']} -> {change['to']}" if change else
              f"nothing to demote: mode is {state.mode.label}")
    elif args.action == "set":
        from parity.modes import parse_mode
        change = state.set_mode(parse_mode(args.to, "mode set"), args.reason)
        print(f"mode {change['from']} -> {change['to']}" if change else
              f"mode is already {state.mode.label}")
    comparisons, mismatches = state.window()
    print(json.dumps({"mode": int(state.mode), "name": state.mode.label,
                      "window_5m": {"comparisons": comparisons, "mismatches": mismatches},
                      "promotion": state.promotion_refusal() or "allowed",
                      "history": state.history[-10:]}, indent=2))
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} out of range 0-65535")
    return port


def _cmd_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from parity.percall import Controller
    from parity.server import ParityServer
    controller = Controller(_state(args, initial=args.mode), sample=args.sample)
    try:
        server = ParityServer(controller, args.host, args.port).start()
    except (OSError, ValueError) as exc:  # ValueError: a host name IDNA cannot encode
        reason = getattr(exc, "strerror", None) or exc
        raise ParityError(f"cannot listen on {args.host}:{args.port} ({reason})") from None
    host, port = server.address
    print(f"parity serve: http://{host}:{port}/metrics, webhook POST {host}:{port}/alertmanager, "
          f"mode {controller.mode.label}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.workload:
        from parity.workload import start_workload
        start_workload(controller, args.workload, args.rate, stop)
    from parity.errors import StateError
    last_error = ""
    try:
        while not stop.wait(0.5):
            try:
                controller.state.refresh()
                last_error = ""
            except StateError as exc:  # keep serving; say so once per distinct failure
                if str(exc) != last_error:
                    last_error = str(exc)
                    print(f"parity: warning: mode state: {exc}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("mode", help="show, promote or demote the recorded codec mode")
    m.add_argument("action", choices=["show", "promote", "demote", "set"])
    m.add_argument("to", nargs="?", help="with set: the mode (number or name)")
    m.add_argument("--state", help="mode state database (default $PARITY_STATE, else .parity/state.db; a "
                        "mode.json beside it is imported once)")
    m.add_argument("--reason", default="operator")
    m.set_defaults(func=_cmd_mode)
    s = sub.add_parser("serve", help="serve /metrics and the Alertmanager rollback webhook")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_port, default=8001, help="0-65535 (0: any free port)")
    s.add_argument("--mode", type=_mode_arg, default=None,
                   help="mode for a new state file (a recorded mode wins)")
    s.add_argument("--state", help="mode state database (default $PARITY_STATE, else .parity/state.db; a "
                        "mode.json beside it is imported once)")
    s.add_argument("--sample", type=float, default=1.0, help="mode 2 legacy sample")
    s.add_argument("--workload", help="corpus to replay through per-call experiments")
    s.add_argument("--rate", type=float, default=200.0, help="workload blocks per second")
    s.set_defaults(func=_cmd_serve)


_EXTRA_PARSERS.append(_serve_parser)

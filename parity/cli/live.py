"""Live validation on the command line: ``parity serve --chain/--live`` and ``parity feed``."""
from __future__ import annotations

import argparse
from typing import Any

from parity.cli.args import add_parser, hex32
from parity.errors import ParityError
from parity.proctwin import DEFAULT_TIMEOUT, TIMEOUT_HELP
from parity.twins import DEFAULT_LEGACY, DEFAULT_REFACTORED


def anchor(text: str) -> tuple[int, bytes, int]:
    try:
        height, hsh, ts = text.split(",")
        value = (int(height), bytes.fromhex(hsh), int(ts))
    except ValueError:
        raise argparse.ArgumentTypeError("expected HEIGHT,HASH,TIMESTAMP (hash: 64 hex digits)") \
            from None
    if len(value[1]) != 32 or not 0 <= value[0] < 2**64 or not -2**63 <= value[2] < 2**63:
        raise argparse.ArgumentTypeError("expected HEIGHT,HASH,TIMESTAMP (hash: 64 hex digits)")
    return value


def add_serve_options(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("live validation (POST /blocks, GET /mismatches, /results, /chain)")
    g.add_argument("--chain", metavar="CORPUS",
                   help="validate blocks as they arrive, with this corpus manifest's difficulty "
                        "target, anchor and fixed clock 'now'")
    g.add_argument("--live", action="store_true",
                   help="validate blocks as they arrive with the flags below and the wall clock")
    g.add_argument("--difficulty", type=hex32, default=bytes.fromhex("0f" + "ff" * 31),
                   help="with --live: difficulty target, 64 hex digits (default 0fff...ff)")
    g.add_argument("--anchor", type=anchor, default=None,
                   help="with --live: the first block's parent HEIGHT,HASH,TIMESTAMP")
    g.add_argument("--legacy", default=DEFAULT_LEGACY,
                   help="the legacy twin (module, .py or exec:COMMAND)")
    g.add_argument("--refactored", default=DEFAULT_REFACTORED,
                   help="the refactored twin (module, .py or exec:COMMAND)")
    g.add_argument("--twin-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=TIMEOUT_HELP)


def attach(args: argparse.Namespace, controller: Any, server: Any) -> Any:
    """The live validator for ``parity serve``, its routes added; None when not asked for."""
    from parity.live import Chain, LiveValidator, install
    if args.chain and args.live:
        raise ParityError("--chain and --live: choose one")
    if args.chain:
        from parity.corpus import open_corpus
        m = open_corpus(args.chain).manifest
        chain = Chain(m.now, m.difficulty_target, m.anchor)
    elif args.live:
        chain = Chain(None, args.difficulty, args.anchor)
    else:
        return None
    live = LiveValidator(controller, chain, args.legacy, args.refactored,
                         twin_timeout=args.twin_timeout)
    live.warm_up()  # before serving: the first batch then costs what every batch costs
    install(server, live)
    return live


def _feed(args: argparse.Namespace) -> int:
    from parity.feed import feed
    result = feed(args.corpus, args.to, batch=args.batch, results=args.results,
                  force=args.force, quiet=args.quiet)
    print(f"parity feed {args.corpus} -> {args.to}: {result.posted:,} blocks posted, "
          f"{result.skipped:,} already acknowledged, {result.disagreed:,} where the twins "
          f"disagreed, {result.retries:,} retries")
    return 1 if result.disagreed else 0


def register(sub: argparse._SubParsersAction) -> None:
    f = add_parser(sub, "feed", help="post a corpus to a live server (parity serve --chain)")
    f.add_argument("corpus", help="the corpus directory")
    f.add_argument("--to", required=True, help="the server, e.g. http://127.0.0.1:8001")
    f.add_argument("--batch", type=int, default=100, help="blocks per POST (default 100)")
    f.add_argument("--results", help="write the served results Parquet here")
    f.add_argument("--force", action="store_true",
                   help="replace a results file parity wrote (never another file)")
    f.add_argument("--quiet", action="store_true", help="no progress line")
    f.set_defaults(func=_feed)

"""``parity corpus generate | verify | import | export``."""
from __future__ import annotations

import argparse
import json

from kernels import constants as C
from parity.cli.args import add_parser, csv_list, hex32

FORCE_CORPUS = "replace a corpus parity wrote there (never a directory parity did not write)"


def _generate(args: argparse.Namespace) -> int:
    from parity.corpus.generate import GenerateOptions, generate
    from parity.progress import Progress
    opts = GenerateOptions(blocks=args.blocks, seed=args.seed, fault_rate=args.fault_rate,
                           rules=args.rules or C.RULE_NAMES, tiers=args.tiers, now=args.now,
                           difficulty_target=args.difficulty, anchor=not args.no_anchor,
                           shard_size=args.shard_size, rows_per_file=args.rows_per_file)
    with Progress(args.blocks, "generate", quiet=args.quiet) as bar:
        generate(args.out, opts, force=args.force, progress=bar.advance)
    print(f"wrote {args.blocks:,} blocks to {args.out} "
          f"(ground truth: {args.out}/ground-truth.parquet)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from parity.corpus import open_corpus
    from parity.corpus.summary import render, summarize
    summary = summarize(open_corpus(args.path))
    print(json.dumps(summary, indent=2) if args.json else render(summary))
    return 0


def _import(args: argparse.Namespace) -> int:
    from parity.corpus.jsonl import import_jsonl
    n = import_jsonl(args.jsonl, args.out, rows_per_file=args.rows_per_file,
                     shard_size=args.shard_size, force=args.force)
    print(f"imported {n:,} blocks from {args.jsonl} into {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from parity.corpus.jsonl import export_jsonl
    n = export_jsonl(args.path, args.jsonl, force=args.force)
    print(f"exported {n:,} blocks from {args.path} to {args.jsonl}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    corpus = add_parser(sub, "corpus", help="generate, verify, import and export corpora")
    csub = corpus.add_subparsers(dest="corpus_cmd", required=True, metavar="ACTION",
                                 help="parity corpus ACTION --help describes each one")
    g = add_parser(csub, "generate", help="write a deterministic chain with injected faults")
    g.add_argument("out", help="the corpus directory to write (new, empty, or parity's own "
                               "with --force)")
    g.add_argument("--blocks", type=int, required=True, help="how many blocks (0 or more)")
    g.add_argument("--seed", type=int, default=0,
                   help="random seed: the same seed and options give the same corpus")
    g.add_argument("--fault-rate", type=float, default=0.0,
                   help="fraction of blocks that break one rule (default 0)")
    g.add_argument("--rules", type=csv_list, default=None,
                   help="comma-separated rule names to inject (default: all 18)")
    g.add_argument("--tiers", type=csv_list, default=["mobile", "desktop", "workstation", "server"],
                   help="comma-separated reveal size tiers to draw from (mobile, desktop, "
                        "workstation, server, cluster)")
    g.add_argument("--now", type=int, default=1_767_225_600,
                   help="the validation clock written to the manifest (Unix seconds)")
    g.add_argument("--difficulty", type=hex32, default=bytes.fromhex("0f" + "ff" * 31),
                   help="difficulty target, 64 hex digits (default 0fff...ff)")
    g.add_argument("--no-anchor", action="store_true",
                   help="no anchor: the first block has no parent (chain rules skipped for it)")
    g.add_argument("--shard-size", type=int, default=10_000,
                   help="blocks per Parquet row group, the unit a shadow run processes (a file "
                        "boundary splits a row group in two)")
    g.add_argument("--rows-per-file", type=int, default=100_000,
                   help="blocks per Parquet file")
    g.add_argument("--force", action="store_true", help=FORCE_CORPUS)
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_generate)
    v = add_parser(csub, "verify", help="check manifest, checksums, rows and types; summarize")
    v.add_argument("path", help="the corpus directory")
    v.add_argument("--json", action="store_true", help="print the summary as JSON")
    v.set_defaults(func=_verify)
    i = add_parser(csub, "import", help="JSONL -> corpus")
    i.add_argument("--jsonl", required=True, help="the JSONL file (see corpora/README.md)")
    i.add_argument("out", help="the corpus directory to write")
    i.add_argument("--shard-size", type=int, default=10_000,
                   help="blocks per Parquet row group, the unit a shadow run processes (a file "
                        "boundary splits a row group in two)")
    i.add_argument("--rows-per-file", type=int, default=100_000, help="blocks per Parquet file")
    i.add_argument("--force", action="store_true", help=FORCE_CORPUS)
    i.set_defaults(func=_import)
    e = add_parser(csub, "export", help="corpus -> JSONL")
    e.add_argument("path", help="the corpus directory")
    e.add_argument("--jsonl", required=True, help="the JSONL file to write")
    e.add_argument("--force", action="store_true",
                   help="replace a JSONL file an earlier export wrote (never another file)")
    e.set_defaults(func=_export)

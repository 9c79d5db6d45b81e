"""``parity report RUN_DIR``: the report of an earlier run, rebuilt from its run directory
(the terminal table, and with ``--html`` the self-contained HTML report)."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from parity.cli.args import add_parser
from parity.htmlreport import DEFAULT_RECORDS

if TYPE_CHECKING:
    from parity.summary import RunSummary

HTML_RECORDS_HELP = "mismatch records shown in full in the HTML report (default {}); the " \
                    "rest are counted by function and field"


def html_records(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return value


def write_run_html(path: str, report: dict, summary: RunSummary, records: Sequence[dict],
                   n_records: int, force: bool, source: str, corpus: str | None = None) -> None:
    """Render and write the HTML report (the corpus is read for the records' headers)."""
    from parity.htmlreport import render_page, write_html
    from parity.runview import CorpusBlocks
    text = render_page(report, summary, records, CorpusBlocks(corpus or summary.corpus), n_records, source)
    write_html(text, path, force)
    print(f"HTML report: {path} ({len(text.encode()) / 1024:,.0f} KiB)")


def _report(args: argparse.Namespace) -> int:
    from parity.report import render_table
    from parity.runview import load_run
    if args.html:
        from parity.htmlreport import html_output
        html_output(args.html).check(args.force)
    run = load_run(args.run_dir)
    report = run.report()
    print(render_table(report))
    if args.html:
        write_run_html(args.html, report, run.summary, run.records, args.html_records,
                       args.force, f"parity report {Path(args.run_dir)}", run.corpus_path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    r = add_parser(sub, "report", help="the report of an earlier run, from its run directory")
    r.add_argument("run_dir", help="a run directory (--run-dir of parity shadow)")
    r.add_argument("--html", help="write the self-contained HTML report here")
    r.add_argument("--html-records", type=html_records, default=DEFAULT_RECORDS,
                   help=HTML_RECORDS_HELP.format(DEFAULT_RECORDS))
    r.add_argument("--force", action="store_true",
                   help="replace an earlier HTML report (never a file parity did not write)")
    r.set_defaults(func=_report)

"""Argument types shared by the command families (each a one-line usage error)."""
from __future__ import annotations

import argparse

from parity.errors import ParityError
from parity.modes import Mode, parse_mode


def csv_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def hex32(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not hex: {text!r}") from None
    if len(raw) != 32:
        raise argparse.ArgumentTypeError("expected 64 hex digits")
    return raw


def mode(text: str) -> Mode:
    try:
        return parse_mode(text, "--mode")
    except ParityError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} out of range 0-65535")
    return value


def add_parser(sub: argparse._SubParsersAction, name: str, **kw: object
               ) -> argparse.ArgumentParser:
    """A subcommand parser that remembers itself, so errors show its own usage."""
    p = sub.add_parser(name, **kw)  # type: ignore[arg-type]
    p.set_defaults(parser=p)
    return p

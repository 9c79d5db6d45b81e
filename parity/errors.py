"""Errors the CLI reports as one line with exit code 2 (bad input or usage)."""
from __future__ import annotations


class ParityError(Exception):
    """Bad input or usage: reported as ``parity: error: <message>``, exit code 2."""


class CorpusError(ParityError):
    """A corpus that cannot be trusted; the message names the file and the reason."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class StateError(Exception):
    """A mode change (or state read) that could not be made durable: the caller sees it
    (CLI exit 1, webhook 503) while the process serves legacy."""

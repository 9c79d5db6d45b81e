"""The codec modes of SPEC section 5 and how they are named."""
from __future__ import annotations

import enum
import os

from parity.errors import ParityError


class Mode(enum.IntEnum):
    LEGACY_ONLY = 0
    SHADOW = 1
    REFACTORED_PRIMARY = 2
    REFACTORED_ONLY = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def runs_legacy(self) -> bool:
        return self in (Mode.LEGACY_ONLY, Mode.SHADOW, Mode.REFACTORED_PRIMARY)

    @property
    def runs_refactored(self) -> bool:
        return self != Mode.LEGACY_ONLY

    @property
    def compares(self) -> bool:
        return self in (Mode.SHADOW, Mode.REFACTORED_PRIMARY)


ACCEPTED = ", ".join(f"{m.value} or {m.label}" for m in Mode)


def parse_mode(value: object, source: str = "mode") -> Mode:
    """A mode from its number or name; anything else names the accepted values."""
    text = str(value).strip().lower()
    for m in Mode:
        if text in (str(m.value), m.label):
            return m
    raise ParityError(f"{source}: invalid codec mode {value!r}; accepted: {ACCEPTED}")


def mode_from_env(default: Mode = Mode.SHADOW) -> Mode:
    raw = os.environ.get("CODEC_MODE")
    return default if raw is None or raw == "" else parse_mode(raw, "CODEC_MODE")

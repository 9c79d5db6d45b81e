"""The twin interface, and loading a twin (ours, a user's module or a file path).

A twin is any module or object with these callables (array signatures as in
``kernels.jit``), of which a run needs those of the functions it compares:

- ``hash_headers(headers) -> uint8[N, 32]``
- ``merkle_roots(ids, offsets) -> uint8[N, 32]``
- ``validate_blocks(headers, ids, id_offsets, numbers, num_offsets, targets, indices,
  idx_offsets, *, now, difficulty_target, parent, replay) -> uint32[N]``; ``parent`` is
  None, an anchor ``(height, hash, timestamp)``, or the parent's 276-byte header, which
  the twin hashes itself; ``replay`` comes from ``new_replay_state()``
- ``commitments(headers, numbers, num_offsets, targets, indices, idx_offsets) -> uint8[N, 32]``
- ``new_replay_state()``: an object with ``update(commitments)`` (32-byte values)

Optional: ``merkle_tree(txids)`` (levels, leaves first) to locate merkle mismatches.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from parity.errors import ParityError

DEFAULT_LEGACY = "kernels.legacy"
DEFAULT_REFACTORED = "kernels.jit"


@runtime_checkable
class ReplayState(Protocol):
    def update(self, commitments: Iterable[bytes]) -> Any: ...


class Twin(Protocol):
    """What the harness calls; see the module docstring for the signatures."""

    def hash_headers(self, headers: np.ndarray) -> np.ndarray: ...

    def merkle_roots(self, ids: np.ndarray, offsets: np.ndarray) -> np.ndarray: ...

    def validate_blocks(self, *arrays: np.ndarray, now: int, difficulty_target: bytes,
                        parent: Any, replay: ReplayState | None) -> np.ndarray: ...

    def commitments(self, *arrays: np.ndarray) -> np.ndarray: ...

    def new_replay_state(self) -> ReplayState: ...


def required(functions: Sequence[Any]) -> list[str]:
    """The twin attributes a run of these registry entries calls."""
    names = [f.attr for f in functions]
    if any(f.chain_state for f in functions):
        names.append("new_replay_state")
    return names


def _import(name: str, role: str) -> Any:
    path = Path(name)
    if name.endswith(".py") or path.is_file():
        if not path.is_file():
            raise ParityError(f"--{role} {name}: no such file")
        mod_name = f"parity_twin_{role}_{path.stem}"
        spec = importlib.util.spec_from_file_location(mod_name, path.resolve())
        if spec is None or spec.loader is None:
            raise ParityError(f"--{role} {name}: cannot load as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ParityError(f"--{role} {name}: failed to load ({type(exc).__name__}: "
                              f"{exc})") from None
        return module
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ParityError(f"--{role} {name}: cannot import ({exc})") from None


def check_twin(twin: Any, label: str, functions: Sequence[Any]) -> Any:
    """``twin`` if it has every callable ``functions`` need, else a usage error."""
    missing = [n for n in required(functions) if not callable(getattr(twin, n, None))]
    if missing:
        raise ParityError(f"{label}: not a twin for {', '.join(f.name for f in functions)}: "
                          f"missing {', '.join(missing)}")
    return twin


def load_twin(name: str, role: str, functions: Sequence[Any] | None = None) -> Any:
    """Import module ``name`` (or a ``.py`` file path) and check it is a twin."""
    from parity.functions import REGISTRY
    fns = list(REGISTRY.values()) if functions is None else functions
    return check_twin(_import(name, role), f"--{role} {name}", fns)

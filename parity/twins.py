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

Optional: ``merkle_tree(txids)`` (levels, leaves first) to locate merkle mismatches,
and ``PARITY_FUNCTIONS``, the compared functions it implements (``("header_hash",
"merkle_root")``); without it, those whose callables it has. A refactored twin may be
partial: a run compares what both twins implement and serves legacy for the rest.

``exec:COMMAND`` names a twin that runs as a process (:mod:`parity.proctwin`,
``twins/PROTOCOL.md``).
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
EXEC = "exec:"
#: why a function of a partial refactored twin runs on legacy alone
LEGACY_ONLY_REASON = "the refactored twin does not implement it"


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


def _import(name: str, role: str, timeout: float | None) -> Any:
    if name.startswith(EXEC):
        from parity.proctwin import DEFAULT_TIMEOUT, ProcessTwin
        return ProcessTwin(name[len(EXEC):], role, timeout or DEFAULT_TIMEOUT)
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


def declared(twin: Any, label: str) -> tuple[str, ...] | None:
    """The functions ``twin`` says it implements (``PARITY_FUNCTIONS``, for a process twin
    its ``hello``), or None when it says nothing; unknown names are a usage error."""
    from parity.functions import FUNCTIONS
    names = getattr(twin, "PARITY_FUNCTIONS", None)
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ParityError(f"{label}: PARITY_FUNCTIONS must be a sequence of function names")
    unknown = [n for n in names if n not in FUNCTIONS]
    if unknown:
        raise ParityError(f"{label}: declares unknown function(s) {', '.join(unknown)}; the "
                          f"compared functions are {', '.join(FUNCTIONS)}")
    return tuple(names)


def implements(twin: Any, fn: Any, names: tuple[str, ...] | None) -> bool:
    """Whether ``twin`` (declaring ``names``) implements registry entry ``fn``."""
    return (names is None or fn.name in names) and \
        all(callable(getattr(twin, n, None)) for n in required([fn]))


def check_twin(twin: Any, label: str, functions: Sequence[Any]) -> Any:
    """``twin`` if it implements every one of ``functions``, else a usage error."""
    names = declared(twin, label)
    undeclared = [f.name for f in functions if names is not None and f.name not in names]
    if undeclared:
        raise ParityError(f"{label}: does not implement {', '.join(undeclared)} (it implements "
                          f"{', '.join(names or ()) or 'nothing'})")
    missing = [n for n in required(functions) if not callable(getattr(twin, n, None))]
    if missing:
        raise ParityError(f"{label}: not a twin for {', '.join(f.name for f in functions)}: "
                          f"missing {', '.join(missing)}")
    return twin


def legacy_only(twin: Any, label: str, functions: Sequence[Any]) -> tuple[str, ...]:
    """The names of ``functions`` a (partial) refactored twin does not implement; a usage
    error when it implements none of them."""
    names = declared(twin, label)
    rest = tuple(f.name for f in functions if not implements(twin, f, names))
    if len(rest) == len(functions):
        has = list(names) if names is not None else \
            [n for n, f in _registry().items() if implements(twin, f, None)]
        raise ParityError(f"{label}: implements none of the requested functions "
                          f"({', '.join(rest)}); it implements {', '.join(has) or 'nothing'}")
    return rest


def _registry() -> dict[str, Any]:
    from parity.functions import REGISTRY
    return dict(REGISTRY)


def load_twin(name: str, role: str, functions: Sequence[Any] | None = None,
              timeout: float | None = None, partial: bool = False) -> Any:
    """Import module ``name`` (a ``.py`` file path, or ``exec:COMMAND``: a process twin
    with a per-request ``timeout``) and check it is a twin for ``functions``; with
    ``partial``, for at least one of them (see :func:`legacy_only`)."""
    fns = list(_registry().values()) if functions is None else functions
    twin = _import(name, role, timeout)
    try:
        if partial:
            legacy_only(twin, f"--{role} {name}", fns)
            return twin
        return check_twin(twin, f"--{role} {name}", fns)
    except BaseException:
        close_twin(twin)
        raise


def close_twin(twin: Any) -> None:
    """Stop ``twin``'s process if it runs as one (in-process twins have nothing to stop)."""
    from parity.proctwin import ProcessTwin
    if isinstance(twin, ProcessTwin):
        twin.close()

"""Load a twin module (ours or a user's) and check it exposes the twin interface.

A twin is any importable module with these callables (array signatures as in
``kernels.jit``): ``hash_headers(headers) -> uint8[N, 32]``,
``merkle_roots(ids, offsets) -> uint8[N, 32]``, ``validate_blocks(headers, ids,
id_offsets, numbers, num_offsets, targets, indices, idx_offsets, *, now,
difficulty_target, parent, replay) -> uint32[N]`` and ``new_replay_state()``
(an object with ``update(commitments)`` for 32-byte commitments). Optional:
``merkle_tree(txids)`` (levels, leaves first) to locate merkle mismatches.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from parity.errors import ParityError

REQUIRED = ("hash_headers", "merkle_roots", "validate_blocks", "new_replay_state")
DEFAULT_LEGACY = "kernels.legacy"
DEFAULT_REFACTORED = "kernels.jit"


def load_twin(name: str, role: str) -> ModuleType:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ParityError(f"--{role} {name}: cannot import ({exc})") from None
    missing = [n for n in REQUIRED if not callable(getattr(module, n, None))]
    if missing:
        raise ParityError(f"--{role} {name}: not a twin, missing {', '.join(missing)} "
                          f"(required: {', '.join(REQUIRED)})")
    return module

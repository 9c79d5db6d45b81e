"""JIT twin: numba kernels over numpy batches, 16 inputs per SIMD step.

The self-test in :mod:`kernels.jit._selftest` runs once per process before
any kernel result is returned; a failure raises ``JitSelfTestError``.
"""
from kernels.jit.header import (
    decode_header,
    decode_headers,
    encode_header,
    encode_headers,
    hash_header,
    hash_headers,
)
from kernels.jit.merkle import merkle_root, merkle_roots, merkle_tree
from kernels.jit.reveal import (
    check_solutions,
    commitment,
    commitments,
    problem_bytes,
    problem_hash,
    reveal_hashes,
    solution_bytes,
    solution_hash,
    solution_ok,
)
from kernels.jit.validate import (
    Block,
    Parent,
    new_replay_state,
    validate_block,
    validate_blocks,
    validate_chain,
)

NAME = "jit"

__all__ = [
    "Block", "NAME", "Parent", "check_solutions", "commitment", "commitments", "decode_header",
    "decode_headers", "encode_header", "encode_headers", "hash_header", "hash_headers",
    "merkle_root", "merkle_roots", "merkle_tree", "new_replay_state", "problem_bytes",
    "problem_hash", "reveal_hashes", "solution_bytes", "solution_hash", "solution_ok",
    "validate_block", "validate_blocks", "validate_chain",
]

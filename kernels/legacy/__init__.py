"""Legacy twin: per-object Python, checked line by line against SPEC.md."""
from kernels.legacy.header import (
    decode_header,
    decode_headers,
    encode_header,
    encode_headers,
    hash_header,
    hash_headers,
)
from kernels.legacy.merkle import merkle_root, merkle_roots, merkle_tree
from kernels.legacy.reveal import (
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
from kernels.legacy.validate import (
    Block,
    Parent,
    new_replay_state,
    validate_block,
    validate_blocks,
    validate_chain,
)

NAME = "legacy"

__all__ = [
    "Block", "NAME", "Parent", "check_solutions", "commitment", "commitments", "decode_header",
    "decode_headers", "encode_header", "encode_headers", "hash_header", "hash_headers",
    "merkle_root", "merkle_roots", "merkle_tree", "new_replay_state", "problem_bytes",
    "problem_hash", "reveal_hashes", "solution_bytes", "solution_hash", "solution_ok",
    "validate_block", "validate_blocks", "validate_chain",
]

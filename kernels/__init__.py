"""Twin implementations of the COINjecture v1 consensus kernels (SPEC.md).

``kernels.legacy`` is the readable reference; ``kernels.jit`` the numba twin.
Both expose the same public names; ``kernels.constants`` is all they share.
"""

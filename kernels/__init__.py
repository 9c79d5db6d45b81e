"""Twin implementations of the COINjecture v1 consensus kernels (SPEC.md).

``kernels.legacy`` is the readable reference; ``kernels.jit`` the numba twin.
Both expose the same public names. All they share is twin-neutral:
``kernels.constants`` (formats, rule bits, limits), ``kernels.config`` (numba
flags, JIT only) and ``kernels.checks`` (argument checks and CSR packing).
"""

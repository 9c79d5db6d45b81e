"""parity: dual-run parity validation of legacy vs refactored consensus kernels."""

__version__ = "0.1.0"

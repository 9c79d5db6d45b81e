"""parity: dual-run parity validation of legacy vs refactored consensus kernels."""

__version__ = "0.1.0"


def experiment(name, *, legacy, refactored, controller=None, comparator=None, sample=None):
    """Per-call experiment obeying the codec mode (see :mod:`parity.percall`)."""
    from parity.compare import values_equal
    from parity.percall import experiment as _experiment
    return _experiment(name, legacy=legacy, refactored=refactored, controller=controller,
                       comparator=comparator or values_equal, sample=sample)

"""Coverage-guided, structure-aware differential fuzzing of the twins (``parity fuzz``).

- :mod:`~parity.fuzz.inputs`: the byte format of an input (a base block and operations)
- :mod:`~parity.fuzz.decode`: an input -> a whole block in its chain context
- :mod:`~parity.fuzz.mutate`: the custom mutator (SPEC boundaries) and the seed inputs
- :mod:`~parity.fuzz.pool`: the base blocks, from seed corpora
- :mod:`~parity.fuzz.worker`: the child process libFuzzer (atheris) drives
- :mod:`~parity.fuzz.engine`: the parent: children under a budget, crashes, shrinking
- :mod:`~parity.fuzz.crashes`: shrinking a crash, each candidate in a fresh process
- :mod:`~parity.fuzz.save`: regression corpora, records and coverage corpora
"""

DEFAULT_TIMEOUT = 30  # seconds one input may take in both twins before it is a finding

"""Twins with one planted bug behind a narrow trigger (``parity fuzz`` tests and
``bench/fuzz_compare.py``); each is the JIT twin with one function wrapped."""

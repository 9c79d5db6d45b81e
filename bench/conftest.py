import os

SIZES = [int(s) for s in os.environ.get("PARITY_BENCH_SIZES", "1,1000,100000,1000000").split(",")]

# parity: `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MONITORING_TOOLS := prometheus promtool prometheus-alertmanager amtool prometheus-pushgateway
RUST_CRATES := librust-blake3-dev librust-bincode-dev librust-serde-dev librust-serde-derive-dev
CARGO_BUILD := cargo build --release --offline --locked --quiet

.DEFAULT_GOAL := help
.PHONY: help setup bytecode system-deps rust-twin lint test fuzz fuzz-smoke fuzz-props demo bench bench-ci clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench,dask,fuzz]'
	touch $(STAMP)

setup: $(STAMP) system-deps bytecode ## create the venv and install Python and Debian dependencies

# the package is installed editable, so pip compiles none of it; without .pyc files every
# parity process compiles its modules from source (~70 ms of each run's start when
# PYTHONDONTWRITEBYTECODE is set). compileall writes them even then, and only anew
bytecode: $(STAMP) ## byte-compile parity, kernels and bench
	@$(PY) -m compileall -q parity kernels bench

system-deps: ## install Debian's Prometheus, Alertmanager, Pushgateway and Chromium when missing
	@pkgs=""; for t in $(MONITORING_TOOLS); do command -v $$t >/dev/null || \
	  pkgs="prometheus prometheus-alertmanager prometheus-pushgateway"; done; \
	command -v chromium >/dev/null || pkgs="$$pkgs chromium"; \
	if [ -n "$$pkgs" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $$pkgs"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      $$pkgs >/dev/null; \
	    case "$$pkgs" in *prometheus*) for s in prometheus prometheus-alertmanager prometheus-pushgateway; do \
	      (service $$s stop || true) >/dev/null 2>&1; done;; esac; \
	  else echo "warning: missing $$pkgs and apt-get not usable; the server and browser tests will fail" >&2; fi; \
	fi

rust-twin: ## build twins/rust (and its planted-bug variant) offline from Debian's crates, installed when missing
	@missing=""; command -v cargo >/dev/null || missing="cargo rustc"; \
	for p in $(RUST_CRATES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
	  grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      $$missing >/dev/null; \
	  else echo "error: the Rust twin needs Debian's$$missing (apt-get install as root)" >&2; exit 1; fi; \
	fi
	cd twins/rust && $(CARGO_BUILD)
	cd twins/rust && $(CARGO_BUILD) --features planted-bug --target-dir target/planted

lint: setup ## ruff and mypy (configured in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: setup lint rust-twin ## lint, build the Rust twin, then run the whole test suite
	$(PY) -m pytest -q

FUZZ_TESTS := tests/test_twins_differential.py tests/test_blake3_jit.py tests/test_commitments.py \
	tests/test_parent_header.py
FUZZ_SECONDS ?= 300
fuzz: setup ## parity fuzz: the shipped twins, coverage-guided, FUZZ_SECONDS (300) into out/fuzz
	$(PY) -m parity fuzz --seconds $(FUZZ_SECONDS) --out out/fuzz --force

fuzz-smoke: setup ## CI: a 60-second parity fuzz run that must find nothing
	$(PY) -m parity fuzz --seconds 60 --out out/fuzz-smoke --force --quiet

fuzz-props: setup ## property tests with random inputs and 10x the examples (HYPOTHESIS_SCALE=N for more)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -p no:cacheprovider $(FUZZ_TESTS) \
	  --hypothesis-show-statistics

demo: setup ## shadow-run the built-in sample corpus and print the summary
	$(PY) -m parity shadow corpora/sample-valid --mode shadow --report out/demo-report.json --results out/demo-results.parquet --run-dir out/demo-run --force
	$(PY) -m parity shadow corpora/sample-faults --mode shadow --report out/demo-faults-report.json --run-dir out/demo-faults-run --force

bench: setup rust-twin ## full benchmark suite: JSON, Markdown table and PNG plots under bench/results
	$(PY) -m bench.run --out bench/results

bench-ci: setup ## CI speed gate: per-function floors, faulty-corpus validation, figures in bench/results/gate.json
	$(PY) -m bench.gate --json bench/results/gate.json

clean: ## remove the venv, caches and outputs
	rm -rf $(VENV) out .pytest_cache .hypothesis .benchmarks twins/rust/target
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

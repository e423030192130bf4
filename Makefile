# frontrun: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
MATURIN_FLAGS ?= --release

.PHONY: help venv dev demo test test-rs test-py lint fmt bench clean test-versions fuzz-tokens stubtest

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q "maturin>=1.7,<2" pytest pytest-timeout ruff mypy psycopg2-binary "psycopg[binary]>=3.1" "sqlalchemy>=2,<3" "django>=5,<6" "cachetools>=5" "greenlet>=3.1,<4"
	touch $@

venv: $(VENV)/.deps  ## create the virtualenv with build and test tools

dev: venv  ## build the native module into the virtualenv
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop -q $(MATURIN_FLAGS)

demo: dev  ## start a throwaway PostgreSQL and reproduce the seed's races
	$(VPY) examples/postgres_races.py
	$(VPY) examples/counter_race.py --workers 3

test-rs:  ## Rust unit and integration tests (all crates, the PyO3 crate included)
	cargo test -q --workspace

test-py: dev stubtest  ## pytest (starts its own PostgreSQL)
	$(VPY) -m pytest -q

stubtest: dev  ## the type stub python/frontrun/_native.pyi matches the built module
	$(VPY) -m mypy.stubtest --allowlist python/frontrun/_native.stubtest-allowlist frontrun._native

test: test-rs test-py  ## everything CI runs

lint:  ## rustfmt, clippy, ruff
	cargo fmt --all --check
	cargo clippy -q --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests examples bench
	$(VENV)/bin/ruff format --check python tests examples bench

fmt:  ## format Rust and Python sources
	cargo fmt --all
	$(VENV)/bin/ruff format python tests examples bench
	$(VENV)/bin/ruff check --fix -q python tests examples bench

PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
OTHER_PYTHONS ?= 3.10 3.12 3.13
# Version-sensitive suites: the tracers read interpreter internals that change per minor version.
VERSION_TESTS ?= tests/test_tracer_*.py tests/test_trace_markers.py tests/test_markers_errors.py \
	tests/test_dpor.py tests/test_explore.py tests/test_coop.py tests/test_realistic_bugs.py \
	tests/test_soundness_objects.py tests/test_substrate.py

test-versions:  ## tracer, marker and DPOR tests on CPython 3.10, 3.12 and 3.13 (one venv each)
	@set -e; for short in $(OTHER_PYTHONS); do \
	  v=$$(ls $(PYENV_ROOT)/versions | grep -E "^$${short//./\\.}\.[0-9]+$$" | sort -V | tail -1); \
	  if [ -z "$$v" ]; then echo "CPython $$short not found under $(PYENV_ROOT)/versions" >&2; exit 1; fi; \
	  echo "== CPython $$v =="; \
	  CARGO_TARGET_DIR=target/py$$short $(MAKE) -s dev PYTHON=$(PYENV_ROOT)/versions/$$v/bin/python3 VENV=.venv-$$short; \
	  .venv-$$short/bin/python -m pytest -q -p no:cacheprovider $(VERSION_TESTS); \
	done

bench: dev  ## run every benchmark and print ratios
	$(VPY) bench/run.py

clean:  ## remove build products and virtualenvs
	rm -rf target $(VENV) python/frontrun/_native*.so

fuzz-tokens:  ## decode a million random and mutated replay tokens (CI runs 10,000)
	cargo test -q --release -p frontrun-engine --lib token::tests::fuzz_1m_cases -- --ignored

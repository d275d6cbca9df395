# `make run` and `make test` do all set-up from a fresh clone; re-running skips what is done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
ARGS ?=

.PHONY: all setup test test-fast run lint bench clean

all: test

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v java >/dev/null 2>&1 || [ -x "$$JAVA_HOME/bin/java" ] || { \
	  echo "ERROR: Spark needs a Java runtime (17 or 21) and none was found."; \
	  echo "       Install one, e.g. 'sudo apt-get install openjdk-17-jre-headless' (Debian/Ubuntu)"; \
	  echo "       or 'brew install openjdk@17' (macOS), or set JAVA_HOME."; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: a bare `torch` requirement would pull the newest CUDA build (several GB).
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)" || $(PY) -m pip install -q "torch>=2.2"
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(ARGS)

run: $(STAMP)
	$(VENV)/bin/recsys run $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check recsys jobs tests benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/bench_delta_write.py

clean:
	rm -rf $(VENV) lakehouse .pytest_cache .mypy_cache .ruff_cache

# The two set-up commands are `make demo` and `make test`; each creates or refreshes .venv and
# installs everything it needs (system packages included, when running as root).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DATASETS ?= ../shared/datasets
PYTEST_ARGS ?=

.PHONY: setup test lint demo bench eval clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@if ! command -v promtool >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo ">> installing prometheus, redis-server (apt)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus redis-server >/dev/null; \
	  else echo ">> prometheus/promtool or redis-server missing and not root: PromQL / Redis tests will be skipped"; fi; \
	fi
	@if ! python3 -m venv --help >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; fi
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	@touch $@

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(STAMP) lint
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/tamo demo

bench: $(STAMP)
	$(PY) -m evals.bench --datasets $(DATASETS)

eval: $(STAMP)
	$(PY) -m evals.make_eval --datasets $(DATASETS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

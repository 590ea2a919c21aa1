# gluteflow — every target sets up what it needs (Python >= 3.11 and make are the only prerequisites).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: setup run test bench lint format browser clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP) ## create .venv and install gluteflow with its dependencies

# Debian's headless Chromium for the report-rendering test (skipped by nothing: installed here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

run: setup ## the whole chain on embedded defaults: broker, simulate, stream, daily, nightly, catalog, report
	$(BIN)/gluteflow run

test: setup browser ## the test suite (starts its own broker)
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: setup ## benchmarks: prints figures and ratios measured in one run
	$(BIN)/python -m pip install -q -e '.[bench]' || echo "gaitmap unavailable: gait comparison will be skipped"
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf data .pytest_cache .ruff_cache

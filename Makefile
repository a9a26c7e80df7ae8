# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck setup setup-dev browser emulators bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Runtime packages only: what `make run` needs.
$(VENV)/.runtime: $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# Test, lint and benchmark tools on top.
$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(VENV)/.runtime
setup-dev: $(VENV)/.dev browser emulators

.env:
	cp template.env .env

run: setup .env
	$(BIN)/tideflow run --host $(HOST) --port $(PORT)

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q --no-install-recommends chromium; }

# The BigQuery emulator needs its own venv (it pins an older DuckDB).
emulators:
	bash scripts/install-bqemulator.sh

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

test: setup-dev lint typecheck
	$(BIN)/pytest

bench: setup-dev
	$(BIN)/python bench/classifier.py
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) .venv-bqemulator .tideflow .pytest_cache .ruff_cache .mypy_cache

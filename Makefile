# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test fuzz lint typecheck setup setup-dev browser postgres emulators kubectl bench clean train demo-data

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
setup-dev: $(VENV)/.dev browser postgres emulators kubectl

.env:
	cp template.env .env

run: setup .env
	$(BIN)/tideflow run --host $(HOST) --port $(PORT)

# Train your own classes: make train DATA=path/to/class-folders-or.csv NAME=mymodel [ARGS=...]
# (then MODEL=models/$(NAME)/model.onnx in .env). `make demo-data` writes the digits demo set.
DATA ?= data/digits
NAME ?= digits
train: setup
	$(BIN)/python -m image_classification.train $(DATA) --out models/$(NAME) $(ARGS)

demo-data: setup-dev
	$(BIN)/python scripts/make_digits.py folders data/digits
	$(BIN)/python scripts/make_digits.py pairs data/digit-pairs --count 1000

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q --no-install-recommends chromium; }

# PostgreSQL 15's server binaries for the aws tests (they start a throwaway cluster; no service runs).
postgres:
	@test -x /usr/lib/postgresql/15/bin/initdb || { $(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q --no-install-recommends postgresql-15; }

# kubectl renders deploy/kubernetes with its built-in kustomize (tests/deploy); like the Pub/Sub
# emulator it comes from the Google Cloud CLI's Debian repository (preinstalled on CI).
kubectl:
	@command -v kubectl >/dev/null || { $(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q --no-install-recommends kubectl; }

# The BigQuery emulator needs its own venv (it pins an older DuckDB). Google's Pub/Sub
# emulator comes from the Cloud SDK's Debian package (Java 17); preinstalled on CI.
emulators:
	bash scripts/install-bqemulator.sh
	@dpkg -s google-cloud-cli-pubsub-emulator >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q --no-install-recommends google-cloud-cli-pubsub-emulator; }

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

test: setup-dev lint typecheck
	$(BIN)/pytest

# The attack run, longer than in `make test`: schemathesis (2,000 examples per operation,
# a fresh seed unless FUZZ_SEED is set), Hypothesis on image decoding (5,000 examples),
# and a 1,000-upload soak with 40 kill -9s. About 20-30 minutes on 2 cores.
fuzz: setup-dev
	FUZZ_LONG=1 $(BIN)/pytest -o timeout=3600 -s -m fuzz tests/app/test_fuzz_api.py \
		tests/model/test_fuzz_decode.py tests/app/test_soak.py

bench: setup-dev
	$(BIN)/python bench/classifier.py
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) .venv-bqemulator .tideflow .pytest_cache .ruff_cache .mypy_cache

# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test fuzz lint typecheck docs setup setup-dev browser postgres emulators kubectl containers \
	bench clean train demo-data image base-image

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The package with the extras `make run` needs: the core serves; `torch` exports the default
# model to ONNX at the first start (then it is cached). More: make setup EXTRAS=torch,gcp,aws
EXTRAS ?= torch
REQUIREMENTS := pyproject.toml $(wildcard requirements/*.txt)
$(VENV)/.setup-$(EXTRAS): $(BIN)/python $(REQUIREMENTS)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $@

# Every extra, with the test, lint and benchmark tools.
$(VENV)/.dev: $(BIN)/python $(REQUIREMENTS)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# A dev venv has every extra already.
setup: $(if $(wildcard $(VENV)/.dev),$(VENV)/.dev,$(VENV)/.setup-$(EXTRAS))
setup-dev: $(VENV)/.dev browser postgres emulators kubectl containers

.env:
	cp template.env .env

run: setup .env
	$(BIN)/tideflow run --host $(HOST) --port $(PORT)

# The serving image (Dockerfile; make image CONTAINER=docker|podman IMAGE=name:tag): the
# default model is exported to ONNX here, where torch is installed, and copied in; the image
# has no torch. Run `make base-image` first where no registry can be reached.
CONTAINER ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
IMAGE ?= image-classification:latest
image: setup
	bash scripts/build-image.sh $(CONTAINER) $(IMAGE)

# debian:bookworm-slim built with debootstrap and imported (no registry needed).
base-image:
	bash scripts/base-image.sh $(CONTAINER)

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

# Podman (with runc) and debootstrap for the container tests (tests/containers): they build the
# image and the base image, and run them. Like Debian's other packages here, from apt.
containers:
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null || \
		{ $(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q --no-install-recommends podman runc debootstrap; }

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

# The docs site (mkdocs.yml) into build/site/; strict: a broken link between pages fails it
# (not with --quiet, which hides the warnings strict mode counts). tests/docs checks the
# links README.md and docs/ make into the repository.
docs: $(VENV)/.dev
	$(BIN)/mkdocs build --strict

# Each test folder is one xdist group (tests/conftest.py): its session servers start once,
# on one worker, while the folders run side by side (most of their time is waiting on the
# app's processes and the emulators). TEST_WORKERS=0 runs them one after another.
TEST_WORKERS ?= 3
test: setup-dev lint typecheck docs
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

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
	rm -rf $(VENV) .venv-bqemulator .tideflow build .pytest_cache .ruff_cache .mypy_cache

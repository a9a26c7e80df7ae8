#!/usr/bin/env bash
# Build the serving image: scripts/build-image.sh [podman|docker] [IMAGE]. `make image` runs it;
# BUILD_OPTIONS are passed to the build (e.g. --no-cache).
# The default model is exported to ONNX with this checkout's Python (it needs the 'torch'
# extra) into build/image/models, which the Dockerfile copies: the image has no torch.
set -euo pipefail
cd "$(dirname "$0")/.."
container=${1:-docker}
image=${2:-image-classification:latest}
python=${PYTHON:-.venv/bin/python}
rm -rf build/image/models
mkdir -p build/image/models
export_path=$("$python" -m image_classification.model export --quiet)
# Readable by the image's user (the cache writes its files 0600).
install -m 644 "$export_path" build/image/models/
# Podman writes OCI images unless told: OCI's format has no HEALTHCHECK.
format=()
[ "$(basename "$container")" = podman ] && format=(--format docker)
# shellcheck disable=SC2086 # BUILD_OPTIONS is a list of options
"$container" build "${format[@]}" ${BUILD_OPTIONS:-} --tag "$image" .

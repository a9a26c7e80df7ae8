# The serving image: the app on ONNX Runtime with the local, gcp and aws stacks and the
# PostgreSQL warehouse; no torch, no CUDA. `make image` builds it: it first exports the default
# model to ONNX where torch is installed (build/image/models), which is copied in here.
#
#   docker run -p 8000:8000 -v tideflow:/data IMG            the local stack, state in /data
#   docker run --env-file .env IMG apply --yes               create a cloud stack's resources
#   docker run --env-file .env IMG run --only consumers      a consumer machine
#   docker run --env-file .env IMG run --only service        an HTTP machine
# Every `tideflow` command works the same way (status, dead-letters, query, export...).
ARG BASE=debian:bookworm-slim

# The pinned dependencies in a venv: rebuilt only when a pin changes.
FROM ${BASE} AS deps
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
# The system's CA store (with any local CA the base image carries) instead of pip's own.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
WORKDIR /src
ARG EXTRAS="gcp aws postgres"
COPY requirements/ requirements/
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        -r requirements/core.txt $(for extra in $EXTRAS; do echo "-r requirements/$extra.txt"; done)

# The app, installed into that venv under /opt/app (`--root`), to be its own small layer.
FROM deps AS app
COPY pyproject.toml README.md ./
COPY tideflow/ tideflow/
COPY image_classification/ image_classification/
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
        --no-compile --no-warn-script-location --root /opt/app .

# pip and setuptools only install: the image does without them.
FROM deps AS runtime-venv
RUN /opt/venv/bin/pip uninstall --yes --quiet pip setuptools

FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin tideflow \
    && install -d -m 700 -o tideflow -g tideflow /data
COPY --from=runtime-venv /opt/venv /opt/venv
# The ONNX export, found by its weights' hash as on any machine (TIDEFLOW_MODEL_CACHE).
COPY build/image/models/ /opt/tideflow/models/
# The app last: a code change adds only these small layers.
COPY --from=app /opt/app/ /
# Compiled where they run (bytecode records its path): the app's modules start compiled.
RUN /opt/venv/bin/python -m compileall -q /opt/venv/lib/python3*/site-packages/tideflow \
        /opt/venv/lib/python3*/site-packages/image_classification
COPY buildflow.yaml main.py /app/
# TIDEFLOW_HOST/PORT: `run --only consumers` (which replaces CMD) still listens for the probes.
ENV PATH=/opt/venv/bin:$PATH \
    TIDEFLOW_HOME=/data \
    TIDEFLOW_MODEL_CACHE=/opt/tideflow/models \
    TIDEFLOW_HOST=0.0.0.0 \
    TIDEFLOW_PORT=8000 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER tideflow
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['TIDEFLOW_PORT'], timeout=2)"]
ENTRYPOINT ["tideflow"]
CMD ["run", "--host", "0.0.0.0", "--port", "8000"]

#!/usr/bin/env bash
# Install the BigQuery emulator the gcp tests start: bqemulator in its own virtualenv.
#
# bqemulator pins duckdb 1.5.5 while the app uses duckdb 2.0, so it cannot share
# .venv. It loads DuckDB's spatial extension, which it would otherwise download at
# run time; the wheel duckdb-extension-spatial ships it, and DuckDB looks for it in
# ~/.duckdb/extensions/<version>/<platform>/. Safe to run again: every step checks
# first. Usage: scripts/install-bqemulator.sh [VENV_DIR]   (default .venv-bqemulator)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${1:-.venv-bqemulator}"
PYTHON="${PYTHON:-python3}"
BQEMULATOR_VERSION=1.4.0
DUCKDB_VERSION=1.5.5

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi

# installed NAME [VERSION]: is NAME (at VERSION, when given) in the virtualenv?
installed() {
    "$VENV/bin/python" -m pip show "$1" 2>/dev/null | grep -qx "Version: ${2:-.*}"
}

if ! installed bqemulator "$BQEMULATOR_VERSION" \
    || ! installed duckdb "$DUCKDB_VERSION" \
    || ! installed duckdb-extension-spatial "$DUCKDB_VERSION" \
    || ! installed numpy; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "bqemulator==$BQEMULATOR_VERSION" \
        "duckdb==$DUCKDB_VERSION" \
        "duckdb-extension-spatial==$DUCKDB_VERSION" \
        numpy
fi

# The platform directory name is DuckDB's own (linux_amd64, linux_arm64, osx_arm64...).
PLATFORM="$("$VENV/bin/python" -c 'import duckdb; print(duckdb.execute("PRAGMA platform").fetchone()[0])')"
TARGET="$HOME/.duckdb/extensions/v$DUCKDB_VERSION/$PLATFORM"
if [ ! -f "$TARGET/spatial.duckdb_extension" ]; then
    SOURCE="$(find "$VENV" -name spatial.duckdb_extension -print -quit)"
    if [ -z "$SOURCE" ]; then
        echo "install-bqemulator: spatial.duckdb_extension not found in $VENV" >&2
        exit 1
    fi
    mkdir -p "$TARGET"
    cp "$SOURCE" "$TARGET/spatial.duckdb_extension"
fi

echo "bqemulator $BQEMULATOR_VERSION ready in $VENV"

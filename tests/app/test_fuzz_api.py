"""Schemathesis against the app's own /openapi.json: no input may give a 5xx or a traceback.

Bounded and seeded in ``make test`` (a few thousand requests); ``make fuzz`` sets
``FUZZ_LONG=1`` for a longer run with another seed each time unless ``FUZZ_SEED`` is set.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TideflowProcess

pytestmark = [pytest.mark.slow, pytest.mark.fuzz]

LONG = os.environ.get("FUZZ_LONG") == "1"
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or (2000 if LONG else 200))
SEED = int(os.environ.get("FUZZ_SEED") or (int.from_bytes(os.urandom(4)) if LONG else 20261122))
_SCHEMATHESIS = Path(sys.executable).with_name("st")


def test_no_input_makes_a_server_error(shared_app: TideflowProcess, tmp_path: Path) -> None:
    log_start = len(shared_app.log())
    report = tmp_path / "report"
    command = [
        str(_SCHEMATHESIS),
        "run",
        f"{shared_app.base_url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        # One worker: with two, Hypothesis sometimes crashed inside schemathesis with
        # "SystemError: AST constructor recursion depth mismatch" (ast.parse racing in two
        # threads on CPython 3.11), failing the test without a single 5xx.
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--no-color",
        "--report",
        "ndjson",
        "--report-dir",
        str(report),
        # Hypothesis keeps found examples between runs; a test run must not depend on them.
        "--generation-database",
        ":memory:",
    ]
    # In tmp_path: schemathesis keeps a cache folder in its working directory.
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path
    )
    output = done.stdout + done.stderr
    server_log = shared_app.log()[log_start:]
    requests = sum(1 for _ in _ndjson_requests(report))
    print(f"schemathesis seed {SEED}: {requests} requests")
    assert done.returncode == 0, f"seed {SEED}\n{output[-6000:]}"
    assert "Traceback" not in server_log, server_log[-6000:]
    assert not re.search(r"Exception in ASGI|Internal Server Error", server_log), server_log[-6000:]
    assert requests >= (MAX_EXAMPLES if LONG else 1000), output[-3000:]


def _ndjson_requests(report: Path) -> list[str]:
    found = []
    for path in report.glob("*.ndjson"):
        for line in path.read_text(errors="replace").splitlines():
            found.extend(re.findall(r'"request":\s*\{', line))
    return found

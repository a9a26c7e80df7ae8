"""What the walkthrough tests share."""

from __future__ import annotations

import time

import httpx

from tests.conftest import TideflowProcess


def results_page(app: TideflowProcess, name: str, *, timeout: float = 90) -> str:
    """The walkthrough's results page once it lists ``name``, reloaded as a user would.

    The page answers 500 while its table is empty (as on BuildFlow); on the local stack each
    of its DuckDB connections holds the file while the consumer wants to write its row.
    """
    deadline = time.monotonic() + timeout
    page = ""
    while time.monotonic() < deadline:
        response = httpx.get(f"{app.base_url}/image-upload-results", timeout=30)
        page = response.text
        if response.status_code == 200 and name in page:
            return page
        time.sleep(0.3)
    raise AssertionError(f"{name} not on the results page after {timeout}s:\n{page}\n{app.log()}")

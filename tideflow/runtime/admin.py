"""A private HTTP API on a Unix socket, so CLI commands can read through the running app.

DuckDB lets one process open its file; while ``tideflow run`` holds it,
``tideflow query`` sends its query here instead, and ``tideflow status`` asks for its
counts here without importing the flow. The socket lives in the stack's state
directory (or a short temp path when that is too long for a socket name).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, HTTPException
from fastapi.encoders import jsonable_encoder

from tideflow.exceptions import TideflowError
from tideflow.io.failures import FailureLog, retry_dead_letters
from tideflow.io.strategies import DeadLetterQueue, ItemFilter, TableReader
from tideflow.runtime.status import StatusRow

_MAX_SOCKET_PATH = 100


def socket_path(home: Path) -> Path:
    path = home / "admin.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"tideflow-{digest}.sock"


def admin_app(
    reader: TableReader,
    *,
    failures: FailureLog,
    dead_letters: DeadLetterQueue,
    status: Callable[[], list[StatusRow]],
) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/status")
    def consumers_status() -> Any:
        try:
            return {"consumers": status()}
        except TideflowError as exc:
            raise HTTPException(400, str(exc)) from exc

    @app.post("/dead-letters/retry")
    def retry(ids: list[str] | None = Body(None, embed=True)) -> Any:
        try:
            return {"retried": retry_dead_letters(dead_letters, failures, ids)}
        except TideflowError as exc:
            raise HTTPException(400, str(exc)) from exc

    @app.post("/query")
    def query(sql: str = Body(...), params: dict[str, Any] | None = Body(None)) -> Any:
        try:
            return jsonable_encoder(reader.query(sql, params))
        except TideflowError as exc:
            raise HTTPException(400, str(exc)) from exc

    @app.post("/select")
    def select(
        item: dict[str, Any] | None = Body(None),
        order_by: str | None = Body(None),
        limit: int = Body(20),
        offset: int = Body(0),
    ) -> Any:
        try:
            result = reader.select(
                item=ItemFilter(**item) if item else None,
                order_by=order_by,
                limit=limit,
                offset=offset,
            )
        except TideflowError as exc:
            raise HTTPException(400, str(exc)) from exc
        return jsonable_encoder(result)

    @app.post("/export")
    def export(
        path: str = Body(...),
        format: str = Body("csv"),
        item: dict[str, Any] | None = Body(None),
        order_by: str | None = Body(None),
    ) -> Any:
        try:
            rows = reader.export(
                Path(path),
                format,
                item=ItemFilter(**item) if item else None,
                order_by=order_by,
            )
        except TideflowError as exc:
            raise HTTPException(400, str(exc)) from exc
        return {"rows": rows}

    return app

"""The admin socket's protocol: a ``RemoteAccess`` answers as the ``LocalAccess`` it
speaks to, values and errors alike, over a real Uvicorn server on a Unix socket."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tideflow import Flow, consumer, infra
from tideflow.exceptions import ConfigError, InvalidQueryError
from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
from tideflow.io.local import LocalBucket, LocalFileChangeStream
from tideflow.io.strategies import ItemFilter
from tideflow.runtime import wire
from tideflow.runtime.access import LocalAccess
from tideflow.runtime.admin import OwnerOnlyH11Protocol, admin_app, bind_owner_only
from tideflow.runtime.admin_client import AdminClient, RemoteAccess
from tideflow.types import DeadLetter, FileChangeEvent, QueryResult
from tideflow.types.local import LocalFileChangeEvent


@dataclasses.dataclass
class Tag:
    name: str
    score: float


@dataclasses.dataclass
class Row:
    key: str
    at: datetime.datetime
    tags: list[Tag]
    data: bytes


def test_values_cross_the_wire_as_they_left() -> None:
    when = datetime.datetime(2026, 11, 22, 10, 5, 1, 123456, tzinfo=datetime.UTC)
    event = LocalFileChangeEvent(
        file_path="a b.txt", bucket="files", version="3", size=5, event_time=when
    )
    sent = {
        "scalars": [
            when,
            when.date(),
            when.timetz(),
            datetime.timedelta(days=2, microseconds=7),
            decimal.Decimal("1.10"),
            uuid.UUID(int=7),
            b"\x00\xff",
            Path("/tmp/x.csv"),
            math.inf,
            -math.inf,
            None,
            True,
            3,
            0.5,
            "text",
        ],
        "tagged": {"$type": "a column named so", "$value": 1},
        "filter": ItemFilter("tags", "name", "b", contains=True),
        "result": QueryResult(["k", "t"], [("a", when)], truncated=True),
        "letter": DeadLetter(id="9", event=event, attempts=2, error="boom", dead_at=when),
    }
    received = wire.decode(json.loads(json.dumps(wire.encode(sent), allow_nan=False)))
    assert received["scalars"] == sent["scalars"]
    assert received["tagged"] == sent["tagged"]
    assert received["filter"] == sent["filter"]
    assert received["result"] == sent["result"]
    letter = received["letter"]
    # A provider's event travels as the portable one, without its bucket reader.
    assert type(letter.event) is FileChangeEvent
    assert letter.event.event_id == event.event_id and letter.dead_at == when
    nan = wire.decode(json.loads(json.dumps(wire.encode(math.nan))))
    assert math.isnan(nan)
    with pytest.raises(TypeError, match="cannot send a object"):
        wire.encode(object())


@pytest.fixture
def flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flow]:
    monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path))
    dataset = DuckDBDataset("warehouse.duckdb")
    table = DuckDBTable(dataset, "rows").options(schema=Row)
    stream = LocalFileChangeStream(LocalBucket("files"))

    @consumer(source=stream, sink=table)
    def keep(event: LocalFileChangeEvent) -> Row:
        raise NotImplementedError  # never run: the rows are written below

    flow = Flow()
    flow.add_consumer(keep)
    infra.apply(flow)
    at = datetime.datetime(2026, 11, 22, 10, 0, tzinfo=datetime.UTC)
    table.sink().write(
        [
            ("1", Row("one", at, [Tag("a", 0.5), Tag("b", 0.25)], b"\x01")),
            ("2", Row("two", at + datetime.timedelta(minutes=1), [Tag("c", 1.0)], b"")),
        ]
    )
    yield flow
    infra.destroy(flow)


@pytest.fixture
def remote(flow: Flow, tmp_path: Path) -> Iterator[RemoteAccess]:
    """The flow's ``LocalAccess`` served as the run serves it, and a client of it."""
    path = tmp_path / "admin.sock"
    config = uvicorn.Config(
        admin_app(LocalAccess(flow)), log_level="warning", http=OwnerOnlyH11Protocol
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [bind_owner_only(path)]}, daemon=True
    )
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.02)
    yield RemoteAccess(AdminClient(path))
    server.should_exit = True
    thread.join(10)


def test_remote_reads_equal_local_ones(flow: Flow, remote: RemoteAccess, tmp_path: Path) -> None:
    local = LocalAccess(flow)
    for access in (local, remote):
        assert access.table("rows").count(item=ItemFilter("tags", "name", "B")) == 1
    newest = {"order_by": "at", "limit": 5}
    assert remote.table("rows").select(**newest) == local.table("rows").select(**newest)
    found = remote.table("rows").select(**newest)
    assert isinstance(found.rows[0], tuple) and isinstance(found.rows[0][1], datetime.datetime)
    assert found.rows[1][2] == [{"name": "a", "score": 0.5}, {"name": "b", "score": 0.25}]
    assert found.rows[1][3] == b"\x01"
    sql = "SELECT key FROM {table} WHERE key = $key"
    assert remote.table("rows").query(sql, {"key": "two"}).rows == [("two",)]
    assert remote.table("rows").dialect.name == local.table("rows").dialect.name == "duckdb"
    capped = remote.table("rows").user_query("SELECT * FROM {table}", max_rows=1)
    assert capped.truncated and len(capped.rows) == 1
    assert remote.status() == local.status() == [("keep", 0, 0, 0, 0)]
    assert remote.dead_letters("keep").list() == [] and remote.dead_letters("keep").count() == 0

    out = tmp_path / "rows.jsonl"
    assert remote.table("rows").export(out, "jsonl", order_by="at") == 2
    assert [json.loads(line)["key"] for line in out.read_text().splitlines()] == ["two", "one"]


def test_remote_errors_are_the_local_ones(remote: RemoteAccess, tmp_path: Path) -> None:
    with pytest.raises(InvalidQueryError, match="DROP statements are not run"):
        remote.table("rows").user_query("DROP TABLE {table}", allow_writes=True)
    with pytest.raises(InvalidQueryError, match="limit must be between 0 and 10000"):
        remote.table("rows").select(limit=10**6)
    with pytest.raises(ConfigError, match="no table named 'nope'; its tables: rows, rows_failures"):
        remote.table("nope").count()
    with pytest.raises(ConfigError, match="no consumer named 'gone'"):
        remote.dead_letters("gone").count()
    with pytest.raises(ConfigError, match=f"cannot export to {tmp_path}: it is a folder"):
        remote.table("rows").export(tmp_path, "csv")
    with pytest.raises(ConfigError, match="no table call 'drop'"):
        remote.client.call("/tables/rows/drop", {})

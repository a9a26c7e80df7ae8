"""PostgresTable against a real PostgreSQL 15 (a throwaway cluster per session)."""

from __future__ import annotations

import dataclasses
import datetime
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import duckdb
import psycopg
import pytest

from tests.aws.conftest import PostgresCluster
from tideflow.exceptions import (
    ConfigError,
    InvalidQueryError,
    PrimitiveError,
    ReadError,
    RowError,
    SinkUnavailableError,
)
from tideflow.io.postgres import PostgresDatabase, PostgresTable
from tideflow.io.primitive import PlanAction
from tideflow.io.strategies import ItemFilter
from tideflow.types import Failure, FileChangeEvent

NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class Label:
    label: str
    confidence: float


@dataclasses.dataclass(frozen=True)
class Row:
    image_id: str
    upload: datetime.datetime
    labels: list[Label]
    tags: list[str]
    width: int
    note: str | None = None


@dataclasses.dataclass(frozen=True)
class RowV2(Row):
    height: int | None = None


def _row(i: int, label: str = "tabby", confidence: float = 0.9) -> Row:
    return Row(
        image_id=f"img-{i}",
        upload=NOW + datetime.timedelta(minutes=i),
        labels=[Label(label, confidence), Label("other", 0.05)],
        tags=["a", "b"],
        width=i,
    )


@pytest.fixture
def table(postgres_url: str) -> PostgresTable:
    return PostgresTable(PostgresDatabase(postgres_url), "images").options(schema=Row)


def test_plan_apply_twice_add_column_destroy(table: PostgresTable) -> None:
    assert table.database.plan().action is PlanAction.NO_CHANGE
    assert table.plan().action is PlanAction.CREATE
    assert table.apply().action is PlanAction.CREATE
    assert table.apply().action is PlanAction.NO_CHANGE
    table.sink().write([("r1", _row(1))])
    grown = PostgresTable(table.database, "images").options(schema=RowV2)
    step = grown.plan()
    assert step.action is PlanAction.UPDATE and "height" in step.detail
    grown.apply()
    assert grown.plan().action is PlanAction.NO_CHANGE
    assert grown.reader().select().records()[0]["height"] is None
    assert table.plan_destroy().action is PlanAction.DELETE
    table.destroy()
    assert table.plan().action is PlanAction.CREATE
    assert table.destroy().action is PlanAction.NO_CHANGE


def test_idempotent_writes_and_reads(table: PostgresTable) -> None:
    table.apply()
    sink = table.sink()
    sink.write([(f"r{i}", _row(i)) for i in range(5)])
    sink.write([(f"r{i}", _row(i)) for i in range(3, 8)])  # a redelivered batch overlaps
    reader = table.reader()
    assert reader.count() == 8
    rows = reader.select(order_by="upload", limit=3).records()
    assert [r["image_id"] for r in rows] == ["img-7", "img-6", "img-5"]
    assert "_tideflow_row_id" not in rows[0]
    assert rows[0]["labels"][0] == {"label": "tabby", "confidence": 0.9}
    assert rows[0]["tags"] == ["a", "b"]
    assert rows[0]["upload"] == NOW + datetime.timedelta(minutes=7)
    assert reader.select(where={"image_id": "img-2"}).records()[0]["width"] == 2
    assert reader.select(order_by="upload", limit=2, offset=6).records()[-1]["image_id"] == "img-0"
    sink.write([("cat", _row(100, "Persian_cat", 0.3))])
    item = ItemFilter(column="labels", field="label", value="persian_CAT")
    assert reader.count(item=item) == 1
    strong = ItemFilter("labels", "label", "persian_cat", score_field="confidence", min_score=0.5)
    assert reader.count(item=strong) == 0
    assert reader.select(item=ItemFilter("labels", "label", "tabby")).records()
    result = reader.query("SELECT COUNT(*) AS n FROM {table} WHERE width >= $w", {"w": 5})
    assert result.records() == [{"n": 4}]
    assert reader.query("SELECT '100%' AS p").rows == [("100%",)]
    with pytest.raises(ReadError):
        reader.query("SELECT nope FROM {table}")


def test_concurrent_writers_keep_one_row_per_id(table: PostgresTable) -> None:
    table.apply()
    sinks = [table.sink() for _ in range(4)]
    ids = [f"r{i}" for i in range(60)]

    def write(sink_index: int) -> None:
        for start in range(0, 60, 6):
            sinks[sink_index].write([(i, _row(int(i[1:]))) for i in ids[start : start + 6]])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert table.reader().count() == 60


def test_a_refused_row_fails_alone(table: PostgresTable) -> None:
    table.apply()
    bad = dataclasses.replace(_row(2), image_id="nul\x00byte")  # text cannot hold NUL
    with pytest.raises(RowError) as caught:
        table.sink().write([("ok1", _row(1)), ("bad", bad), ("ok3", _row(3))])
    assert set(caught.value.rejected) == {"bad"}
    assert table.reader().count() == 2


def test_failure_log_beside_the_table(table: PostgresTable) -> None:
    table.apply()
    table.failure_table.apply()
    log = table.failure_log()
    event = FileChangeEvent(
        file_path="uploads/x.jpg", bucket="b", version="abc", size=3, event_time=NOW
    )
    failure = log.record(event, error="not an image", attempts=1)
    assert isinstance(failure, Failure)
    found = log.for_object("b", "uploads/x.jpg")
    assert found is not None and found.error == "not an image" and found.version == "abc"
    assert log.count() == 1
    assert [f.event_id for f in log.list(limit=10)] == [event.event_id]
    log.clear([found])
    assert log.for_object("b", "uploads/x.jpg") is None
    assert log.count() == 0
    log.record(event, error="still not an image", attempts=1)  # retried, failed again
    assert log.count() == 1 and len(log.list(limit=10)) == 1


def test_user_query_reads_in_a_read_only_transaction_and_caps_rows(
    table: PostgresTable,
) -> None:
    table.apply()
    table.sink().write([(f"id-{i}", _row(i)) for i in range(20)])
    reader = table.reader()
    # A read streams from a server-side cursor and stops at the cap.
    capped = reader.user_query(
        "SELECT image_id, width % 7 AS w FROM {table} ORDER BY width", max_rows=5
    )
    assert capped.columns == ["image_id", "w"] and capped.truncated
    assert capped.rows == [(f"img-{i}", i % 7) for i in range(5)]
    # Reads that would write or lock pass the statement check; the server refuses them.
    with pytest.raises(ReadError, match="cannot execute SELECT FOR UPDATE in a read-only"):
        reader.user_query("SELECT image_id FROM {table} FOR UPDATE")
    with pytest.raises(ReadError, match="must not contain data-modifying statements"):
        reader.user_query("WITH gone AS (DELETE FROM {table} RETURNING 1) SELECT * FROM gone")
    with pytest.raises(InvalidQueryError, match="DROP statements are not run"):
        reader.user_query("DROP TABLE {table}", allow_writes=True)
    changed = reader.user_query("DELETE FROM {table} WHERE width < 3", allow_writes=True)
    assert changed.rows == [(3,)]
    assert reader.count() == 17


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_pages_through_the_table(table: PostgresTable, tmp_path: Path, fmt: str) -> None:
    table.apply()
    table.sink().write([(f"id-{i}", _row(i)) for i in range(12)])
    out = tmp_path / f"rows.{fmt}"
    out.write_text("an older export")

    assert table.reader().export(out, fmt, order_by="upload") == 12

    reader = {"csv": "read_csv", "jsonl": "read_json_auto", "parquet": "read_parquet"}[fmt]
    found = duckdb.execute(f"SELECT image_id FROM {reader}($p)", {"p": str(out)}).fetchall()
    assert [r[0] for r in found] == [f"img-{i}" for i in range(11, -1, -1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no partial file left
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="it is a FIFO; an export writes a regular file"):
        table.reader().export(fifo, fmt)


def test_settings_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTGRES_URL", raising=False)
    with pytest.raises(ConfigError, match="POSTGRES_URL"):
        PostgresDatabase()
    with pytest.raises(ConfigError, match="postgresql://"):
        PostgresDatabase("mysql://x")
    db = PostgresDatabase("postgresql://u:secret@127.0.0.1:1/db")
    assert "secret" not in db.primitive_id()
    # libpq also takes passwords as parameters of the URL's query string.
    db = PostgresDatabase("postgresql://u@h/db?sslmode=require&password=s3cret&sslpassword=k")
    assert db.primitive_id() == (
        "postgres-database:postgresql://u@h/db?sslmode=require&password=***&sslpassword=***"
    )


def _as_superuser(url: str, sql: str) -> None:
    """Run ``sql`` in the cluster's ``postgres`` database (autocommit)."""
    base = url.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres?sslmode=disable", autocommit=True) as conn:
        conn.execute(sql)


def test_missing_grants_and_tables_are_waited_out_not_refused_rows(
    table: PostgresTable, postgres_url: str
) -> None:
    table.apply()
    role = f"r_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        # The main table only: the item index's side table is missing from the grant.
        conn.execute(f"GRANT SELECT, INSERT ON images TO {role}")
    limited = PostgresTable(
        PostgresDatabase(postgres_url.replace("postgres@", f"{role}@")), "images"
    ).options(schema=Row)
    with pytest.raises(SinkUnavailableError, match="permission denied") as caught:
        limited.sink().write([("r1", _row(1)), ("r2", _row(2))])
    assert not isinstance(caught.value, RowError)  # nothing is dead-lettered for it
    assert table.reader().count() == 0
    table.destroy()
    with pytest.raises(SinkUnavailableError, match="does not exist"):
        table.sink().write([("r1", _row(1))])


def test_a_number_too_big_for_its_column_is_still_a_refused_row(table: PostgresTable) -> None:
    table.apply()
    huge = dataclasses.replace(_row(2), width=2**70)  # bigint: SQLSTATE 42804 for that row
    with pytest.raises(RowError) as caught:
        table.sink().write([("ok1", _row(1)), ("huge", huge)])
    assert set(caught.value.rejected) == {"huge"}
    assert table.reader().count() == 1


def test_a_read_only_server_is_waited_out(table: PostgresTable, postgres_url: str) -> None:
    """What a writer demoted in an RDS/Aurora failover answers (25006), made with the real
    server's setting for new sessions."""
    table.apply()
    name = postgres_url.rsplit("/", 1)[1].split("?")[0]
    _as_superuser(postgres_url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    try:
        fresh = PostgresTable(PostgresDatabase(postgres_url), "images").options(schema=Row)
        with pytest.raises(SinkUnavailableError, match="read-only transaction"):
            fresh.sink().write([("r1", _row(1))])
    finally:
        _as_superuser(postgres_url, f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
    fresh = PostgresTable(PostgresDatabase(postgres_url), "images").options(schema=Row)
    fresh.sink().write([("r1", _row(1))])
    assert fresh.reader().count() == 1


def test_connections_keep_alive_and_time_out(postgres_url: str) -> None:
    with PostgresDatabase(postgres_url).connection() as conn:
        parameters = conn.info.get_parameters()
        assert parameters["keepalives_idle"] == "30" and parameters["keepalives_count"] == "3"
        assert parameters["tcp_user_timeout"] == "60000"
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1min",)
        assert conn.execute("SHOW lock_timeout").fetchone() == ("10s",)
    # The URL's own options win.
    own = f"{postgres_url}&options=-c%20statement_timeout%3D5s"
    with PostgresDatabase(own).connection() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
        assert conn.execute("SHOW lock_timeout").fetchone() == ("10s",)


def test_a_write_stuck_behind_a_lock_times_out_and_is_retried(
    table: PostgresTable, postgres_url: str
) -> None:
    table.apply()
    quick = PostgresTable(
        PostgresDatabase(f"{postgres_url}&options=-c%20lock_timeout%3D1s"), "images"
    ).options(schema=Row)
    with psycopg.connect(postgres_url) as holder:
        holder.execute("LOCK TABLE images IN ACCESS EXCLUSIVE MODE")  # as an ALTER TABLE does
        began = time.monotonic()
        with pytest.raises(SinkUnavailableError, match="lock timeout"):
            quick.sink().write([("r1", _row(1))])
        assert time.monotonic() - began < 5
    quick.sink().write([("r1", _row(1))])
    assert quick.reader().count() == 1


def test_tls_is_verified_unless_the_url_says_otherwise(
    postgres_cluster: PostgresCluster,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    # Whatever ~/.postgresql/root.crt holds on this machine: no CA unless the URL names one.
    monkeypatch.setenv("PGSSLROOTCERT", str(tmp_path / "none.crt"))
    default = postgres_url.replace("?sslmode=disable", "")
    with pytest.raises(ConfigError, match="sslrootcert=") as caught:
        PostgresDatabase(default).plan()
    assert "no CA certificate" in str(caught.value)
    # The cluster's certificate is for 127.0.0.1, signed by the session's CA: verified.
    verified = PostgresDatabase(f"{default}?sslrootcert={postgres_cluster.ca_file}")
    with verified.connection() as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.info.get_parameters()["sslmode"] == "verify-full"
    # Signed by another CA: refused, not used unverified.
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "other.key", "-out", "other.crt", "-days", "1", "-subj", "/CN=x"],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    stranger = PostgresDatabase(f"{default}?sslrootcert={tmp_path / 'other.crt'}")
    with pytest.raises(PrimitiveError, match="certificate verify failed"):
        stranger.plan()


def test_a_read_on_a_connection_cut_while_idle_is_sent_again(
    table: PostgresTable, postgres_url: str
) -> None:
    table.apply()
    reader = table.reader()
    assert reader.count() == 0  # a pooled connection now waits, idle
    name = postgres_url.rsplit("/", 1)[1].split("?")[0]
    _as_superuser(  # as a restart or a failover does
        postgres_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )
    assert reader.count() == 0

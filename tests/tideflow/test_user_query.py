"""``TableReader.user_query``: someone's own SQL is one read (or, when allowed, one row
change), never a schema change, with no file access and a row cap; on a real DuckDB file.
The same through ``tideflow query`` and the running app: tests/app/test_query_limits.py."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest

from tideflow.exceptions import InvalidQueryError, ReadError
from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
from tideflow.io.sql import check_user_sql, statement_keywords


@dataclasses.dataclass
class Row:
    name: str


@pytest.fixture(params=[True, False], ids=["shared connection", "brief connections"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> DuckDBTable:
    dataset = DuckDBDataset(tmp_path / "warehouse.duckdb", keep_open=request.param)
    created = DuckDBTable(dataset, "rows").options(schema=Row)
    dataset.apply()
    created.apply()
    created.sink().write([(f"id-{n}", Row(f"row-{n}")) for n in range(30)])
    return created


@pytest.mark.parametrize(
    ("sql", "keywords"),
    [
        ("SELECT 1", ["SELECT"]),
        ("  ((SELECT 1)) UNION (SELECT 2);", ["SELECT"]),
        ("with x as (select 1) select * from x", ["WITH"]),
        ("SELECT 1; DROP TABLE t", ["SELECT", "DROP"]),
        ("SELECT ';DROP TABLE t' AS a, \"b;c\" FROM t", ["SELECT"]),
        ("-- a comment; DROP\nSELECT 1 /* ; DROP */", ["SELECT"]),
        # A dollar-quoted string may hold a quote: what follows it is still seen.
        ("SELECT $$ it's $$; DROP TABLE t", ["SELECT", "DROP"]),
        ("SELECT $x$ ; $x$", ["SELECT"]),
        # Not a comment outside BigQuery (PostgreSQL's XOR): the DROP is a statement.
        ("SELECT 1 # 2; DROP TABLE t", ["SELECT", "DROP"]),
        (";;", []),
    ],
)
def test_statement_keywords_see_through_quotes_and_comments(sql: str, keywords: list[str]) -> None:
    assert statement_keywords(sql) == keywords


def test_hash_comments_only_where_the_dialect_has_them() -> None:
    assert statement_keywords("SELECT 1 # ; DROP TABLE t", hash_comments=True) == ["SELECT"]


@pytest.mark.parametrize("sql", ["SELECT 'open", 'SELECT "open', "SELECT 1 /* open", "SELECT $$"])
def test_an_unclosed_quote_or_comment_is_refused(sql: str) -> None:
    with pytest.raises(InvalidQueryError, match="unclosed"):
        check_user_sql(sql, allow_writes=True)


@pytest.mark.parametrize(
    ("sql", "allow_writes", "refusal"),
    [
        ("DELETE FROM t", False, "`tideflow query --write` runs INSERT, UPDATE and DELETE"),
        ("UPDATE t SET a = 1", False, "read-only"),
        ("DROP TABLE t", True, "DROP statements are not run"),
        ("ALTER TABLE t ADD COLUMN b INT", True, "ALTER statements are not run"),
        ("CREATE TABLE u AS SELECT 1", True, "CREATE statements"),
        ("TRUNCATE t", True, "TRUNCATE statements"),
        ("COPY t TO '/tmp/t.csv'", True, "COPY statements"),
        ("ATTACH '/tmp/other.duckdb'", True, "ATTACH statements"),
        ("SET threads = 1", True, "SET statements"),
        ("SELECT 1; SELECT 2", True, "one SQL statement, not 2"),
        ("  -- nothing\n", False, "empty"),
    ],
)
def test_what_is_refused(sql: str, allow_writes: bool, refusal: str) -> None:
    with pytest.raises(InvalidQueryError, match=refusal.replace("(", r"\(")):
        check_user_sql(sql, allow_writes=allow_writes)


def test_reads_are_capped_and_say_so(table: DuckDBTable) -> None:
    reader = table.reader()
    capped = reader.user_query("SELECT name FROM {table} ORDER BY name", max_rows=10)
    assert len(capped.rows) == 10 and capped.truncated
    assert capped.rows[0] == ("row-0",)
    whole = reader.user_query("SELECT name FROM {table}", max_rows=30)
    assert len(whole.rows) == 30 and not whole.truncated
    for bad in (0, 100_001):
        with pytest.raises(InvalidQueryError, match="max rows must be between 1 and 100,000"):
            reader.user_query("SELECT 1", max_rows=bad)


def test_a_write_runs_only_when_allowed(table: DuckDBTable) -> None:
    reader = table.reader()
    changed = reader.user_query("DELETE FROM {table} WHERE name = 'row-1'", allow_writes=True)
    assert changed.rows == [(1,)]
    assert reader.count() == 29


def test_a_read_runs_in_a_read_only_transaction(table: DuckDBTable) -> None:
    # The second lock, for a write the statement check would let through as a read.
    with pytest.raises(ReadError, match="read-only"):
        table.reader()._user_query("DELETE FROM {table}", read_only=True, max_rows=5)
    assert table.reader().count() == 30


FILE_READS = {
    "SELECT * FROM read_text('/etc/hostname')": "disabled by configuration",
    "SELECT * FROM read_csv('/etc/passwd', header = false, sep = ':')": "disabled",
    "SELECT * FROM glob('/*')": "disabled by configuration",
    # No replacement scan either: a file name is not a table.
    "SELECT * FROM '/etc/passwd'": "Table with name /etc/passwd does not exist",
}


@pytest.mark.parametrize("sql", FILE_READS)
def test_no_file_access_from_sql(table: DuckDBTable, sql: str) -> None:
    with pytest.raises(ReadError, match=FILE_READS[sql]):
        table.reader().user_query(sql)
    # Not for the app's own queries on the same connection either.
    with pytest.raises(ReadError, match=FILE_READS[sql]):
        table.reader().query(sql)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second filesystem")
def test_an_export_reaches_another_filesystem(table: DuckDBTable) -> None:
    # DuckDB writes into its temp folder; the file is copied across, then renamed.
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        out = Path(other) / "rows.csv"
        assert table.reader().export(out, "csv", order_by="name") == 30
        assert out.read_text().splitlines()[:2] == ["name", "row-9"]
        assert [p.name for p in Path(other).iterdir()] == ["rows.csv"]

"""What real BigQuery answers and bqemulator does not, under a real ``tideflow run --stack gcp``.

The app's BigQuery client goes through ``tests.http_proxy.HttpProxy`` in front of
bqemulator; everything passes unchanged except the answers a test injects, each the
real service's JSON:

- a batch with one row BigQuery refuses: with ``skipInvalidRows`` the valid rows are
  stored and the refused one named; without it nothing is stored and the valid rows come
  back with reason ``stopped`` (``tabledata.insertAll``);
- 403 ``quotaExceeded`` on inserts and on queries (BigQuery's quota and rate-limit errors);
- a dataset in another location: queries naming the wrong one get 404.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from google.cloud import bigquery

from tests.app.support import CHELSEA, COFFEE, PHOTOS, make_app, upload, wait_for_status
from tests.conftest import TideflowProcess
from tests.gcp.conftest import PROJECT, EventingStorage, unique
from tests.gcp.support import start_gcp_app
from tests.http_proxy import Forward, HttpProxy, Reply, Request, Rule, google_error
from tideflow.exceptions import RowError, SinkUnavailableError
from tideflow.io.gcp import BigQueryDataset, BigQueryTable
from tideflow.io.gcp.clients import bigquery_client

MARKER = "refused-by-bigquery"


def insert_all(request: Request) -> bool:
    return request.method == "POST" and request.route.endswith("/insertAll")


def jobs_query(request: Request) -> bool:
    return request.method == "POST" and request.route.endswith("/queries")


def refuse_marked_rows(request: Request, forward: Forward) -> Reply | None:
    """insertAll as BigQuery answers a request holding a row it refuses (a marked result
    row; the failure log, whose rows name the image too, takes them)."""
    if not (insert_all(request) and "/tables/image_classification/" in request.route):
        return None
    body = request.json()
    rows = body.get("rows", [])
    bad = [i for i, row in enumerate(rows) if MARKER in json.dumps(row)]
    if not bad:
        return None
    invalid = [
        {
            "index": i,
            "errors": [
                {
                    "reason": "invalid",
                    "location": "image_name",
                    "debugInfo": "",
                    "message": "Value refused by this test's BigQuery",
                }
            ],
        }
        for i in bad
    ]
    good = [i for i in range(len(rows)) if i not in bad]
    if not body.get("skipInvalidRows"):
        # The whole request fails: nothing is stored, the valid rows are "stopped".
        stopped = [
            {"index": i, "errors": [{"reason": "stopped", "location": "", "message": ""}]}
            for i in good
        ]
        return insert_errors(invalid + stopped)
    errors: list[dict[str, object]] = []
    if good:
        stored = forward(json.dumps({**body, "rows": [rows[i] for i in good]}).encode())
        if stored.status != 200:
            return stored
        errors = [{**e, "index": good[e["index"]]} for e in stored.body.get("insertErrors", [])]
    return insert_errors(invalid + errors)


def quota_exceeded(what: str) -> Reply:
    return google_error(
        403, "quotaExceeded", f"Quota exceeded: Your project exceeded quota for {what}."
    )


def insert_errors(errors: list[dict[str, object]]) -> Reply:
    """insertAll's answer: HTTP 200, the rows BigQuery did not store and why."""
    return Reply(200, {"kind": "bigquery#tableDataInsertAllResponse", "insertErrors": errors})


class Quota:
    """Answers 403 quotaExceeded to the requests ``matches`` picks while ``on``."""

    def __init__(self, matches: Callable[[Request], bool], what: str) -> None:
        self.matches = matches
        self.what = what
        self.on = False
        self.refused = 0

    def __call__(self, request: Request, forward: Forward) -> Reply | None:
        if not (self.on and self.matches(request)):
            return None
        self.refused += 1
        return quota_exceeded(self.what)


def queries(proxy: HttpProxy) -> list[str]:
    return [r.json()["query"] for r in proxy.seen("POST", "/queries")]


@pytest.fixture
def proxy(bigquery_emulator: str) -> Iterator[HttpProxy]:
    started = HttpProxy(bigquery_emulator)
    yield started
    started.close()


def wait_for(check: Callable[[], bool], what: str, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_refused_rows_fail_alone_and_quotas_are_waited_out(
    eventing_storage: Callable[..., EventingStorage], proxy: HttpProxy, tmp_path: Path
) -> None:
    inserts = Quota(insert_all, "streaming inserts")
    reads = Quota(jobs_query, "concurrent queries")
    proxy.rules += [inserts, reads, refuse_marked_rows]
    app = start_gcp_app(
        eventing_storage,
        tmp_path / "home",
        dataset_prefix="faults",
        BIGQUERY_EMULATOR_HOST=proxy.url,
    )
    try:
        # G2: the first image's insert hits a quota; the worker waits it out. Meanwhile
        # three more arrive and wait in the source's buffer: one batch, once it passes.
        inserts.on = True
        first = upload(app, CHELSEA.read_bytes(), "first.png").json()["status_url"]
        wait_for(lambda: inserts.refused >= 2, "the insert to hit the quota")
        batch = [
            upload(app, COFFEE.read_bytes(), "kept-1.png").json()["status_url"],
            upload(app, CHELSEA.read_bytes(), f"{MARKER}.png").json()["status_url"],
            upload(app, PHOTOS[2].read_bytes(), "kept-2.png").json()["status_url"],
        ]
        time.sleep(3)
        inserts.on = False

        assert wait_for_status(app, first, timeout=90)["status"] == "classified"
        # G1: BigQuery refused one row of the batch: only its image fails; the other two
        # are stored and classified (not acked unstored and left "pending").
        kept_1, refused, kept_2 = (wait_for_status(app, url, timeout=90) for url in batch)
        assert (kept_1["status"], kept_2["status"]) == ("classified", "classified")
        assert refused["status"] == "failed"
        assert "refused by this test's BigQuery" in refused["error"]
        together = [
            r
            for r in proxy.seen("POST", "/insertAll")
            if MARKER in r.body.decode() and b"kept-1" in r.body
        ]
        assert together, "the refused row never shared a request with the others"
        log = app.log()
        assert "the warehouse is unavailable, retrying" in log
        assert "quota or rate limit exceeded to write" in log
        assert "permission denied" not in log

        # G2 on reads: a query refused for a quota says so.
        reads.on = True
        assert httpx.get(f"{app.base_url}/api/results", timeout=30).status_code == 500
        reads.on = False
        wait_for(lambda: "quota or rate limit exceeded to query" in app.log(), "the error")
        assert "permission denied" not in app.log()
        results = httpx.get(f"{app.base_url}/api/results", timeout=30).json()
        assert results["total"] == 4  # three rows and one failure

        # G3: a status poll filters the table itself (partitions and clustered blocks
        # prune), not a de-duplicated copy of the whole table.
        proxy.requests.clear()
        refused_id = batch[1].rsplit("/", 1)[-1]
        assert httpx.get(f"{app.base_url}/api/images/{refused_id}").json()["status"] == "failed"
        poll = queries(proxy)
        assert poll, "the poll sent no query"
        for sql in poll:
            assert re.search(r"FROM `[^`]+` WHERE (?!TRUE)[^\n]+\nQUALIFY ROW_NUMBER\(\)", sql), sql
        assert any("`image_id` = @w0\nQUALIFY" in sql for sql in poll)

        # G3: /metrics counts failures from the warehouse at most once a minute.
        proxy.requests.clear()
        for _ in range(3):
            assert "tideflow_dead_letters" in httpx.get(f"{app.base_url}/metrics").text
        assert len(queries(proxy)) <= 1
    finally:
        app.stop()


def cli_app(tmp_path: Path, dataset: str, proxy: HttpProxy) -> TideflowProcess:
    """The app for CLI commands on ``dataset``, its BigQuery client through ``proxy``."""
    return make_app(
        tmp_path / "home",
        STACK="gcp",
        GCP_PROJECT_ID=PROJECT,
        GCS_BUCKET_NAME=unique("cli"),
        BIGQUERY_DATASET=dataset,
        BIGQUERY_EMULATOR_HOST=proxy.url,
    )


def test_export_reads_one_query_job_in_pages(proxy: HttpProxy, tmp_path: Path) -> None:
    # G3: an export was one full query per 5,000 rows (LIMIT/OFFSET); now one query job
    # whose result is read page by page.
    dataset = f"export_{unique('x')[2:]}".replace("-", "_")
    app = cli_app(tmp_path, dataset, proxy)
    client = bigquery_client(PROJECT)
    client.create_dataset(dataset)
    table = client.create_table(
        bigquery.Table(
            f"{PROJECT}.{dataset}.image_classification",
            schema=[
                bigquery.SchemaField("image_id", "STRING"),
                bigquery.SchemaField("upload", "TIMESTAMP"),
                bigquery.SchemaField("_tideflow_row_id", "STRING", mode="REQUIRED"),
            ],
        )
    )
    rows = [
        {
            "image_id": f"i{n}",
            "upload": f"2026-01-01T00:00:{n % 60:02d}Z",
            "_tideflow_row_id": f"r{n}",
        }
        for n in range(5200)
    ]
    for start in range(0, len(rows), 500):
        assert client.insert_rows_json(table, rows[start : start + 500]) == []
    out = tmp_path / "all.jsonl"

    done = app.cli("export", "--out", str(out), "--format", "jsonl")

    assert done.returncode == 0, done.stdout + done.stderr
    assert len(out.read_text().splitlines()) == 5200
    assert len(proxy.seen("POST", "/queries")) == 1
    assert proxy.seen("POST", "/jobs") == []
    more = [r for r in proxy.requests if r.method == "GET" and "pageToken=" in r.path]
    assert more, "the second page was not read from the same job's result"


def not_found_in(location: str) -> Rule:
    """Queries as BigQuery answers them for a dataset in ``location``: another is 404."""

    def rule(request: Request, forward: Forward) -> Reply | None:
        if not jobs_query(request) or request.json().get("location") == location:
            return None
        where = request.json().get("location")
        return google_error(
            404, "notFound", f"Not found: Dataset was not found in location {where}"
        )

    return rule


def test_commands_that_never_plan_follow_the_datasets_location(
    proxy: HttpProxy, tmp_path: Path
) -> None:
    # G8: `tideflow query` without a running app named location US for an EU dataset.
    dataset = f"eu_{unique('x')[2:]}".replace("-", "_")
    client = bigquery_client(PROJECT)
    eu = bigquery.Dataset(f"{PROJECT}.{dataset}")
    eu.location = "EU"
    client.create_dataset(eu)
    client.create_table(
        bigquery.Table(
            f"{PROJECT}.{dataset}.image_classification",
            schema=[bigquery.SchemaField("_tideflow_row_id", "STRING", mode="REQUIRED")],
        )
    )
    proxy.rules.append(not_found_in("EU"))
    app = cli_app(tmp_path, dataset, proxy)

    done = app.cli("query", "SELECT COUNT(*) AS n FROM {table}", "--format", "json")

    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == [{"n": 0}]
    assert [r.json()["location"] for r in proxy.seen("POST", "/queries")] == ["EU"]


@dataclasses.dataclass
class Measured:
    key: str
    size: int | None = None


@dataclasses.dataclass
class Wider:
    key: str
    size: int | None = None
    width: int | None = None


def first(times: int, answer: Callable[[Request], Reply]) -> Rule:
    """Answers ``answer(request)`` to the first ``times`` insertAll requests."""
    left = [times]

    def rule(request: Request, forward: Forward) -> Reply | None:
        if not insert_all(request) or not left[0]:
            return None
        left[0] -= 1
        return answer(request)

    return rule


def no_such_field(column: str) -> Callable[[Request], Reply]:
    """insertAll refusing every row for ``column``, as streaming does before it knows it."""
    error = {"reason": "invalid", "location": column, "message": f"no such field: {column}."}

    def answer(request: Request) -> Reply:
        rows = request.json()["rows"]
        return insert_errors([{"index": i, "errors": [error]} for i in range(len(rows))])

    return answer


def streaming_not_found(request: Request) -> Reply:
    return google_error(404, "notFound", "Not found: Table tideflow-test:lag.sizes")


@pytest.fixture
def through_proxy(proxy: HttpProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[BigQueryTable]:
    """An applied table whose client goes through the proxy."""
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", proxy.url)
    dataset = BigQueryDataset(project_id=PROJECT, dataset_name=unique("lag").replace("-", "_"))
    table = BigQueryTable(dataset, "sizes").options(schema=Measured)
    dataset.apply()
    table.apply()
    yield table
    table.destroy()
    dataset.destroy()


def test_streaming_that_lags_behind_a_schema_change_is_waited_out(
    through_proxy: BigQueryTable, proxy: HttpProxy
) -> None:
    # G7: right after apply added `size`, streaming may still answer "no such field":
    # the warehouse is behind (waited out, like an outage), the rows are not bad.
    sink = through_proxy.sink()
    proxy.rules.append(first(1, no_such_field("size")))
    with pytest.raises(SinkUnavailableError, match="do not see column size"):
        sink.write([("a#1:0", Measured("a", 1)), ("b#1:0", Measured("b", 2))])
    sink.write([("a#1:0", Measured("a", 1)), ("b#1:0", Measured("b", 2))])
    assert through_proxy.reader().count() == 2

    # A column neither the table nor the schema has is the row's own fault.
    proxy.rules.append(first(1, no_such_field("colour")))
    with pytest.raises(RowError) as refused:
        sink.write([("c#1:0", Measured("c", 3))])
    assert set(refused.value.rejected) == {"c#1:0"}


def test_a_column_the_table_lacks_or_a_table_streaming_cannot_see_waits(
    through_proxy: BigQueryTable, proxy: HttpProxy
) -> None:
    # G7: a column the schema declares and the table lacks (apply not run yet).
    wider = BigQueryTable(through_proxy.dataset, "sizes").options(schema=Wider)
    proxy.rules.append(first(1, no_such_field("width")))
    with pytest.raises(SinkUnavailableError, match="run `tideflow apply`"):
        wider.sink().write([("a#1:0", Wider("a", 1, 3))])

    # 404 from streaming while the table exists: created moments ago.
    proxy.rules.append(first(1, streaming_not_found))
    with pytest.raises(SinkUnavailableError, match="do not see table"):
        through_proxy.sink().write([("a#1:0", Measured("a", 1))])

    # No such table at all: apply has not run (or it was deleted under the consumers).
    missing = BigQueryTable(through_proxy.dataset, "never_applied").options(schema=Measured)
    with pytest.raises(SinkUnavailableError, match="does not exist: run `tideflow apply`"):
        missing.sink().write([("a#1:0", Measured("a", 1))])

"""BuildFlow 0.3's API on tideflow: the names and signatures a ported app uses."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import duckdb
import pytest

from tideflow import Flow, Service
from tideflow.config import load_config
from tideflow.dependencies import Scope, dependency
from tideflow.exceptions import ConfigError
from tideflow.io.duckdb import DuckDBTable
from tideflow.io.local import LocalFileChangeStream
from tideflow.requests import UploadFile
from tideflow.responses import FileResponse, HTMLResponse
from tideflow.types.gcp import GCSChangeStreamEventType, GCSFileChangeEvent
from tideflow.types.local import FileChangeEvent, FileChangeStreamEventType, LocalFileChangeEvent


@dataclasses.dataclass
class Row:
    name: str
    size: int


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory and the state directory, both in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path / "state"))
    return tmp_path


def test_buildflow_signatures_of_the_local_primitives(in_tmp: Path) -> None:
    stream = LocalFileChangeStream(file_path="image_folder")
    assert stream.bucket.root == in_tmp / "image_folder"
    assert LocalFileChangeStream("image_folder").bucket.root == stream.bucket.root
    table = DuckDBTable(database="buildflow.duckdb", table="image_classification")
    assert (table.database, table.table) == (
        str(in_tmp / "buildflow.duckdb"),
        "image_classification",
    )
    assert DuckDBTable("buildflow.duckdb", "t").database == table.database
    with pytest.raises(ValueError, match="created files only"):
        LocalFileChangeStream(file_path="f", event_types=[FileChangeStreamEventType.DELETED])


def test_flow_consumer_and_service_factories_register_what_they_make(in_tmp: Path) -> None:
    app = Flow()
    service = app.service(service_id="svc")
    assert isinstance(service, Service) and app.services == [service]

    stream = LocalFileChangeStream(file_path="in")
    table = DuckDBTable(database="out.duckdb", table="rows")

    @app.consumer(source=stream, sink=table)
    def process(event: FileChangeEvent) -> list[Row]:
        return [Row(event.file_path, event.size)]

    assert app.consumer_named("process") is process
    assert table.schema is Row  # taken from the return annotation, as BuildFlow does

    @service.endpoint("/upload", method="POST")
    def upload(file: UploadFile) -> HTMLResponse:
        return HTMLResponse("ok")

    assert FileResponse and Scope.REPLICA and dependency


def test_full_path_events_and_their_blob(in_tmp: Path) -> None:
    stream = LocalFileChangeStream(file_path="folder")
    stream.bucket.apply()
    stream.apply()
    (in_tmp / "folder" / "a.txt").write_text("hello")
    source = stream.source()
    source.reconcile()
    (delivery,) = source.pull(max_messages=5, timeout=0)
    event = delivery.event
    assert isinstance(event, LocalFileChangeEvent)
    assert event.file_path == str(in_tmp / "folder" / "a.txt")
    assert event.metadata["src_path"] == event.file_path
    assert event.event_type is FileChangeStreamEventType.CREATED
    assert event.blob == b"hello"
    assert event.generation == int(event.version)


def test_gcs_event_names() -> None:
    event = GCSFileChangeEvent(
        file_path="a.jpg",
        bucket="b",
        version="17",
        size=1,
        event_time=None,  # type: ignore[arg-type]
    )
    assert (event.generation, event.event_type) == (17, GCSChangeStreamEventType.OBJECT_FINALIZE)


def test_bigquery_primitive_id_is_a_table_reference_and_buckets_take_force_destroy() -> None:
    from tideflow.io.gcp import BigQueryDataset, BigQueryTable, GCSBucket

    dataset = BigQueryDataset(project_id="my-project", dataset_name="walkthrough")
    table = BigQueryTable(dataset=dataset, table_name="image_classification")
    assert f"SELECT * FROM {table.primitive_id()}" == (
        "SELECT * FROM my-project.walkthrough.image_classification"
    )
    bucket = GCSBucket(project_id="my-project", bucket_name="b").options(force_destroy=True)
    assert bucket.force_destroy is True


def test_buildflow_yaml_is_read(tmp_path: Path) -> None:
    (tmp_path / "buildflow.yaml").write_text(
        "app: image-classification-local\n"
        "pulumi_config:\n  stacks:\n    - name: local\n      backend_url: file://./x\n"
        "  default_stack: local\n"
        "entry_point: main:app\nbuild_ignores: []\n"
    )
    config = load_config(tmp_path)
    assert (config.project, config.entry_point) == ("image-classification-local", "main:app")
    assert [s.name for s in config.stacks] == ["local"]


def test_buildflow_style_table_lets_the_app_open_the_file_between_writes(in_tmp: Path) -> None:
    """The tutorial reads with its own ``duckdb.connect(table.database, read_only=True)``
    in the process that writes: the sink waits for that connection instead of failing."""
    table = DuckDBTable(database="app.duckdb", table="rows").options(schema=Row)
    table.dataset.apply()
    table.apply()
    reader = duckdb.connect(database=table.database, read_only=True)
    sink = table.sink()
    writer = threading.Thread(target=sink.write, args=([("r1", Row("a", 1))],))
    writer.start()
    time.sleep(0.3)
    assert writer.is_alive(), "the write waits while the app's connection is open"
    assert reader.execute("SELECT count(*) FROM rows").fetchone() == (0,)
    reader.close()
    writer.join(10)
    assert not writer.is_alive()
    sink.write([("r1", Row("a", 1)), ("r2", Row("b", 2))])  # r1 redelivered: no new row
    with duckdb.connect(database=table.database, read_only=True) as again:
        result = again.execute("SELECT * FROM rows ORDER BY name")
        assert [d[0] for d in result.description] == ["name", "size"]  # only the row's
        assert result.fetchall() == [("a", 1), ("b", 2)]
    assert table.reader().select(order_by="name").rows == [("b", 2), ("a", 1)]
    assert os.path.exists(table.database)


def test_buildflow_flow_options_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gcp walkthrough's ``Flow(flow_options=FlowOptions(gcp_service_account_info=...,
    stack=...))``: the key becomes the gcp provider's setting, the stack must agree."""
    from tideflow import FlowOptions

    monkeypatch.setenv("STACK", "local")
    monkeypatch.delenv("GCP_SERVICE_ACCOUNT_INFO", raising=False)
    Flow(flow_options=FlowOptions(gcp_service_account_info='{"type": "x"}', stack="local"))
    assert os.environ["GCP_SERVICE_ACCOUNT_INFO"] == '{"type": "x"}'
    with pytest.raises(ConfigError, match="tideflow runs stack 'local'"):
        FlowOptions(stack="gcp")
    with pytest.raises(ConfigError, match="set only one"):
        FlowOptions(gcp_service_account_info='{"type": "y"}')


def test_buildflow_ray_options_are_accepted_and_base_route_prefixes(in_tmp: Path) -> None:
    from fastapi.testclient import TestClient

    from tideflow import consumer
    from tideflow.dependencies import Resolver

    app = Flow()
    service = app.service(base_route="/api", service_id="svc", num_cpus=0.5, max_replicas=3)

    @service.endpoint("/ping", method="GET")
    def ping() -> dict[str, bool]:
        return {"pong": True}

    stream = LocalFileChangeStream(file_path="in")
    table = DuckDBTable(database="out.duckdb", table="rows")

    @consumer(stream, table, num_cpus=1.0, enable_autoscaler=False, log_level="INFO")
    def process(event: FileChangeEvent) -> Row:
        return Row(event.file_path, event.size)

    with pytest.raises(TypeError, match="num_gpus"):
        consumer(stream, table, num_gpus=1)
    client = TestClient(service.build_app(resolver=Resolver()))
    assert client.get("/api/ping").json() == {"pong": True}


def test_other_names_buildflow_templates_import() -> None:
    from fastapi import HTTPException as FastAPIHTTPException

    from tideflow.exceptions import HTTPException
    from tideflow.middleware import SessionMiddleware
    from tideflow.requests import Request
    from tideflow.responses import RedirectResponse, StreamingResponse

    assert HTTPException is FastAPIHTTPException
    assert SessionMiddleware and Request and RedirectResponse and StreamingResponse

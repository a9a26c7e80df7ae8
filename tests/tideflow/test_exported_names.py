import tideflow
import tideflow.dependencies
import tideflow.io.duckdb
import tideflow.io.local


def test_public_api_is_pinned() -> None:
    assert tideflow.__all__ == [
        "Consumer",
        "Flow",
        "FlowOptions",
        "Project",
        "Router",
        "Scope",
        "Service",
        "consumer",
        "dependency",
        "open_project",
    ]
    assert set(tideflow.io.local.__all__) >= {"LocalBucket", "LocalFileChangeStream"}
    assert set(tideflow.io.duckdb.__all__) >= {"DuckDBDataset", "DuckDBTable"}
    assert "BucketDependencyBuilder" in tideflow.dependencies.__all__


def test_the_tutorial_imports_work() -> None:
    from tideflow import Flow, FlowOptions, Router, Scope, Service, consumer, dependency  # noqa: F401
    from tideflow.dependencies.bucket import BucketDependencyBuilder  # noqa: F401
    from tideflow.requests import UploadFile  # noqa: F401
    from tideflow.responses import FileResponse, HTMLResponse, JSONResponse  # noqa: F401
    from tideflow.types import FileChangeEvent
    from tideflow.types.gcp import GCSFileChangeEvent
    from tideflow.types.local import LocalFileChangeEvent

    assert {"file_path", "bucket", "version", "size", "event_time", "metadata"} <= set(
        FileChangeEvent.__dataclass_fields__
    )
    assert isinstance(FileChangeEvent.blob, property)
    for provider_event in (GCSFileChangeEvent, LocalFileChangeEvent):
        assert issubclass(provider_event, FileChangeEvent)
        assert isinstance(provider_event.generation, property)


def test_core_imports_no_cloud_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tideflow, tideflow.io.local, tideflow.io.duckdb, tideflow.cli.main,"
        " tideflow.types.gcp, tideflow.stacks; tideflow.stacks.get_stack('local');"
        "print([m for m in sys.modules if m.startswith(('google', 'boto'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

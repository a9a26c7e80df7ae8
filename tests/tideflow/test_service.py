"""A Service behaves like FastAPI, with tideflow dependencies injected by annotation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fastapi.testclient import TestClient
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles

from tideflow import Scope, Service, dependency
from tideflow.dependencies import Resolver
from tideflow.requests import UploadFile
from tideflow.responses import HTMLResponse, JSONResponse


@dependency(scope=Scope.REPLICA)
class Greeter:
    def __init__(self) -> None:
        self.greeting = "hello"


@dataclasses.dataclass
class Item:
    name: str
    price: float


service = Service(service_id="demo", title="Demo")


@service.endpoint("/hello/{name}")
def hello(name: str, greeter: Greeter, excited: bool = False) -> dict[str, str]:
    return {"message": f"{greeter.greeting} {name}{'!' if excited else ''}"}


@service.endpoint("/items", method="POST", status_code=201)
async def create_item(item: Item, greeter: Greeter) -> JSONResponse:
    return JSONResponse({"name": item.name, "by": greeter.greeting}, status_code=201)


@service.endpoint("/upload", method="POST")
def upload(file: UploadFile) -> dict[str, object]:
    return {"filename": file.filename, "size": len(file.file.read())}


@service.endpoint("/page", response_class=HTMLResponse)
def page() -> str:
    return "<h1>page</h1>"


def _client() -> TestClient:
    return TestClient(service.build_app(resolver=Resolver()))


def test_path_query_body_upload_and_html() -> None:
    client = _client()
    assert client.get("/hello/ada", params={"excited": "true"}).json() == {"message": "hello ada!"}
    created = client.post("/items", json={"name": "pen", "price": 1.5})
    assert (created.status_code, created.json()) == (201, {"name": "pen", "by": "hello"})
    assert client.post("/items", json={"name": "pen"}).status_code == 422
    uploaded = client.post("/upload", files={"file": ("a.bin", b"12345")})
    assert uploaded.json() == {"filename": "a.bin", "size": 5}
    assert client.get("/page").headers["content-type"].startswith("text/html")


def test_openapi_lists_endpoints_without_dependency_parameters() -> None:
    schema = _client().get("/openapi.json").json()
    assert "/hello/{name}" in schema["paths"]
    params = [p["name"] for p in schema["paths"]["/hello/{name}"]["get"]["parameters"]]
    assert params == ["name", "excited"]
    assert _client().get("/docs").status_code == 200


def test_static_files_and_middleware(tmp_path: Path) -> None:
    (tmp_path / "site.css").write_text("body { color: red }" * 100)
    extra = Service(service_id="static")
    extra.mount("/static", StaticFiles(directory=tmp_path), name="static")
    extra.add_middleware(GZipMiddleware, minimum_size=10)
    client = TestClient(extra.build_app(resolver=Resolver()))
    response = client.get("/static/site.css", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"

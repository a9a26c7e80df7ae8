"""A Service behaves like FastAPI, with tideflow dependencies injected by annotation."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles

from tideflow import Router, Scope, Service, dependency
from tideflow.dependencies import BucketDependency, BucketDependencyBuilder, Resolver
from tideflow.io.local import LocalBucket
from tideflow.requests import Request, UploadFile
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


@dependency(scope=Scope.NO_SCOPE)
class Caller:
    """Auth as a tideflow dependency: it reads the request and may answer 401."""

    def __init__(self, request: Request) -> None:
        token = request.headers.get("authorization", "")
        if token != "Bearer secret":
            raise HTTPException(status_code=401, detail="token required")
        self.token = token
        self.instance = object()


@dependency(scope=Scope.NO_SCOPE)
class Audit:
    def __init__(self, caller: Caller) -> None:
        self.caller = caller


guarded = Service(service_id="guarded")
demo_bucket = LocalBucket("demo-bucket")
DemoBucketDep = BucketDependencyBuilder(demo_bucket)


@guarded.endpoint("/whoami")
def whoami(request: Request, caller: Caller, audit: Audit) -> dict[str, object]:
    return {"same": audit.caller is caller, "path": request.url.path}


@guarded.endpoint("/bucket")
def bucket_endpoint(
    bucket_dep: Annotated[BucketDependency, BucketDependencyBuilder(demo_bucket)],
    plain: DemoBucketDep,
) -> dict[str, object]:
    blob = bucket_dep.bucket.blob("notes/a.txt")
    blob.upload_from_file(io.BytesIO(b"hi"), content_type="text/plain")
    return {
        "read": plain.bucket.blob("notes/a.txt").download_as_bytes().decode(),
        "portable": plain.objects.get("notes/a.txt").decode(),
    }


def test_an_endpoint_dependency_takes_the_request_and_is_built_once_per_call() -> None:
    client = TestClient(guarded.build_app(resolver=Resolver()))
    assert client.get("/whoami").status_code == 401
    answer = client.get("/whoami", headers={"authorization": "Bearer secret"})
    assert answer.json() == {"same": True, "path": "/whoami"}
    schema = client.get("/openapi.json").json()
    assert "parameters" not in schema["paths"]["/whoami"]["get"]


def test_bucket_builder_works_plain_and_wrapped_for_type_checkers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path))
    demo_bucket.apply()
    client = TestClient(guarded.build_app(resolver=Resolver()))
    assert client.get("/bucket").json() == {"read": "hi", "portable": "hi"}


items = Router(prefix="/items", tags=["items"])


@items.endpoint("/")
def list_items(greeter: Greeter) -> list[str]:
    return [greeter.greeting]


@items.endpoint("/{name}", tags=["one"])
def one_item(name: str) -> dict[str, str]:
    return {"name": name}


def test_routers_are_included_with_prefixes_and_tags() -> None:
    api = Router()
    api.include_router(items, prefix="v1", tags=["api"])
    composed = Service(service_id="composed", base_route="/base")
    composed.include_router(api, prefix="/api")
    client = TestClient(composed.build_app(resolver=Resolver()))
    assert client.get("/base/api/v1/items").json() == ["hello"]
    assert client.get("/base/api/v1/items/pen").json() == {"name": "pen"}
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/base/api/v1/items", "/base/api/v1/items/{name}"}
    assert paths["/base/api/v1/items/{name}"]["get"]["tags"] == ["api", "items", "one"]
    # The router's routes are unchanged: it can be included again elsewhere.
    assert [route.path for route in items.routes] == ["/items", "/items/{name}"]


def test_dependency_overrides_swap_what_endpoints_get() -> None:
    @dependency(scope=Scope.REPLICA)
    class Quiet:
        greeting = "hush"

    resolver = Resolver(overrides={Greeter: Quiet})
    client = TestClient(service.build_app(resolver=resolver))
    assert client.get("/hello/ada").json() == {"message": "hush ada"}
    assert _client().get("/hello/ada").json() == {"message": "hello ada"}


def test_a_405_allows_every_method_of_the_path() -> None:
    """One route per method underneath; the ``Allow`` header still names them all."""
    both = Service(service_id="both")

    @both.endpoint("/things/{name}")
    def read(name: str) -> dict[str, str]:
        return {"name": name}

    @both.endpoint("/things/{name}", method="POST")
    def write(name: str) -> dict[str, str]:
        return {"written": name}

    client = TestClient(both.build_app(resolver=Resolver()))
    for method in ("OPTIONS", "DELETE", "PUT"):
        answer = client.request(method, "/things/a")
        assert answer.status_code == 405
        assert answer.headers["allow"] == "GET, POST"
    assert client.post("/things/a").json() == {"written": "a"}
    assert client.options("/nowhere").status_code == 404

"""``Service``: HTTP endpoints with tideflow dependency injection, served by FastAPI.

A service is a FastAPI app underneath: path and query parameters, bodies, ``UploadFile``,
responses and ``/docs`` behave as in FastAPI. Parameters annotated with a
``@dependency`` class are built by tideflow with the same scopes as in consumers.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from starlette import routing
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from tideflow import openapi_docs
from tideflow.dependencies import Resolver, check_scopes, get_dependant
from tideflow.dependencies.resolve import Dependant

Endpoint = Callable[..., Any]

RAY_SERVICE_OPTIONS = frozenset(
    {
        "num_cpus",
        "enable_autoscaler",
        "num_replicas",
        "min_replicas",
        "min_replics",
        "max_replicas",
        "max_concurrent_queries",
        "target_num_ongoing_requests_per_replica",
        "log_level",
    }
)


@dataclasses.dataclass(frozen=True)
class Route:
    path: str
    method: str
    function: Endpoint
    options: dict[str, Any]


def _prefix(prefix: str) -> str:
    """``prefix`` as ``/a/b`` (``""`` for none), however its slashes were written."""
    return "/" + prefix.strip("/") if prefix.strip("/") else ""


def _join(prefix: str, path: str) -> str:
    # BuildFlow's base_route rule: "/" under a prefix is the prefix itself.
    return prefix if path == "/" and prefix else prefix + path


def _tagged(options: dict[str, Any], tags: Sequence[str]) -> dict[str, Any]:
    if not tags:
        return options
    return {**options, "tags": [*tags, *options.get("tags", [])]}


class Router:
    """Endpoints collected apart from the service, as FastAPI's ``APIRouter``.

    A module declares ``router = Router()`` and its ``@router.endpoint(...)`` functions;
    the app adds them with ``service.include_router(router)``. ``prefix`` goes before each
    route and ``tags`` before each endpoint's own (OpenAPI groups).
    """

    def __init__(self, *, prefix: str = "", tags: Sequence[str] = ()) -> None:
        self.prefix = _prefix(prefix)
        self.tags = list(tags)
        self.routes: list[Route] = []

    def endpoint(
        self, route: str, method: str = "GET", **options: Any
    ) -> Callable[[Endpoint], Endpoint]:
        """Register a function as the handler of ``method route``.

        ``options`` go to FastAPI's ``add_api_route`` (``status_code``, ``response_class``,
        ``responses``, ``include_in_schema``...).
        """

        def register(function: Endpoint) -> Endpoint:
            for spec in get_dependant(function).dependencies.values():
                check_scopes(spec)
            self._add(Route(route, method.upper(), function, options), prefix="", tags=())
            return function

        return register

    def include_router(self, router: Router, *, prefix: str = "", tags: Sequence[str] = ()) -> None:
        """Add ``router``'s endpoints under ``prefix``, with ``tags`` before theirs."""
        for route in router.routes:
            self._add(route, prefix=_prefix(prefix), tags=tags)

    def _add(self, route: Route, *, prefix: str, tags: Sequence[str]) -> None:
        path = _join(self.prefix, _join(prefix, route.path))
        options = _tagged(_tagged(route.options, tags), self.tags)
        self.routes.append(dataclasses.replace(route, path=path, options=options))


class Service:
    """A group of HTTP endpoints, mounted static files and middleware."""

    def __init__(
        self,
        service_id: str = "service",
        *,
        title: str | None = None,
        version: str = "1.0",
        base_route: str = "/",
        **buildflow_options: Any,
    ) -> None:
        """``base_route`` prefixes every endpoint's route (BuildFlow's). BuildFlow's Ray
        and autoscaler options (``num_cpus``, ``num_replicas``...) are accepted without
        effect: tideflow serves one Uvicorn process."""
        unknown = set(buildflow_options) - RAY_SERVICE_OPTIONS
        if unknown:
            raise TypeError(f"Service() got unexpected keyword argument(s): {sorted(unknown)}")
        self.service_id = service_id
        self.title = title or service_id
        self.version = version
        self.router = Router(prefix=base_route)
        self._mounts: list[tuple[str, ASGIApp, str | None]] = []
        self._middleware: list[tuple[Any, dict[str, Any]]] = []
        self._exception_handlers: list[tuple[type[Exception] | int, Callable[..., Any]]] = []
        # Headers of the /docs page (its Content-Security-Policy); None: tideflow's strict one.
        self.docs_headers: dict[str, str] | None = None

    def endpoint(
        self, route: str, method: str = "GET", **options: Any
    ) -> Callable[[Endpoint], Endpoint]:
        """Register a function as the handler of ``method route`` (see ``Router.endpoint``)."""
        return self.router.endpoint(route, method, **options)

    def include_router(self, router: Router, *, prefix: str = "", tags: Sequence[str] = ()) -> None:
        """Serve ``router``'s endpoints too, under ``prefix`` (after ``base_route``)."""
        self.router.include_router(router, prefix=prefix, tags=tags)

    def mount(self, path: str, app: ASGIApp, *, name: str | None = None) -> None:
        """Serve another ASGI app (e.g. ``StaticFiles``) under ``path``."""
        self._mounts.append((path, app, name))

    def add_middleware(self, middleware_class: Any, **options: Any) -> None:
        """Wrap the app in a Starlette middleware class, as ``FastAPI.add_middleware``."""
        self._middleware.append((middleware_class, options))

    def exception_handler(
        self, key: type[Exception] | int
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self._exception_handlers.append((key, handler))
            return handler

        return register

    def build_app(self, *, resolver: Resolver) -> FastAPI:
        """The FastAPI app, its dependencies resolved by ``resolver``."""
        offline_docs = openapi_docs.swagger_ui_dir() is not None
        app = FastAPI(
            title=self.title,
            version=self.version,
            # Swagger UI from the installed package instead of a CDN; no ReDoc (CDN only).
            docs_url=None if offline_docs else "/docs",
            redoc_url=None if offline_docs else "/redoc",
        )
        if offline_docs:
            openapi_docs.install(app, title=self.title, headers=self.docs_headers)
        for route in self.router.routes:
            app.add_api_route(
                route.path,
                _inject(route.function, resolver),
                methods=[route.method],
                **route.options,
            )
        for path, mounted, name in self._mounts:
            app.mount(path, mounted, name=name)
        for middleware_class, options in self._middleware:
            app.add_middleware(middleware_class, **options)
        for key, handler in self._exception_handlers:
            app.add_exception_handler(key, handler)
        app.add_middleware(AllowEveryMethod, routes=app.router.routes)
        return app


class AllowEveryMethod:
    """A 405's ``Allow`` names every method the path takes (RFC 9110, 15.5.6).

    Starlette's router names the methods of the first route that matched the path only,
    and a service has one route per method, so a path with GET and POST said one of them.
    """

    def __init__(self, app: ASGIApp, *, routes: Sequence[routing.BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                MutableHeaders(scope=message)["Allow"] = ", ".join(self._methods(scope))
            await send(message)

        await self.app(scope, receive, send_with_allow)

    def _methods(self, scope: AsgiScope) -> list[str]:
        methods: set[str] = set()
        for route in self.routes:
            if not isinstance(route, routing.Route) or not route.methods:
                continue  # a mount, a websocket route
            if route.matches(scope)[0] is not routing.Match.NONE:
                methods.update(route.methods)
        return sorted(methods)


_BUNDLE = "tideflow_dependencies_"


def _bundle(dependant: Dependant, resolver: Resolver) -> Callable[[Request], Iterator[Any]]:
    """One FastAPI dependency that builds all of an endpoint's tideflow dependencies.

    They share one call scope: a dependency asked for twice is built once, gets the
    request when it takes ``Request``, and generators are cleaned up after the call.
    """

    def provide(request: Request) -> Iterator[dict[str, Any]]:
        with resolver.call(request=request) as call:
            yield resolver.solve(dependant, call)

    return provide


def _inject(function: Endpoint, resolver: Resolver) -> Endpoint:
    """``function`` with its tideflow dependencies filled by one FastAPI ``Depends``.

    The signature is rebuilt from resolved type hints, so endpoints defined in modules
    using ``from __future__ import annotations`` work too.
    """
    dependant = get_dependant(function)
    hints = typing.get_type_hints(function, include_extras=True)
    params = []
    for name, param in inspect.signature(function).parameters.items():
        if name not in dependant.dependencies:
            params.append(param.replace(annotation=hints.get(name, param.annotation)))
    if dependant.dependencies:
        # The endpoint's own parameters only: its Request parameters stay FastAPI's.
        only_dependencies = dataclasses.replace(dependant, request_params=())
        bundle = inspect.Parameter(
            _BUNDLE,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[dict, Depends(_bundle(only_dependencies, resolver))],
        )
        params.append(bundle)
    params.sort(key=lambda p: p.kind)  # keyword-only parameters last
    signature = inspect.signature(function).replace(
        parameters=params,
        return_annotation=hints.get("return", inspect.Signature.empty),
    )

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def endpoint_async(**kwargs: Any) -> Any:
            kwargs.update(kwargs.pop(_BUNDLE, {}))
            return await function(**kwargs)

        wrapper: Endpoint = endpoint_async
    else:

        @functools.wraps(function)
        def endpoint_sync(**kwargs: Any) -> Any:
            kwargs.update(kwargs.pop(_BUNDLE, {}))
            return function(**kwargs)

        wrapper = endpoint_sync
    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    wrapper.__annotations__ = {}
    return wrapper

"""``Service``: HTTP endpoints with tideflow dependency injection, served by FastAPI.

A service is a FastAPI app underneath: path and query parameters, bodies, ``UploadFile``,
responses and ``/docs`` behave as in FastAPI. Parameters annotated with a
``@dependency`` class are built by tideflow with the same scopes as in consumers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from tideflow.dependencies import DependencySpec, Resolver, check_scopes, get_dependant

Endpoint = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class _Route:
    path: str
    method: str
    function: Endpoint
    options: dict[str, Any]


class Service:
    """A group of HTTP endpoints, mounted static files and middleware."""

    def __init__(self, service_id: str, *, title: str | None = None, version: str = "1.0") -> None:
        self.service_id = service_id
        self.title = title or service_id
        self.version = version
        self._routes: list[_Route] = []
        self._mounts: list[tuple[str, ASGIApp, str | None]] = []
        self._middleware: list[tuple[Any, dict[str, Any]]] = []
        self._exception_handlers: list[tuple[type[Exception] | int, Callable[..., Any]]] = []

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
            self._routes.append(_Route(route, method.upper(), function, options))
            return function

        return register

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
        app = FastAPI(title=self.title, version=self.version)
        for route in self._routes:
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
        return app


def _provider(spec: DependencySpec, resolver: Resolver) -> Callable[[], Iterator[Any]]:
    def provide() -> Iterator[Any]:
        with contextlib.ExitStack() as call_stack:
            yield resolver.resolve(spec, call_stack)

    return provide


def _inject(function: Endpoint, resolver: Resolver) -> Endpoint:
    """``function`` with its tideflow dependencies turned into FastAPI ``Depends``.

    The signature is rebuilt from resolved type hints, so endpoints defined in modules
    using ``from __future__ import annotations`` work too.
    """
    dependant = get_dependant(function)
    hints = typing.get_type_hints(function, include_extras=True)
    params = []
    for name, param in inspect.signature(function).parameters.items():
        annotation = hints.get(name, param.annotation)
        if name in dependant.dependencies:
            provide = _provider(dependant.dependencies[name], resolver)
            annotation = Annotated[Any, Depends(provide)]
        params.append(param.replace(annotation=annotation))
    signature = inspect.signature(function).replace(
        parameters=params,
        return_annotation=hints.get("return", inspect.Signature.empty),
    )

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def endpoint_async(**kwargs: Any) -> Any:
            return await function(**kwargs)

        wrapper: Endpoint = endpoint_async
    else:

        @functools.wraps(function)
        def endpoint_sync(**kwargs: Any) -> Any:
            return function(**kwargs)

        wrapper = endpoint_sync
    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    wrapper.__annotations__ = {}
    return wrapper

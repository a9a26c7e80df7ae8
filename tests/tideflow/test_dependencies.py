import contextlib
from typing import Annotated, Any

import pytest

from tideflow import Scope, dependency
from tideflow.dependencies import Resolver, check_scopes, get_dependant
from tideflow.dependencies.models import spec_of
from tideflow.exceptions import DependencyError, DependencyScopeError

built: list[str] = []


@dependency(scope=Scope.PROCESS)
class Settings:
    def __init__(self) -> None:
        built.append("settings")
        self.name = "tideflow"


@dependency(scope=Scope.REPLICA)
class Model:
    def __init__(self, settings: Settings) -> None:
        built.append("model")
        self.settings = settings


@dependency(scope=Scope.NO_SCOPE)
def connection(model: Model):  # type: ignore[no-untyped-def]
    built.append("open")
    yield f"connection for {model.settings.name}"
    built.append("close")


def handler(event: str, model: Model, conn: Annotated[str, connection]) -> str:
    return f"{event} {conn}"


def test_dependant_separates_dependencies_from_other_parameters() -> None:
    dependant = get_dependant(handler)
    assert set(dependant.dependencies) == {"model", "conn"}
    assert [p.name for p in dependant.other_params] == ["event"]


def test_scopes_cache_values_and_generators_clean_up_per_call() -> None:
    built.clear()
    resolver = Resolver()
    dependant = get_dependant(handler)
    for _ in range(3):
        with contextlib.ExitStack() as call:
            kwargs = resolver.solve(dependant, call)
            assert handler("event", **kwargs) == "event connection for tideflow"
    assert built.count("model") == 1
    assert built.count("open") == built.count("close") == 3
    assert built.count("settings") <= 1  # PROCESS values may survive from other tests


def test_each_resolver_builds_its_own_replica_values() -> None:
    first, second = Resolver(), Resolver()
    spec = spec_of(Model)
    assert spec is not None
    with contextlib.ExitStack() as call:
        one, two = first.resolve(spec, call), second.resolve(spec, call)
    assert one is not two
    assert one.settings is two.settings  # PROCESS scope is shared


def test_global_values_seeded_by_the_run_process_are_used() -> None:
    @dependency(scope=Scope.GLOBAL)
    class Config:
        def __init__(self) -> None:
            raise AssertionError("must not be rebuilt")

    sentinel = object()
    spec = spec_of(Config)
    assert spec is not None
    resolver = Resolver(global_values={Config: sentinel})
    assert resolver.resolve(spec, contextlib.ExitStack()) is sentinel


def test_narrower_dependency_is_a_scope_error_naming_both() -> None:
    @dependency(scope=Scope.GLOBAL)
    class Wide:
        def __init__(self, model: Model) -> None:
            self.model = model

    spec = spec_of(Wide)
    assert spec is not None
    with pytest.raises(DependencyScopeError) as error:
        check_scopes(spec)
    message = str(error.value)
    assert "Wide (scope GLOBAL)" in message
    assert "Model (scope REPLICA)" in message


def test_unfillable_parameters_are_reported() -> None:
    @dependency()
    class NeedsValue:
        def __init__(self, value: int) -> None:
            self.value = value

    spec = spec_of(NeedsValue)
    assert spec is not None
    with pytest.raises(DependencyError, match="cannot fill: value"):
        check_scopes(spec)


def test_failing_constructor_names_the_dependency() -> None:
    @dependency(scope=Scope.REPLICA)
    class Broken:
        def __init__(self) -> None:
            raise FileNotFoundError("weights.pth")

    spec = spec_of(Broken)
    assert spec is not None
    with pytest.raises(DependencyError, match=r"Broken failed: weights\.pth"):
        Resolver().resolve(spec, contextlib.ExitStack())


def test_replica_close_runs_generator_cleanup() -> None:
    events: list[str] = []

    @dependency(scope=Scope.REPLICA)
    def resource():  # type: ignore[no-untyped-def]
        events.append("setup")
        yield "resource"
        events.append("teardown")

    resolver = Resolver()
    spec = spec_of(resource)
    assert spec is not None
    assert resolver.resolve(spec, contextlib.ExitStack()) == "resource"
    resolver.close()
    assert events == ["setup", "teardown"]


def test_warm_up_builds_replica_dependencies_before_the_first_event() -> None:
    built.clear()
    resolver = Resolver()
    resolver.warm_up(handler, scopes={Scope.REPLICA})
    assert built == ["model"] or built == ["settings", "model"]
    with contextlib.ExitStack() as call:
        resolver.solve(get_dependant(handler), call)
    assert built.count("model") == 1


def test_a_dependency_asked_twice_in_one_call_is_built_once() -> None:
    opened: list[int] = []

    @dependency(scope=Scope.NO_SCOPE)
    def session():  # type: ignore[no-untyped-def]
        opened.append(len(opened))
        yield object()

    @dependency(scope=Scope.NO_SCOPE)
    class Repository:
        def __init__(self, session: Annotated[object, session]) -> None:
            self.session = session

    def endpoint(repo: Repository, session: Annotated[object, session]) -> bool:
        return repo.session is session

    resolver = Resolver()
    for _ in range(2):
        with resolver.call() as call:
            assert endpoint(**resolver.solve(get_dependant(endpoint), call))
    assert opened == [0, 1]  # once per call, shared inside it


def test_shutdown_closes_every_scope_narrowest_first() -> None:
    events: list[str] = []

    def lifecycle(name: str, scope: Scope):  # type: ignore[no-untyped-def]
        def provide():  # type: ignore[no-untyped-def]
            events.append(f"open {name}")
            try:
                yield name
            finally:
                events.append(f"close {name}")

        provide.__qualname__ = name
        return dependency(scope=scope)(provide)

    global_dep = lifecycle("global", Scope.GLOBAL)
    process_dep = lifecycle("process", Scope.PROCESS)
    replica_dep = lifecycle("replica", Scope.REPLICA)
    call_dep = lifecycle("call", Scope.NO_SCOPE)

    def handler(
        g: Annotated[str, global_dep],
        p: Annotated[str, process_dep],
        r: Annotated[str, replica_dep],
        c: Annotated[str, call_dep],
    ) -> str:
        return g + p + r + c

    resolver = Resolver()
    with resolver.call() as call:
        handler(**resolver.solve(get_dependant(handler), call))
    assert events[-1] == "close call"
    resolver.shutdown()
    assert events[-3:] == ["close replica", "close process", "close global"]


def test_request_dependencies_must_be_per_call_and_only_in_endpoints() -> None:
    from tideflow import consumer
    from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
    from tideflow.io.local import LocalBucket, LocalFileChangeStream
    from tideflow.requests import Request

    @dependency(scope=Scope.REPLICA)
    class Cached:
        def __init__(self, request: Request) -> None:
            self.request = request

    spec = spec_of(Cached)
    assert spec is not None
    with pytest.raises(DependencyScopeError, match="takes the Request"):
        check_scopes(spec)

    @dependency(scope=Scope.NO_SCOPE)
    class Caller:
        def __init__(self, request: Request) -> None:
            self.client = request.client

    def handler(event: str, caller: Caller) -> None: ...

    with pytest.raises(DependencyError, match="takes the Request"):
        Resolver().solve(get_dependant(handler), contextlib.ExitStack())
    stream = LocalFileChangeStream(LocalBucket("unused"))
    table = DuckDBTable(DuckDBDataset("unused.duckdb"), "unused")
    with pytest.raises(DependencyError, match="only endpoints have one"):
        consumer(source=stream, sink=table)(handler)


def test_overrides_replace_a_provider_in_its_scope_and_are_read_live() -> None:
    @dependency(scope=Scope.PROCESS)
    def real_settings() -> str:
        raise AssertionError("overridden: never built")

    @dependency(scope=Scope.REPLICA)
    class Greeting:
        def __init__(self, name: Annotated[str, real_settings]) -> None:
            self.text = f"hello {name}"

    def greet(event: str, greeting: Greeting) -> str:
        return greeting.text

    def first() -> str:
        return "first"

    def second() -> str:
        return "second"

    overrides: dict[Any, Any] = {real_settings: first}
    one = Resolver(overrides=overrides)
    other = Resolver(overrides={real_settings: second})
    with contextlib.ExitStack() as call:
        assert one.solve(get_dependant(greet), call)["greeting"].text == "hello first"
        # Cached by the provider that built it: another override, another value.
        assert other.solve(get_dependant(greet), call)["greeting"].text == "hello second"

        @dependency(scope=Scope.REPLICA)
        class FakeGreeting:
            text = "swapped"

        overrides[Greeting] = FakeGreeting  # after the resolver was made: still applies
        assert one.solve(get_dependant(greet), call)["greeting"].text == "swapped"


def test_warm_up_follows_overrides() -> None:
    @dependency(scope=Scope.REPLICA)
    def model() -> str:
        raise AssertionError("overridden: never built")

    built.clear()

    def fake_model() -> str:
        built.append("fake")
        return "fake"

    def handler(event: str, m: Annotated[str, model]) -> str:
        return m

    resolver = Resolver(overrides={model: fake_model})
    resolver.warm_up(handler, scopes={Scope.REPLICA})
    assert built == ["fake"]

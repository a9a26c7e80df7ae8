import contextlib
from typing import Annotated

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

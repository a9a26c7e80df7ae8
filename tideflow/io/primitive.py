"""Declarative primitives: what exists, and how to plan, create and remove it."""

from __future__ import annotations

import dataclasses
import enum
import functools
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

from tideflow.exceptions import ConfigError, PrimitiveError
from tideflow.io.options import OptionCheck, table_schema
from tideflow.io.schema import Field, schema_of
from tideflow.io.strategies import (
    DeadLetterQueue,
    ObjectStore,
    Sink,
    Source,
    StoredObject,
    TableReader,
)

if TYPE_CHECKING:
    from tideflow.io.failures import FailureLog
    from tideflow.io.schema import Field


class PlanAction(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    NO_CHANGE = "no change"
    DELETE = "delete"

    @classmethod
    def of_parts(cls, parts: Iterable[PlanStep]) -> PlanAction:
        """The action of a resource made of ``parts`` (being applied): no change, or create,
        when every part says so; otherwise update."""
        actions = {part.action for part in parts}
        if actions in ({cls.NO_CHANGE}, {cls.CREATE}):
            return actions.pop()
        return cls.UPDATE


@dataclasses.dataclass(frozen=True)
class PlanStep:
    """What applying (or destroying) one primitive does, with its sub-resources."""

    primitive_id: str
    kind: str
    action: PlanAction
    detail: str = ""
    children: tuple[PlanStep, ...] = ()

    @property
    def changes(self) -> bool:
        return self.action is not PlanAction.NO_CHANGE or any(c.changes for c in self.children)


class Primitive:
    """A resource a flow manages: a bucket, a stream, a dataset, a table.

    Subclasses implement ``primitive_id``, ``plan``, ``apply`` and ``destroy``;
    ``apply`` and ``destroy`` are idempotent and return what they did. The options a
    primitive takes in ``.options()`` are declared in ``option_checks``, each with the check
    of its values; constructors set theirs through ``options()`` too.
    """

    option_checks: ClassVar[Mapping[str, OptionCheck]] = {}

    def primitive_id(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement primitive_id()")

    def plan(self) -> PlanStep:
        """What ``apply`` would do, read from what exists now."""
        raise NotImplementedError(f"{type(self).__name__} must implement plan()")

    def plan_destroy(self) -> PlanStep:
        """What ``destroy`` would do, read from what exists now."""
        raise NotImplementedError(f"{type(self).__name__} must implement plan_destroy()")

    def apply(self) -> PlanStep:
        raise NotImplementedError(f"{type(self).__name__} must implement apply()")

    def destroy(self) -> PlanStep:
        raise NotImplementedError(f"{type(self).__name__} must implement destroy()")

    def depends_on(self) -> tuple[Primitive, ...]:
        """Primitives that must exist before this one (apply order)."""
        return ()

    def check(self) -> PlanStep:
        """What ``tideflow run --only consumers`` verifies before it starts: by default the
        plan; a primitive whose plan needs more rights than a consumer has checks less."""
        return self.plan()

    def options(self, **settings: Any) -> Self:
        """Set options after construction, BuildFlow style: ``Table(...).options(schema=Row)``.

        An unknown option or a bad value raises ``ConfigError`` naming it.
        """
        for name, value in settings.items():
            check = self.option_checks.get(name)
            if check is None:
                known = ", ".join(sorted(self.option_checks)) or "none"
                raise ConfigError(
                    f"{type(self).__name__}.options() got an unknown option {name!r} "
                    f"(known: {known})"
                )
            problem = check(value)
            if problem:
                raise ConfigError(f"{type(self).__name__}.options({name}={value!r}): {problem}")
            setattr(self, name, value)
        return self

    def check_options(self) -> None:
        """Raise ``ConfigError`` when an option is bad now (set as an attribute since) or
        the options disagree with each other; primitives call it before they plan or run."""
        for name, check in self.option_checks.items():
            value = getattr(self, name)
            problem = check(value)
            if problem:
                raise ConfigError(f"{type(self).__name__} {name}={value!r}: {problem}")
        problem = self.options_problem()
        if problem:
            raise ConfigError(f"{type(self).__name__}: {problem}")

    def options_problem(self) -> str | None:
        """What is wrong with the options together (each being fine); None when nothing."""
        return None

    def step(self, action: PlanAction, detail: str = "", *children: PlanStep) -> PlanStep:
        return PlanStep(self.primitive_id(), type(self).__name__, action, detail, children)

    def table_step(
        self, columns: Sequence[str], existing: Sequence[str] | None, changes: Sequence[str]
    ) -> PlanStep:
        """A table's plan from its declared ``columns`` and the ``existing`` ones (None: no
        table): CREATE, or UPDATE adding the missing columns and making ``changes``, or
        NO_CHANGE."""
        if existing is None:
            return self.step(PlanAction.CREATE, f"columns: {', '.join(columns)}")
        missing = [name for name in columns if name not in existing]
        if missing:
            changes = [f"add columns: {', '.join(missing)}", *changes]
        if changes:
            return self.step(PlanAction.UPDATE, "; ".join(changes))
        return self.step(PlanAction.NO_CHANGE)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.primitive_id()!r})"


class ProcessLocal:
    """Keeps its clients or pools (the ``process_local`` attributes, made on first use
    under ``_lock``) in the process that made them: pickled to a replica process, it
    arrives without them and makes its own there."""

    process_local: ClassVar[tuple[str, ...]] = ()
    _lock: threading.Lock

    def __getstate__(self) -> dict[str, Any]:
        state = {name: value for name, value in self.__dict__.items() if name != "_lock"}
        state.update(dict.fromkeys(self.process_local))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class BucketPrimitive(Primitive):
    """A bucket: ``client()`` is the provider's own client (what BuildFlow's tutorial
    uses), ``objects()`` the same portable ``ObjectStore`` on every stack."""

    bucket_name: str
    force_destroy: bool = False

    def removal_step(self, exists: bool, *, contents: str) -> PlanStep:
        """What ``destroy`` does to the bucket: deletes it with ``contents`` when
        ``force_destroy``, else only if it is empty."""
        if not exists:
            return self.step(PlanAction.NO_CHANGE, "already gone")
        detail = f"with {contents}" if self.force_destroy else "only if empty"
        return self.step(PlanAction.DELETE, detail)

    def client(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement client()")

    def objects(self) -> ObjectStore:
        raise NotImplementedError(f"{type(self).__name__} must implement objects()")

    def read_bytes(self, key: str, *, version: str | None = None) -> bytes:
        """An object version's bytes, for events (``ObjectReader``)."""
        return self.objects().get(key, version=version)


class SourcePrimitive(Primitive):
    """A primitive consumers read events from; a delivery is leased for ``lease_seconds``
    and extended while a replica works on it."""

    lease_seconds: float = 60.0

    def source(self) -> Source:
        raise NotImplementedError(f"{type(self).__name__} must implement source()")

    def dead_letter_queue(self) -> DeadLetterQueue:
        raise NotImplementedError(f"{type(self).__name__} must implement dead_letter_queue()")

    def bucket_primitive(self) -> BucketPrimitive | None:
        """The bucket whose changes this stream carries (None for other sources)."""
        for dependency in self.depends_on():
            if isinstance(dependency, BucketPrimitive):
                return dependency
        return None

    def replay(self, objects: Iterable[StoredObject]) -> int:
        """Deliver a change event again for each of ``objects`` (current versions listed by the
        bucket's ``objects().list()``), through this same stream, to every consumer of it;
        how many events were emitted. Used by ``tideflow replay`` so that a new model
        classifies images already stored.

        Contract for implementations: each event must be indistinguishable from the original
        one for the object's version (same ``bucket``, ``file_path``, ``version``, hence the
        same ``event_id``), so sinks stay idempotent: a consumer that writes the same row
        key again adds nothing. It must be safe while ``tideflow run`` is running (another
        process): the running consumers pick the events up like any other. An event already
        pending or in flight for that version need not be emitted twice. Objects that no
        longer exist are skipped (not counted). Local: the journal's events for those
        versions go back to pending (or are journaled when the stream never had them); gcp:
        a message like Storage's notification is published to the stream's topic; aws: a
        message like S3's notification is sent to the queue.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot replay events")


class SinkPrimitive(Primitive):
    """A primitive consumers write rows to, and the service reads back.

    Its row type is the ``schema`` option (a dataclass); without one, a consumer's return
    type gives it.
    """

    option_checks: ClassVar[Mapping[str, OptionCheck]] = {"schema": table_schema}
    table_name: str
    schema: type | None = None

    def fields(self) -> tuple[Field, ...]:
        if self.schema is None:
            raise PrimitiveError(
                f"table {self.table_name} has no schema: declare it with "
                f"{type(self).__name__}(...).options(schema=YourRowDataclass)"
            )
        return schema_of(self.schema)

    def sink(self) -> Sink:
        raise NotImplementedError(f"{type(self).__name__} must implement sink()")

    def reader(self) -> TableReader:
        raise NotImplementedError(f"{type(self).__name__} must implement reader()")

    def sibling(self, table_name: str, *, schema: type) -> SinkPrimitive:
        """Another table of the same warehouse and dataset, with row type ``schema``."""
        raise NotImplementedError(f"{type(self).__name__} must implement sibling()")

    @functools.cached_property
    def failure_table(self) -> SinkPrimitive:
        """``<table>_failures``: where the runtime records dead-lettered events."""
        from tideflow.types import Failure

        return self.sibling(f"{self.table_name}_failures", schema=Failure)

    def failure_log(self) -> FailureLog:
        from tideflow.io.failures import FailureLog

        return FailureLog(self.failure_table)

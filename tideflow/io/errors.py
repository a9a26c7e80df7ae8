"""SDK errors translated into tideflow errors at the adapter boundary, written once.

Each provider describes its SDK in an ``ErrorMap`` (modelled on HTTPX's
``map_httpcore_exceptions``): the exception classes it raises (``catches``), how to read
an error's code (``code``), which errors pass with time (``transient``) and its rules
(``translate``). Every SDK call then runs inside ``translated``, which names the resource
and what was being done, keeps the SDK error as ``__cause__`` (``raise ... from exc``) and
raises the tideflow error the caller chose (``PrimitiveError`` for plan/apply/destroy,
``SourceError`` and ``SinkError`` at run time, or ``unavailable`` for a transient
failure, when given)::

    with S3_ERRORS.translated(
        resource="bucket s3://photos",
        action="create",
        error=PrimitiveError,
        permission="s3:CreateBucket",
        cases={"BucketAlreadyOwnedByYou": None, "BucketAlreadyExists": taken},
    ):
        s3.create_bucket(Bucket="photos")

``cases`` is the call's own table, read before the provider's rules, in order: an
exception class, an SDK error code, a set of codes or a predicate, mapped to the error to
raise (or a function of the SDK error that makes it), or to None: the block then ends
quietly, as for a resource that is already gone. ``admin(action, resource, permission)``
is the same with ``PrimitiveError``, for plan, apply and destroy.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager

from tideflow.exceptions import PrimitiveError, TideflowError

Case = type[BaseException] | str | frozenset[str] | Callable[[BaseException], bool]
Outcome = TideflowError | Callable[[BaseException], TideflowError] | None


def one_line(text: str, *, limit: int = 400) -> str:
    """``text`` without line breaks, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclasses.dataclass(frozen=True)
class Call:
    """The call that failed: ``action`` on ``resource``, needing ``permission``; a failure
    becomes an ``error``."""

    resource: str
    action: str
    error: type[TideflowError]
    permission: str | None = None

    def failed(self, why: str) -> TideflowError:
        """``error`` saying the call could not be made, and ``why``."""
        return self.error(f"cannot {self.action} {self.resource}: {why}")


class ErrorMap:
    """An SDK's errors and the rules that turn them into tideflow errors."""

    catches: tuple[type[BaseException], ...] = ()

    def code(self, exc: BaseException) -> str:
        """The SDK's code for ``exc`` (``NoSuchKey``, ``404`` ...); '' when it has none."""
        return ""

    def transient(self, exc: BaseException) -> bool:
        """Whether the same call may succeed later (unreachable, overloaded, throttled)."""
        return False

    def translate(self, exc: BaseException, call: Call) -> TideflowError:
        """The tideflow error for ``exc``, raised by ``call``."""
        raise NotImplementedError(f"{type(self).__name__} must implement translate()")

    def matches(self, case: Case, exc: BaseException) -> bool:
        if isinstance(case, type):
            return isinstance(exc, case)
        if isinstance(case, str):
            return self.code(exc) == case
        if isinstance(case, frozenset):
            return self.code(exc) in case
        return case(exc)

    @contextlib.contextmanager
    def translated(
        self,
        *,
        resource: str,
        action: str,
        error: type[TideflowError],
        permission: str | None = None,
        unavailable: type[TideflowError] | None = None,
        cases: Mapping[Case, Outcome] | None = None,
    ) -> Iterator[None]:
        """Run the block, turning the SDK's errors into tideflow errors (see the module)."""
        try:
            yield
        except self.catches as exc:
            for case, outcome in (cases or {}).items():
                if self.matches(case, exc):
                    if outcome is None:
                        return
                    raise (outcome if isinstance(outcome, TideflowError) else outcome(exc)) from exc
            if unavailable is not None and self.transient(exc):
                error = unavailable
            raise self.translate(exc, Call(resource, action, error, permission)) from exc

    def admin(
        self,
        action: str,
        resource: str,
        permission: str | None = None,
        *,
        cases: Mapping[Case, Outcome] | None = None,
    ) -> AbstractContextManager[None]:
        """A plan, apply or destroy call on ``resource``: its errors become
        ``PrimitiveError``s."""
        return self.translated(
            resource=resource,
            action=action,
            error=PrimitiveError,
            permission=permission,
            cases=cases,
        )

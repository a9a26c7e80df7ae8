"""The provider registry: a stack name -> the module that builds its primitives.

Modelled on Kombu's transport aliases. A provider module is imported only when its stack
is chosen, so the local stack needs no cloud SDK installed::

    stack = get_stack("gcp")
    bucket = stack.bucket("image-bucket")
    stream = stack.file_change_stream(bucket)
    table = stack.table(stack.dataset("images"), "results").options(schema=Row)

Each provider's ``Stack`` reads its own settings from the environment once, when it is
made (the CLI has loaded the project's ``.env``), into a typed object it passes to the
primitives it builds (``GcpSettings``, ``AwsSettings``, ``LocalSettings``); the names an
app passes are logical names, the defaults for the real resources' names.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib

from tideflow.exceptions import ConfigError
from tideflow.extras import requires_extra
from tideflow.io.primitive import BucketPrimitive, Primitive, SinkPrimitive, SourcePrimitive

PROVIDERS: dict[str, str] = {
    "local": "tideflow.io.local.stack:LocalStack",
    "gcp": "tideflow.io.gcp.stack:GcpStack",
    "aws": "tideflow.io.aws.stack:AwsStack",
}
# The package extra that brings a provider's SDK (the local stack needs only the core).
PROVIDER_EXTRAS: dict[str, str] = {"gcp": "gcp", "aws": "aws"}


class Stack:
    """Builds a flow's primitives on one provider; each method names what it lacks."""

    name: str = ""

    def bucket(self, name: str) -> BucketPrimitive:
        raise NotImplementedError(f"{type(self).__name__} must implement bucket()")

    def file_change_stream(self, bucket: BucketPrimitive) -> SourcePrimitive:
        raise NotImplementedError(f"{type(self).__name__} must implement file_change_stream()")

    def dataset(self, name: str) -> Primitive:
        raise NotImplementedError(f"{type(self).__name__} must implement dataset()")

    def table(self, dataset: Primitive, name: str) -> SinkPrimitive:
        raise NotImplementedError(f"{type(self).__name__} must implement table()")


def get_stack(name: str) -> Stack:
    """The provider registered as ``name``, imported now."""
    target = PROVIDERS.get(name)
    if target is None:
        close = difflib.get_close_matches(name, PROVIDERS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(PROVIDERS)}"
        raise ConfigError(f"no such stack {name!r}; {hint}")
    module_name, _, class_name = target.partition(":")
    extra = PROVIDER_EXTRAS.get(name)
    with requires_extra(extra, f"the {name} stack") if extra else contextlib.nullcontext():
        module = importlib.import_module(module_name)
    stack: Stack = getattr(module, class_name)()
    return stack

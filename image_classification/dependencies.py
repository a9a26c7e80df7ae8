"""What endpoints and the consumer ask for by annotation (``model: ModelDep``)."""

from __future__ import annotations

from typing import Annotated

from image_classification import primitives
from image_classification.model import load_classifier
from image_classification.settings import Settings, get_settings
from tideflow import Scope, dependency
from tideflow.dependencies import TableDependency, TableDependencyBuilder


def _settings() -> Settings:
    return get_settings()


SettingsDep = Annotated[Settings, dependency(scope=Scope.PROCESS)(_settings)]


@dependency(scope=Scope.REPLICA)
class ModelDep:
    """The classifier, loaded once per replica (and once by the HTTP service for /classify).

    Its thread count is explicit so that replicas sharing a machine split its cores instead
    of each starting one thread per core.
    """

    def __init__(self, settings: SettingsDep) -> None:
        self.classifier = load_classifier(
            model=settings.model,
            engine=settings.engine,
            weights_path=settings.weights_path,
            threads=settings.threads_per_model,
        )
        self.top_k = settings.top_k


@dependency(scope=Scope.PROCESS)
class ObjectsDep:
    """``.objects``: the bucket's portable store (uploads in, thumbnails out), any stack."""

    def __init__(self) -> None:
        self.objects = primitives.bucket.objects()


@dependency(scope=Scope.PROCESS)
class FailuresDep:
    """``.failures``: the results table's failure log (images that could not be classified)."""

    def __init__(self) -> None:
        self.failures = primitives.table.failure_log()


# `.table`: a TableReader over the results table.
ResultsTableDep = Annotated[TableDependency, TableDependencyBuilder(primitives.table)]

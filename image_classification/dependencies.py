"""What endpoints and the consumer ask for by annotation (``model: ModelDep``)."""

from __future__ import annotations

from typing import Annotated

from image_classification import primitives
from image_classification.model import ClassifiedImage, load_classifier
from image_classification.model.batching import BatchingClassifier
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
    of each starting one thread per core. ``classify`` batches the images the replica's
    consumer threads classify at the same time into one inference call.
    """

    def __init__(self, settings: SettingsDep) -> None:
        self.classifier = load_classifier(
            model=settings.model,
            engine=settings.engine,
            weights_path=settings.weights_path,
            threads=settings.threads_per_model,
        )
        self.top_k = settings.top_k
        self._batching = BatchingClassifier(
            self.classifier,
            max_batch=settings.batch_size,
            max_delay=settings.batch_max_delay_ms / 1000,
        )

    def classify(self, image: bytes) -> ClassifiedImage:
        """The top-k labels of one encoded image, plus its format and size."""
        return self._batching.classify_with_info(image, top_k=self.top_k)


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

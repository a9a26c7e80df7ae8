"""What endpoints and the consumer ask for by annotation (``model: ModelDep``,
``table: ResultsTable``).

Two roots, the settings and the primitives, are bound by ``build_flow`` (``bindings``, in
the flow's ``dependency_overrides``); everything else is built from them once per replica
(the HTTP service is one), so two apps built in one process share no value. Tests override
any of them (``flow.dependency_overrides[results_table] = ...``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NoReturn

from image_classification.model import ClassifiedImage, load_classifier
from image_classification.model.batching import BatchingClassifier
from image_classification.primitives import Primitives
from image_classification.settings import Settings
from tideflow import Scope, dependency
from tideflow.exceptions import DependencyError
from tideflow.io.failures import FailureLog
from tideflow.io.strategies import ObjectStore, TableReader


def _unbound(name: str) -> NoReturn:
    raise DependencyError(
        f"{name} is bound by build_flow(settings): build the app with "
        "image_classification.flow.build_flow, not from its parts"
    )


@dependency(scope=Scope.PROCESS)
def app_settings() -> Settings:
    """The settings the app was built with."""
    _unbound("app_settings")


@dependency(scope=Scope.PROCESS)
def app_primitives() -> Primitives:
    """The primitives the app was built with."""
    _unbound("app_primitives")


SettingsDep = Annotated[Settings, app_settings]
PrimitivesDep = Annotated[Primitives, app_primitives]


def bindings(
    settings: Settings, primitives: Primitives
) -> dict[Callable[..., Any], Callable[..., Any]]:
    """The overrides that bind ``app_settings`` and ``app_primitives`` to these."""

    def bound_settings() -> Settings:
        return settings

    def bound_primitives() -> Primitives:
        return primitives

    return {app_settings: bound_settings, app_primitives: bound_primitives}


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


@dependency(scope=Scope.REPLICA)
def object_store(primitives: PrimitivesDep) -> ObjectStore:
    """The bucket's portable store (uploads in, thumbnails out), any stack."""
    return primitives.bucket.objects()


@dependency(scope=Scope.REPLICA)
def failure_log(primitives: PrimitivesDep) -> FailureLog:
    """The results table's failure log (images that could not be classified)."""
    return primitives.table.failure_log()


@dependency(scope=Scope.REPLICA)
def results_table(primitives: PrimitivesDep) -> TableReader:
    """A reader of the results table."""
    return primitives.table.reader()


Objects = Annotated[ObjectStore, object_store]
Failures = Annotated[FailureLog, failure_log]
ResultsTable = Annotated[TableReader, results_table]

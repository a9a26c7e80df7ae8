"""The consumer: each new object in the bucket becomes one row of top-k labels."""

from __future__ import annotations

import datetime
import posixpath
import time

from image_classification.dependencies import ModelDep
from image_classification.image_ids import image_id_for
from image_classification.model import InvalidImageError
from image_classification.primitives import Primitives
from image_classification.processors.uploads import IMAGE_NAME_METADATA, display_name, mime_type_of
from image_classification.schemas import Classification, ImageClassificationRow
from image_classification.settings import Settings
from tideflow import Consumer, consumer
from tideflow.exceptions import NonRetryableError, ObjectNotFoundError, ObjectSupersededError
from tideflow.types import FileChangeEvent


def classify_image(file_event: FileChangeEvent, model: ModelDep) -> ImageClassificationRow:
    """Classify one stored image.

    A file that can never be classified (not an image, corrupt, a decompression bomb, or
    deleted before its turn) raises ``NonRetryableError``: it is dead-lettered at once with
    the reason, which the status API and the results page show as ``failed``.
    """
    started = time.perf_counter()
    try:
        result = model.classify(file_event.blob)
    except InvalidImageError as exc:
        raise NonRetryableError(str(exc)) from exc
    except ObjectSupersededError:
        raise  # "superseded by version N": the same outcome on every stack
    except ObjectNotFoundError as exc:
        raise NonRetryableError("The file was deleted before it could be classified.") from exc
    latency_ms = (time.perf_counter() - started) * 1000
    # Uploads carry the client's file name; files copied into the bucket have their own.
    name = file_event.metadata.get(IMAGE_NAME_METADATA) or posixpath.basename(file_event.file_path)
    return ImageClassificationRow(
        image_id=image_id_for(file_event.file_path, file_event.version),
        image_name=display_name(name),
        upload=file_event.event_time,
        classifications=[
            Classification(label=c.label, confidence=c.confidence) for c in result.classifications
        ],
        model_id=model.classifier.model_id,
        width=result.width,
        height=result.height,
        size_bytes=file_event.size,
        content_type=mime_type_of(result.format),
        latency_ms=round(latency_ms, 3),
        classified_at=datetime.datetime.now(datetime.UTC),
    )


def build_consumer(settings: Settings, primitives: Primitives) -> Consumer:
    """``classify_image`` on the stream of new objects, writing to the results table.

    A replica takes up to 8 events at once (their rows are written in one transaction) and
    classifies BATCH_SIZE of them at a time: decoded in parallel threads, then one
    inference call for all of them (``ModelDep.classify``). BATCH_SIZE=1: one at a time.
    """
    return consumer(
        source=primitives.file_change_stream,
        sink=primitives.table,
        batch_size=max(8, settings.batch_size),
        num_concurrency=settings.batch_size,
        # BuildFlow's autoscaler options; unset settings leave tideflow's defaults.
        min_replicas=settings.min_replicas,
        max_replicas=settings.max_replicas,
        autoscale_frequency_secs=settings.autoscale_frequency_s,
        consumer_backlog_burn_threshold=settings.autoscale_backlog_burn_s,
        consumer_cpu_percent_target=settings.autoscale_cpu_target,
    )(classify_image)

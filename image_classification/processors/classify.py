"""``POST /classify``: an image's labels now, without storing it.

It decodes in the HTTP service's process, so it is bounded (``processors/classify_guard.py``).
"""

from __future__ import annotations

import time

from fastapi import HTTPException
from pydantic import BaseModel

from image_classification.dependencies import ModelDep, SettingsDep
from image_classification.model import InvalidImageError
from image_classification.processors.auth import Authorized
from image_classification.processors.classify_guard import Slots, check_pixel_budget
from image_classification.processors.errors import error_responses
from image_classification.processors.metrics import CLASSIFY_REQUEST_SECONDS
from image_classification.processors.results import Label
from image_classification.processors.uploads import ImageFile, checked_image
from tideflow import Router

CLASSIFY_PATH = "/classify"

router = Router()


class ClassifyAnswer(BaseModel):
    classifications: list[Label]
    model_id: str
    latency_ms: float


@router.endpoint(
    CLASSIFY_PATH,
    method="POST",
    response_model=ClassifyAnswer,
    responses=error_responses(400, 401, 403, 413, 415, 422, 503),
    summary="Classify an image now, without storing it",
)
def classify(
    auth: Authorized,
    model: ModelDep,
    settings: SettingsDep,
    slots: Slots,
    image_file: ImageFile = None,
) -> ClassifyAnswer:
    upload, _ = checked_image(image_file, settings)
    # Bounded: this decodes in the process that owns the journal and the warehouse writer.
    with slots.take():
        data = upload.file.read()
        check_pixel_budget(
            data,
            min_size=model.classifier.preprocess.resize,
            max_pixels=settings.classify_max_pixels,
        )
        started = time.perf_counter()
        try:
            result = model.classify(data)
        except InvalidImageError as exc:
            raise HTTPException(422, str(exc)) from exc
        seconds = time.perf_counter() - started
        del data
    CLASSIFY_REQUEST_SECONDS.observe(seconds)
    return ClassifyAnswer(
        classifications=[
            Label(label=c.label, confidence=c.confidence) for c in result.classifications
        ],
        model_id=model.classifier.model_id,
        latency_ms=round(seconds * 1000, 2),
    )

"""Adaptive batching: images classified from several threads share one inference call.

Each caller decodes its own image in its own thread (Pillow releases the GIL, so decoding
runs in parallel), then its pixels wait for the next batch. A batch runs as soon as every
caller that has started decoding is waiting, so a lone image runs at once and low traffic
gets no added latency; under load it runs when ``max_batch`` images wait or the oldest has
waited ``max_delay`` seconds. The caller that completes a batch runs it (no extra thread),
one batch at a time, so the engine's threads are not oversubscribed. An image that cannot
be decoded fails in its own caller only: it never joins a batch. This is TorchServe's
``batch_size``/``max_batch_delay``, without the wait when nothing else is coming.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np

from .classifier import Classifier, TensorClassifier
from .datatypes import ClassifiedImage, DecodedImage


@dataclasses.dataclass
class _Waiting:
    decoded: DecodedImage
    top_k: int
    since: float
    result: ClassifiedImage | None = None
    error: BaseException | None = None
    done: bool = False


class BatchingClassifier:
    """``classify_with_info`` for many threads at once; ``classifier`` is the wrapped one.

    ``max_batch=1`` classifies each image on its own (no batching). Engines that take only
    encoded images (ImageAI) are called directly.
    """

    def __init__(self, classifier: Classifier, *, max_batch: int, max_delay: float) -> None:
        if max_batch < 1 or max_delay < 0:
            raise ValueError("max_batch must be >= 1 and max_delay >= 0")
        self.classifier = classifier
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._changed = threading.Condition()
        self._decoding = 0  # callers between entering and joining the queue
        self._queue: list[_Waiting] = []
        self._running = False
        self.batches = 0  # inference calls made, and the images they held
        self.images = 0

    def classify_with_info(self, image: bytes, top_k: int = 5) -> ClassifiedImage:
        classifier = self.classifier
        if self.max_batch == 1 or not isinstance(classifier, TensorClassifier):
            return classifier.classify_with_info(image, top_k=top_k)
        with self._changed:
            self._decoding += 1
        try:
            decoded = classifier.decode(image)
        except BaseException:
            with self._changed:
                self._decoding -= 1
                self._changed.notify_all()
            raise
        waiting = _Waiting(decoded, top_k, time.monotonic())
        with self._changed:
            self._decoding -= 1
            self._queue.append(waiting)
            self._changed.notify_all()
            while not waiting.done:
                batch = self._take_batch()
                if batch:
                    self._run(classifier, batch)
                else:
                    self._changed.wait(self._wait_seconds())
        if waiting.error is not None:
            raise waiting.error
        assert waiting.result is not None
        return waiting.result

    def _take_batch(self) -> list[_Waiting]:
        """The next batch when one is due and none is running (under the lock), else []."""
        if self._running or not self._queue:
            return []
        due = (
            self._decoding == 0
            or len(self._queue) >= self.max_batch
            or time.monotonic() - self._queue[0].since >= self.max_delay
        )
        if not due:
            return []
        batch = self._queue[: self.max_batch]
        del self._queue[: self.max_batch]
        self._running = True
        return batch

    def _wait_seconds(self) -> float | None:
        if self._running or not self._queue:
            return None  # woken when the running batch ends or a caller arrives
        return max(self._queue[0].since + self.max_delay - time.monotonic(), 0.0)

    def _run(self, classifier: TensorClassifier, batch: list[_Waiting]) -> None:
        """Classify ``batch`` with the lock released, then hand out the results."""
        self._changed.release()
        try:
            try:
                pixels = np.stack([waiting.decoded.pixels for waiting in batch])
                probabilities = classifier.probabilities(pixels)
            except Exception as exc:  # the engine failed: every image of the batch says so
                for waiting in batch:
                    waiting.error = exc
            else:
                for waiting, row in zip(batch, probabilities, strict=True):
                    try:
                        waiting.result = classifier.labelled(waiting.decoded, row, waiting.top_k)
                    except Exception as exc:
                        waiting.error = exc
        finally:
            self._changed.acquire()
            for waiting in batch:
                waiting.done = True
            self.batches += 1
            self.images += len(batch)
            self._running = False
            self._changed.notify_all()

"""The app's own Prometheus metrics, next to tideflow's (events, queue depth, dead letters)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

UPLOADS = Counter(
    "image_uploads",
    "POST /image-upload requests by outcome: accepted, too_large, not_an_image, bad_request, "
    "storage_full (507), not_stored (503).",
    ["outcome"],
)
CLASSIFY_REQUEST_SECONDS = Histogram(
    "image_classify_request_seconds",
    "Time POST /classify spent decoding and classifying one image.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

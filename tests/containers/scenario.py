"""Several machines as containers of the serving image, on a cloud stack's emulators.

``apply --yes`` runs once (``docker run IMG apply --yes``); then one service container
(``run --only service``) and two consumer containers (``run --only consumers``) start
together. Uploads through the service and objects put straight into the bucket become one
row each, while one consumer is killed with SIGKILL mid-stream (its leases run out and the
queue hands its events to the other; it restarts on its volume) and then a busy one is
stopped with SIGTERM (``podman stop``): it finishes or hands back its events within the
grace period and exits 0. Nothing is lost, nothing is written twice.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from PIL import Image

from tests.app.support import upload
from tests.aws.support import wait_until
from tests.containers.podman import Container, Podman

# Each phase: uploads through the service, then objects put into the bucket (small: the
# point is where they go, not how many).
UPLOADS = 14
DROPPED = 6
# SIGTERM's grace in `podman stop`; `tideflow run` needs about 10 s (8 s for batches in
# flight, then it hands the rest back and exits).
STOP_GRACE = 30


@dataclass
class CloudStack:
    """What the scenario needs of a stack: the containers' settings and the emulators."""

    env: dict[str, str]
    put_object: Callable[[str, bytes], None]
    # Distinct image ids in the warehouse.
    distinct_rows: Callable[[], int]
    # Events leased by some consumer now, where the queue can tell (SQS); else None.
    in_flight: Callable[[], int] | None = None


def png(index: int) -> bytes:
    image = Image.new("RGB", (96, 96), ((index * 37) % 256, (index * 91) % 256, index % 256))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def run_machines(podman: Podman, image: str, stack: CloudStack) -> None:
    applied = podman.run_once(image, "apply", "--yes", env=stack.env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    consumer_command = ("run", "--only", "consumers", "--replicas", "1")
    service = podman.start(image, "run", "--only", "service", env=stack.env)
    first, second = (podman.start(image, *consumer_command, env=stack.env) for _ in range(2))
    service.wait_ready(consumers=False)
    first.wait_ready(consumers=True)
    second.wait_ready(consumers=True)

    def logs() -> str:
        return "\n".join(f"--- {c.id[:12]}\n{c.logs()[-2500:]}" for c in (first, second))

    def total() -> int:
        return int(httpx.get(f"{service.base_url}/api/results", timeout=30).json()["total"])

    # SIGKILL one consumer once both are at work, while events still arrive; it is started
    # again at once (as a restart policy would) and is back while its leases run out.
    sender = send(service, stack, start=0)
    wait_until(
        lambda: first.handled() > 0 and second.handled() > 0,
        timeout=120,
        what="both consumers at work",
        log=logs,
    )
    second.kill()
    rows_at_kill = total()
    assert second.state()["ExitCode"] == 137
    second.restart()
    sender.result(120)
    expected = UPLOADS + DROPPED
    wait_until(lambda: total() >= expected, timeout=120, what=f"{expected} rows", log=logs)
    assert rows_at_kill < expected, "the kill came after the stream: send more, or slower"

    # SIGTERM a busy consumer: the other one takes what it hands back.
    second.wait_ready(consumers=True)
    before = first.handled()
    sender = send(service, stack, start=expected)
    wait_until(
        lambda: first.handled() > before, timeout=120, what="the first consumer busy", log=logs
    )
    seconds = first.stop(grace=STOP_GRACE)
    if stack.in_flight is not None:
        # Only the other consumer's event (one replica, one at a time) may be leased now.
        assert stack.in_flight() <= 1, "the stopped consumer left events leased"
    state = first.state()
    assert state["ExitCode"] == 0 and seconds < STOP_GRACE - 5, (seconds, first.logs()[-3000:])
    sender.result(120)
    expected *= 2
    wait_until(
        lambda: total() >= expected,
        timeout=120,
        what=f"{expected} rows",
        log=lambda: second.logs()[-3000:],
    )
    time.sleep(2)  # room for a late duplicate to show
    assert total() == expected
    assert stack.distinct_rows() == expected
    assert "Traceback" not in first.logs() + second.logs()


def send(service: Container, stack: CloudStack, *, start: int) -> Future[None]:
    """Upload UPLOADS images through the service and put DROPPED objects into the bucket,
    spread over a few seconds, in the background."""

    def run() -> None:
        for n in range(start, start + UPLOADS + DROPPED):
            if n - start < UPLOADS:
                answer = upload(service, png(n), f"photo-{n}.png", content_type="image/png")
                assert answer.status_code == 202, answer.text
            else:
                stack.put_object(f"dropped/photo-{n}.png", png(n))
            time.sleep(0.25)

    pool = ThreadPoolExecutor(1)
    future = pool.submit(run)
    pool.shutdown(wait=False)  # the upload goes on; future.result() waits for it
    return future

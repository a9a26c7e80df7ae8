"""One rule on every stack: an event for a replaced object version fails as superseded."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gcp.conftest import PROJECT, unique
from tideflow.exceptions import ObjectSupersededError
from tideflow.io.gcp import GCSBucket
from tideflow.io.local import LocalBucket
from tideflow.io.primitive import BucketPrimitive


@pytest.fixture(params=["local", "gcp"])
def bucket(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BucketPrimitive]:
    if request.param == "local":
        monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path))
        local = LocalBucket("photos")
        local.apply()
        yield local
        return
    request.getfixturevalue("gcs_emulator")
    gcs = GCSBucket(project_id=PROJECT, bucket_name=unique("photos")).options(force_destroy=True)
    gcs.apply()
    yield gcs
    gcs.destroy()


def test_writing_a_key_twice_supersedes_the_first_version(bucket: BucketPrimitive) -> None:
    objects = bucket.objects()
    first = objects.put("k.png", io.BytesIO(b"first"), content_type="image/png")
    second = objects.put("k.png", io.BytesIO(b"second"), content_type="image/png")
    assert first.version != second.version

    # The first version's event: the same failure on every stack, naming the newer version.
    with pytest.raises(ObjectSupersededError, match=f"superseded by version {second.version}"):
        bucket.read_bytes("k.png", version=first.version)
    # The second version's event reads its own bytes.
    assert bucket.read_bytes("k.png", version=second.version) == b"second"
    stat = objects.stat("k.png")
    assert stat is not None and (stat.version, stat.size) == (second.version, 6)
    assert [o.key for o in objects.list()] == ["k.png"]

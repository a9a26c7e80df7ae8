"""A flow of two consumers, each with its own bucket, stream and table, for the tests of
what commands read of a flow with several consumers (tables, dead letters, status).

Files dropped into the ``files`` bucket folder are counted in words, those in ``notes``
in letters; a note starting with "POISON" fails until a ``fault-fixed`` file exists in
the state directory.
"""

from __future__ import annotations

import dataclasses
import datetime

from tideflow import Flow, consumer
from tideflow.home import tideflow_home
from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
from tideflow.io.local import LocalBucket, LocalFileChangeStream
from tideflow.types.local import LocalFileChangeEvent


@dataclasses.dataclass
class Count:
    key: str
    count: int
    processed_at: datetime.datetime


dataset = DuckDBDataset("warehouse.duckdb")
files = LocalBucket("files")
notes = LocalBucket("notes")
file_stream = LocalFileChangeStream(files, max_attempts=2, lease_seconds=10)
note_stream = LocalFileChangeStream(notes, max_attempts=2, lease_seconds=10)


def _count(event: LocalFileChangeEvent, count: int) -> Count:
    now = datetime.datetime.now(datetime.UTC)
    return Count(key=event.file_path, count=count, processed_at=now)


@consumer(source=file_stream, sink=DuckDBTable(dataset, "words"), batch_size=4)
def count_words(event: LocalFileChangeEvent) -> Count:
    return _count(event, len(event.blob.split()))


@consumer(source=note_stream, sink=DuckDBTable(dataset, "letters"), batch_size=4)
def count_letters(event: LocalFileChangeEvent) -> Count:
    text = event.blob.decode()
    if text.startswith("POISON") and not (tideflow_home() / "fault-fixed").exists():
        raise ValueError(f"cannot count {event.file_path}")
    return _count(event, sum(ch.isalpha() for ch in text))


app = Flow()
app.add_consumer(count_words)
app.add_consumer(count_letters)

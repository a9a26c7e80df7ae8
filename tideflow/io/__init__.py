"""I/O adapters, one package per provider, each imported only when used.

- ``tideflow.io.local``: a folder as a bucket and a durable SQLite event journal.
- ``tideflow.io.duckdb``: a DuckDB file as the warehouse.
- ``tideflow.io.gcp``: Cloud Storage, Pub/Sub and BigQuery.
- ``tideflow.io.memory``: in-memory fakes for tests.

Every adapter implements the small interfaces in ``tideflow.io.primitive`` (what
exists: plan / apply / destroy) and ``tideflow.io.strategies`` (how to read and
write at run time). Adapters never import the runtime.
"""

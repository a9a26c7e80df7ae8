"""I/O adapters, one package per provider, each imported only when used.

- ``tideflow.io.local``: a folder as a bucket and a durable SQLite event journal.
- ``tideflow.io.duckdb``: a DuckDB file as the warehouse.
- ``tideflow.io.gcp``: Cloud Storage, Pub/Sub and BigQuery.
- ``tideflow.io.aws``: S3 and SQS (with DuckDB or PostgreSQL).
- ``tideflow.io.postgres``: an existing PostgreSQL database as the warehouse.
- ``tideflow.io.memory``: in-memory fakes for tests.

Every adapter implements the small interfaces in ``tideflow.io.primitive`` (what
exists: plan / apply / destroy) and ``tideflow.io.strategies`` (how to read and
write at run time), on shared bases, so that a provider writes only its own calls:
``tideflow.io.errors`` (one table of SDK errors -> tideflow errors), ``tideflow.io.composite``
(a primitive built from parts), ``tideflow.io.options`` (option checks),
``tideflow.io.settings`` (settings read once by a stack), ``tideflow.io.sql`` and
``tideflow.io.sql_table`` (SQL reads, and a SQL table's plan). Adapters never import the
runtime.
"""

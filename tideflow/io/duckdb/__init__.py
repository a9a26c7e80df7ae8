"""DuckDB warehouse primitives for the local and aws stacks."""

from tideflow.io.duckdb.warehouse import (
    DuckDBDataset,
    DuckDBReader,
    DuckDBSink,
    DuckDBTable,
)

__all__ = ["DuckDBDataset", "DuckDBReader", "DuckDBSink", "DuckDBTable"]

"""PostgreSQL as a warehouse on any stack (psycopg 3); see ``tideflow.io.postgres.table``.

Importing this package loads psycopg; ``tideflow`` itself never does.
"""

from tideflow.io.postgres.table import PostgresDatabase, PostgresReader, PostgresSink, PostgresTable

__all__ = ["PostgresDatabase", "PostgresReader", "PostgresSink", "PostgresTable"]

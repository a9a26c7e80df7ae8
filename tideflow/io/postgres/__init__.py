"""PostgreSQL as a warehouse on any stack (psycopg 3): ``tideflow.io.postgres.database`` (an
existing database, its connections) and ``tideflow.io.postgres.table`` (tables in it).

Importing this package loads psycopg; ``tideflow`` itself never does.
"""

from tideflow.io.postgres.database import PostgresDatabase
from tideflow.io.postgres.table import PostgresReader, PostgresSink, PostgresTable

__all__ = ["PostgresDatabase", "PostgresReader", "PostgresSink", "PostgresTable"]

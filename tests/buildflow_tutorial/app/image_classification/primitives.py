from tideflow.io.local import LocalFileChangeStream
from tideflow.io.duckdb import DuckDBTable


file_stream = LocalFileChangeStream(file_path="image_folder")
table = DuckDBTable(database="buildflow.duckdb", table="image_classification")

"""Export: the events of a selection (or a named query's result over them) to files BI tools
read (Parquet, CSV, JSON lines, a DuckDB database with typed views), locally or on S3,
atomically, with payload fields dropped or hashed on the way (`run`, `database`, `jsonl`,
`named`, `s3`, `redact`)."""

from eventlake.export.named import QueryError
from eventlake.export.redact import SALT_VARIABLE, RedactionError
from eventlake.export.run import FORMATS, ExportError, ExportReport, export
from eventlake.export.s3 import SUCCESS, UploadError

__all__ = ["FORMATS", "SALT_VARIABLE", "SUCCESS", "ExportError", "ExportReport", "QueryError",
           "RedactionError", "UploadError", "export"]

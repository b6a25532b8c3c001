"""Export: the events of a selection to files BI tools read (Parquet, CSV, JSON lines, a DuckDB
database), atomically, with payload fields dropped or hashed on the way (`run`, `redact`)."""

from eventlake.export.redact import SALT_VARIABLE, RedactionError
from eventlake.export.run import FORMATS, ExportError, ExportReport, export

__all__ = ["FORMATS", "SALT_VARIABLE", "ExportError", "ExportReport", "RedactionError", "export"]

"""Names vulture (dead-code finder, `make lint`) reports that are used: read by this file.

Each is used from outside the code vulture reads, or is part of a signature or a record."""

# noqa: F821  (vulture whitelist: bare names and `_.attr` are how it is written)
# ruff: noqa
_ = object()

# signatures fixed by others: context-manager __exit__, Prefect's retry_condition_fn
tb
task_run
# prefect.yaml's build step: `prefect deploy` imports it by its path (flows/deploy.py)
carry_settings
# Lambda's context object and stream records carry these fields (local/lambda_runtime.py,
# codec/records.py), read by handlers users write
invoked_function_arn
function_version
memory_limit_in_mb
log_group_name
log_stream_name
event_source_arn
_.event_source_arn
_.__class__
# argparse reads it
_.formatter_class
# fields of records (NamedTuple / dataclass / enum members), read by name or by position
event_payload
rows_in
PAYLOAD
# the Lake's public reads for users and the coming replay/export: read the quarantine, a
# Lake from Settings, the glob plain Parquet readers use, a lake read one table at a time
_.read_quarantine
_.from_settings
_.events_glob
_.iter_tables
# urllib's opener calls a handler's `<scheme>_open` by name (replay/http.py's deadline handlers)
_.http_open
_.https_open

# module-level __getattr__/__dir__ (PEP 562): Python calls them for eventlake's lazy exports
__getattr__
__dir__
# CLI commands looked up by name when their subcommand is parsed (cli/main.py `_command`)
cmd_demo
# a Protocol's call signature (replay/run.py `_Counting`), and IDENTITY_SQL in Python, which the
# tests hold DuckDB's identity to (replay/select.py `identity_of`)
_.__call__
identity_of

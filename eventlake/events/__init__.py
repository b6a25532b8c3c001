"""The event itself, before any storage: the model and its validation (`model`), canonical
JSON and the one content digest (`canonical`), event ids (`ids`), times and the one UTC rule
(`times`), field mapping for `put --map` (`fieldmap`) and the event's columns as Arrow
(`schema`). Knows no storage: nothing here imports boto3, DuckDB or another eventlake package
but `errors`."""

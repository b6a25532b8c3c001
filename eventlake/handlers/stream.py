"""The stream archiver Lambda: DynamoDB Streams -> Parquet, with partial batch responses.

Wire it with `FunctionResponseTypes: [ReportBatchItemFailures]` on the event source mapping:
a failed lake write returns the first record not durably written, and Lambda re-delivers from
there (see eventlake/archive/stream.py for why that writes nothing twice). Input that is not
a stream event at all raises `CodecError` naming what is wrong.

The lake is checked once per execution environment, on its first batch: EVENTLAKE_LAKE_URI
must be set, and name a lake `eventlake init` made (its marker), of EVENTLAKE_TABLE's table when
that is set (archive/lakeof.py, as the sweep checks). Otherwise every batch fails whole, naming
what is wrong, and nothing is written: without the check a missing variable archived into
./eventlake-data (a lake nobody reads) and a mistyped one into a new lake, each batch reported
done. Lambda retries the batch, then gives it to the on-failure destination; the sweep archives
its events from the table.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from eventlake.archive.lakeof import require_lake_of
from eventlake.archive.stream import archive_event
from eventlake.config import Settings, env_name_of
from eventlake.errors import ConfigError, StorageError
from eventlake.lake.store import Lake

_log = logging.getLogger(__name__)
if _log.level == logging.NOTSET and "AWS_LAMBDA_LOG_LEVEL" not in os.environ:
    _log.setLevel(logging.INFO)

_LAKE: Lake | None = None
LAKE_VARIABLE = env_name_of("lake_uri")
TABLE_VARIABLE = env_name_of("table")


def _lake() -> Lake:
    """The lake of this execution environment, built and checked on first use, then reused
    (a check that fails leaves none: the next invocation checks again)."""
    global _LAKE
    if _LAKE is None:
        if not os.environ.get(LAKE_VARIABLE):
            raise ConfigError(f"{LAKE_VARIABLE} is not set: the stream function would archive "
                              f"into `{Settings().lake_uri}`, which nobody reads; set it to the "
                              "lake's root (the stack's LakeUri output). Nothing was written")
        settings = Settings.from_env()
        lake = Lake(settings)
        if os.environ.get(TABLE_VARIABLE):
            require_lake_of(lake, settings.table)
        else:
            lake.require_exists()
        _LAKE = lake
    return _LAKE


def reset(lake: Lake | None = None) -> None:
    """Forget the cached Lake (the next invocation builds one), or use `lake` instead."""
    global _LAKE
    _LAKE = lake


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Lambda entry point (`eventlake.handlers.stream.handler`)."""
    report = archive_event(_lake(), event)
    line = report.log_record()
    line["request_id"] = getattr(context, "aws_request_id", None)
    failed = report.failed_from is not None or report.error is not None
    _log.log(logging.ERROR if failed else logging.INFO, json.dumps(line, default=str))
    if report.error is not None and report.failed_from is None:
        # No record identifier to report: fail the whole batch so Lambda retries all of it.
        raise StorageError(f"stream batch not archived: {report.error}")
    failures = [{"itemIdentifier": report.failed_from}] if report.failed_from else []
    return {"batchItemFailures": failures}

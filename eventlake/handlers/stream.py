"""The stream archiver Lambda: DynamoDB Streams -> Parquet, with partial batch responses.

Wire it with `FunctionResponseTypes: [ReportBatchItemFailures]` on the event source mapping:
a failed lake write returns the first record not durably written, and Lambda re-delivers from
there (see eventlake/archive/stream.py for why that writes nothing twice). Input that is not
a stream event at all raises `CodecError` naming what is wrong.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from eventlake.archive.stream import archive_event
from eventlake.config import Settings
from eventlake.errors import StorageError
from eventlake.lake.store import Lake

_log = logging.getLogger(__name__)
if _log.level == logging.NOTSET and "AWS_LAMBDA_LOG_LEVEL" not in os.environ:
    _log.setLevel(logging.INFO)

_LAKE: Lake | None = None


def _lake() -> Lake:
    global _LAKE
    if _LAKE is None:
        _LAKE = Lake(Settings.from_env())
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

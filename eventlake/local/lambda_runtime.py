"""What Lambda's runtime gives a DynamoDB Streams function, and how it reads the answer.

`lambda_record` turns a GetRecords record (as boto3 parses it) into the record Lambda delivers;
`LambdaContext` is the context object; `first_failure` applies Lambda's rules for partial batch
responses (`ReportBatchItemFailures`). `eventlake.local.poller` uses them to run a stream handler
locally exactly as Lambda runs it on AWS.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventlake.events.times import as_utc

log = logging.getLogger(__name__)


@dataclass
class LambdaContext:
    """The part of Lambda's context object handlers use (Powertools reads these names)."""

    function_name: str
    aws_request_id: str
    invoked_function_arn: str
    deadline: float
    clock: Callable[[], float]
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.clock()) * 1000))


# --- the event Lambda delivers --------------------------------------------------------------

def lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """One GetRecords record (as boto3 parses it) in the shape Lambda hands the function.

    Lambda adds `eventSourceARN`, sends eventVersion 1.1, epoch seconds for
    ApproximateCreationDateTime, base64 text for binary values and camel-cased `userIdentity`
    keys (`type`, `principalId`; GetRecords says `Type`, `PrincipalId`).
    """
    image: Mapping[str, Any] = record.get("dynamodb") or {}
    dynamodb: dict[str, Any] = {}
    if "ApproximateCreationDateTime" in image:
        dynamodb["ApproximateCreationDateTime"] = epoch_seconds(
            image["ApproximateCreationDateTime"])
    for key in ("Keys", "NewImage", "OldImage"):
        if key in image:
            dynamodb[key] = {name: lambda_attribute_value(value)
                             for name, value in image[key].items()}
    for key in ("SequenceNumber", "SizeBytes", "StreamViewType"):
        if key in image:
            dynamodb[key] = image[key]
    out: dict[str, Any] = {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        # The stream's region: moto writes "us-east-1" into every record whatever the region.
        "awsRegion": stream_arn.split(":")[3],
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    identity = record.get("userIdentity")
    if identity:
        out["userIdentity"] = {"type": identity.get("Type"),
                               "principalId": identity.get("PrincipalId")}
    return out


def lambda_attribute_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """A boto3 AttributeValue as Lambda's JSON has it: B and BS as base64 text, recursively."""
    out: dict[str, Any] = {}
    for kind, inner in value.items():
        if kind == "B":
            out[kind] = _base64(inner)
        elif kind == "BS":
            out[kind] = [_base64(b) for b in inner]
        elif kind == "M":
            out[kind] = {k: lambda_attribute_value(v) for k, v in inner.items()}
        elif kind == "L":
            out[kind] = [lambda_attribute_value(v) for v in inner]
        elif kind in ("SS", "NS"):
            out[kind] = list(inner)
        else:
            out[kind] = inner
    return out


def _base64(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    return str(value)  # already text: a client that did not decode the blob


def epoch_seconds(value: Any) -> float:
    """Whole epoch seconds, as a number: DynamoDB rounds the creation time down to the second.

    boto3 parses it into a datetime (naive ones are UTC); Lambda's JSON carries a number
    (`1.7e9`, which Python reads as a float).
    """
    if isinstance(value, datetime):
        return float(math.floor(as_utc(value).timestamp()))
    return float(math.floor(float(value)))


def first_failure(response: Any, sequence_numbers: Sequence[str]) -> int | None:
    """Index of the first record to re-deliver, or None when the whole batch succeeded.

    Lambda's rules: None, `{}` or an empty/null `batchItemFailures` is success; several failures
    checkpoint before the lowest; an empty, null or unknown `itemIdentifier` fails the batch.
    """
    if response is None:
        return None
    if not isinstance(response, Mapping):
        log.warning("stream handler returned %s, not a batch response: whole batch failed",
                    type(response).__name__)
        return 0
    failures = response.get("batchItemFailures")
    if not failures:
        return None
    index = {seq: i for i, seq in enumerate(sequence_numbers)}
    if not isinstance(failures, list):
        log.warning("`batchItemFailures` is %s, not a list: whole batch failed",
                    type(failures).__name__)
        return 0
    found: list[int] = []
    for failure in failures:
        ident = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(ident, str) or ident not in index:
            log.warning("itemIdentifier `%s` is not a sequence number of this batch: whole "
                        "batch failed", ident)
            return 0
        found.append(index[ident])
    return min(found)

"""What Lambda gives a stream function: record shape, attribute values, batch-response rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from eventlake.local.lambda_runtime import (
    LambdaContext,
    epoch_seconds,
    first_failure,
    lambda_attribute_value,
    lambda_record,
)

ARN = "arn:aws:dynamodb:eu-west-1:111122223333:table/orders/stream/2024-05-01T00:00:00.000"


def test_a_ttl_delete_record_takes_lambdas_shape() -> None:
    record = {  # a GetRecords record as boto3 parses it
        "eventID": "7de3041dd709b024af6f29e4fa13d34c", "eventName": "REMOVE",
        "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2024, 5, 1, 9, 30, 15, 900_000, tzinfo=UTC),
            "Keys": {"event_id": {"S": "e-1"}},
            "OldImage": {"event_id": {"S": "e-1"}, "raw": {"B": b"\x01\x02"}},
            "SequenceNumber": "4421584500000000017450439091", "SizeBytes": 59,
            "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "userIdentity": {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"},
    }

    assert lambda_record(record, ARN) == {
        "eventID": "7de3041dd709b024af6f29e4fa13d34c", "eventName": "REMOVE",
        "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1714555815.0,
            "Keys": {"event_id": {"S": "e-1"}},
            "OldImage": {"event_id": {"S": "e-1"}, "raw": {"B": "AQI="}},
            "SequenceNumber": "4421584500000000017450439091", "SizeBytes": 59,
            "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "eventSourceARN": ARN,
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
    }


@pytest.mark.parametrize("value", [
    datetime(2024, 5, 1, 9, 30, 15, 999_999, tzinfo=UTC),
    datetime(2024, 5, 1, 9, 30, 15),  # naive: UTC
    datetime(2024, 5, 1, 11, 30, 15, 5, tzinfo=timezone(timedelta(hours=2))),
    1714555815.7,
    "1714555815",
])
def test_creation_time_is_whole_epoch_seconds(value: Any) -> None:
    assert epoch_seconds(value) == 1714555815.0


def test_the_context_counts_down_on_its_clock() -> None:
    now = [100.0]
    context = LambdaContext(function_name="f", aws_request_id="r", invoked_function_arn="a",
                            deadline=160.0, clock=lambda: now[0])

    assert context.get_remaining_time_in_millis() == 60_000
    now[0] = 170.0
    assert context.get_remaining_time_in_millis() == 0


def test_attribute_values_keep_every_other_type_as_is() -> None:
    value = {"M": {"s": {"S": "x"}, "n": {"N": "1.5"}, "ss": {"SS": ["a"]}, "ns": {"NS": ["1"]},
                   "null": {"NULL": True}, "bool": {"BOOL": False}, "b": {"B": bytearray(b"z")}}}

    assert lambda_attribute_value(value) == {"M": {
        "s": {"S": "x"}, "n": {"N": "1.5"}, "ss": {"SS": ["a"]}, "ns": {"NS": ["1"]},
        "null": {"NULL": True}, "bool": {"BOOL": False}, "b": {"B": "eg=="}}}


@pytest.mark.parametrize(("response", "expected"), [
    (None, None),
    ({}, None),
    ({"batchItemFailures": None}, None),
    ({"batchItemFailures": []}, None),
    ({"statusCode": 200}, None),
    ({"batchItemFailures": [{"itemIdentifier": "12"}]}, 1),
    ({"batchItemFailures": [{"itemIdentifier": "13"}, {"itemIdentifier": "12"}]}, 1),
    ({"batchItemFailures": [{"itemIdentifier": ""}]}, 0),
    ({"batchItemFailures": [{"itemIdentifier": None}]}, 0),
    ({"batchItemFailures": [{"identifier": "12"}]}, 0),
    ({"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "99"}]}, 0),
    ({"batchItemFailures": "12"}, 0),
    ("ok", 0),
])
def test_batch_responses_follow_lambdas_rules(response: Any, expected: int | None) -> None:
    assert first_failure(response, ["11", "12", "13"]) == expected

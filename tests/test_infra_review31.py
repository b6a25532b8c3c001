"""Review 31: the stream mapping's bounds against the retention the template lets a deployer set.

A record the mapping gives up (MaximumRecordAgeInSeconds) is archived by the sweep from the
table, which keeps it RetentionDays: the template must not accept a retention under the stream's
own 24 h, and the defaults must leave the record age and the TTL guard's margin inside it.
"""

from __future__ import annotations

from typing import Any

from test_infra import _only, template

STREAM_RETENTION_S = 24 * 3600
"""DynamoDB Streams keep a record 24 h."""


def _parameters() -> dict[str, Any]:
    params: dict[str, Any] = template()["Parameters"]
    return params


def test_the_retention_cannot_be_set_below_the_streams_own_24_hours() -> None:
    retention = _parameters()["RetentionDays"]
    # a retention of 0 (or 0.1 days) would pass CloudFormation and make every function
    # refuse to start, or expire events before a given-up stream record reaches the sweep
    assert retention.get("MinValue", 0) * 86400 >= STREAM_RETENTION_S


def test_the_ttl_guard_margin_cannot_be_negative() -> None:
    assert _parameters()["TtlSafetyHours"].get("MinValue") == 0


def test_a_given_up_record_and_the_guard_margin_fit_the_default_retention() -> None:
    mapping = _only("AWS::Lambda::EventSourceMapping")["Properties"]
    params = _parameters()
    record_age_s = mapping["MaximumRecordAgeInSeconds"]
    guard_s = params["TtlSafetyHours"]["Default"] * 3600
    assert record_age_s + guard_s < params["RetentionDays"]["Default"] * 86400


def test_the_mapping_keeps_no_window_state_the_handler_does_not_return() -> None:
    # a tumbling window makes Lambda pass and expect `state`: the handler returns only
    # batchItemFailures; ParallelizationFactor > 1 is safe (tests/handlers/test_review31_*)
    mapping = _only("AWS::Lambda::EventSourceMapping")["Properties"]
    assert "TumblingWindowInSeconds" not in mapping
    assert mapping.get("ParallelizationFactor", 1) in range(1, 11)

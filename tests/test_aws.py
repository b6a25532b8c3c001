"""The one retry layer: botocore's retry configuration, from Settings, owns every AWS call's
attempts; a deadline stops retries that could end past it (eventlake/aws.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_support import dynamodb_error, inject

from eventlake import Settings
from eventlake.aws import Clients, OutOfTime, retry_deadline


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    for var in ("EVENTLAKE_AWS_MAX_ATTEMPTS", "EVENTLAKE_AWS_RETRY_MODE"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws():
        yield


def test_by_default_a_call_gets_8_attempts_in_botocores_standard_mode(aws: None) -> None:
    clients = Clients(Settings.from_env())
    for client in (clients.dynamodb, clients.s3, clients.dynamodbstreams):
        assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 8}


def test_the_variables_reach_every_client(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLAKE_AWS_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("EVENTLAKE_AWS_RETRY_MODE", "adaptive")
    clients = Clients(Settings.from_env())
    for client in (clients.dynamodb, clients.s3):
        assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 3}


@pytest.mark.parametrize("attempts", [1, 3, 5])
def test_a_throttled_call_is_attempted_exactly_the_configured_times_in_total(
        aws: None, sleeps: list[float], attempts: int) -> None:
    # given DynamoDB throttles every attempt
    ddb = Clients(Settings.from_env(aws_max_attempts=attempts)).dynamodb
    throttled = inject(ddb, "ListTables", dynamodb_error("ThrottlingException"), times=None)
    # when a call is made, then botocore gives up after N attempts and N-1 pauses, not more
    with pytest.raises(ddb.exceptions.ClientError, match="ThrottlingException") as raised:
        ddb.list_tables()
    assert throttled.calls == attempts
    assert len(sleeps) == attempts - 1
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == attempts - 1


def test_a_deadline_stops_the_retries_whose_pause_could_end_past_it(
        aws: None, sleeps: list[float]) -> None:
    # given every attempt throttled, 8 attempts allowed and 3 s left
    ddb = Clients(Settings.from_env()).dynamodb
    throttled = inject(ddb, "ListTables", dynamodb_error("ThrottlingException"), times=None)
    # when a call is made under the deadline
    with pytest.raises(OutOfTime) as stopped, retry_deadline(lambda: 3.0 - sum(sleeps)):
        ddb.list_tables()
    # then it retried while the longest next pause fitted in what was left (1 s of 3 s, then
    # 2 s of more than 2 s), and not when it could not (4 s): 3 attempts, 2 pauses
    assert throttled.calls == stopped.value.attempts == 3
    assert len(sleeps) == 2 and sum(sleeps) < 3.0
    assert "ThrottlingException" in str(stopped.value.last)


def test_a_deadline_never_hides_an_error_that_is_not_retried(aws: None) -> None:
    ddb = Clients(Settings.from_env()).dynamodb
    inject(ddb, "ListTables", dynamodb_error("AccessDeniedException"), times=None)
    with pytest.raises(ddb.exceptions.ClientError, match="AccessDenied"), \
            retry_deadline(lambda: 0.001):
        ddb.list_tables()

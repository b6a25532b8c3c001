"""How a put answers when DynamoDB refuses the write, the cases mutation testing (mutants40)
found no test checking: each refusal is answered at the event's own position under its id
(what put_many's callers match results by), a ValidationException that is not about size is
a failure of the write, not an invalid event, and the failure messages name what DynamoDB
said: the error's code (or, without one, its type), its text, and botocore's own count of
attempts.

The table here is a fake DynamoDB client that refuses every write with the error given."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError, ParamValidationError

from eventlake.config import Settings
from eventlake.events.model import Event, parse_event
from eventlake.hot.results import RETRY_ADVICE, TABLE_MISSING, Outcome, PutResult
from eventlake.hot.store import HotStore

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _event(event_id: str) -> Event:
    return parse_event({"event_type": "order.placed", "event_payload": {"sku": "MUG-01"},
                        "event_id": event_id, "timestamp": "2026-11-01T08:00:00Z"}, now=NOW)


def _refusal(code: str, message: str, retry_attempts: int = 0) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": 400,
                                             "RetryAttempts": retry_attempts}}, "PutItem")


class _Refusing:
    """A DynamoDB client whose every PutItem raises `error` (after botocore's retries)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.puts = 0

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self.puts += 1
        raise self.error


def _store(table: object) -> HotStore:
    clients = SimpleNamespace(dynamodb=table, clock=SimpleNamespace(seconds=0.0))
    return HotStore(Settings(table="orders", region="eu-west-1"),
                    clients,  # type: ignore[arg-type]  # the fake
                    clock=lambda: NOW, recorded={})


def test_an_item_too_large_is_answered_invalid_at_its_position() -> None:
    # given DynamoDB refuses an item for its size
    error = _refusal("ValidationException", "Item size has exceeded the maximum allowed size")
    # when the event is put as the 4th of a request
    result = _store(_Refusing(error)).put(_event("ord-4"), 3)
    # then it is invalid at position 3, under its id, saying what DynamoDB said
    assert result == PutResult(
        3, "ord-4", Outcome.INVALID,
        "DynamoDB refused the item: An error occurred (ValidationException) when calling the "
        "PutItem operation: Item size has exceeded the maximum allowed size", "item.too_large")


def test_a_validation_error_not_about_size_is_a_failed_write_not_an_invalid_event() -> None:
    # given DynamoDB refuses the write's parameters (not the event: nothing the producer sent)
    error = _refusal("ValidationException", "One or more parameter values were invalid: "
                     "Type mismatch for key event_id expected: S actual: N")
    # when the event is put
    result = _store(_Refusing(error)).put(_event("ord-5"), 2)
    # then the write failed, for good, naming the error; the event is not called invalid
    assert result == PutResult(
        2, "ord-5", Outcome.FAILED,
        "DynamoDB refused the write (ValidationException): An error occurred "
        "(ValidationException) when calling the PutItem operation: One or more parameter "
        "values were invalid: Type mismatch for key event_id expected: S actual: N")


def test_a_write_to_a_missing_table_is_answered_at_its_position() -> None:
    # given the table does not exist
    error = _refusal("ResourceNotFoundException", "Requested resource not found")
    # when the event is put as the 8th of a request
    result = _store(_Refusing(error)).put(_event("ord-8"), 7)
    # then it failed for good at position 7, under its id, naming the table and the fix
    assert result == PutResult(
        7, "ord-8", Outcome.FAILED,
        "table `orders` does not exist in region `eu-west-1`: run `eventlake init`, or set "
        "EVENTLAKE_TABLE to the table's name", TABLE_MISSING)
    assert not result.retryable


def test_a_refused_write_is_answered_at_its_position_with_dynamodbs_words() -> None:
    # given DynamoDB refuses the write for good (the role may not write the table)
    error = _refusal("AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/"
                     "ingest is not authorized to perform: dynamodb:PutItem")
    table = _Refusing(error)
    # when the event is put as the 2nd of a request
    result = _store(table).put(_event("ord-2"), 1)
    # then it failed, not retryable, at position 1, with the code and DynamoDB's text
    assert result == PutResult(
        1, "ord-2", Outcome.FAILED,
        "DynamoDB refused the write (AccessDeniedException): An error occurred "
        "(AccessDeniedException) when calling the PutItem operation: User: "
        "arn:aws:sts::123456789012:assumed-role/ingest is not authorized to perform: "
        "dynamodb:PutItem")
    assert table.puts == 1


def test_a_refusal_without_a_code_names_the_errors_type() -> None:
    # given botocore refuses the request before sending it (an error without a code)
    error = ParamValidationError(report="Invalid length for parameter Item.event_id.S")
    # when the event is put
    result = _store(_Refusing(error)).put(_event("ord-6"), 5)
    # then the failure names the error's type, and is not retryable
    assert result == PutResult(
        5, "ord-6", Outcome.FAILED,
        "DynamoDB refused the write (ParamValidationError): Parameter validation failed:\n"
        "Invalid length for parameter Item.event_id.S")


def test_a_write_given_up_on_says_how_many_attempts_botocore_made() -> None:
    # given DynamoDB throttled the write until botocore gave up after 3 attempts (2 retries;
    # fewer than the 8 configured: botocore's retry quota ran out first)
    error = _refusal("ThrottlingException", "Rate of requests exceeds the allowed throughput",
                     retry_attempts=2)
    # when the event is put as the 10th of a request
    result = _store(_Refusing(error)).put(_event("ord-10"), 9)
    # then it failed, retryable, at position 9, with botocore's count and the error
    assert result == PutResult(
        9, "ord-10", Outcome.FAILED,
        "gave up after 3 attempts (ThrottlingException): An error occurred "
        "(ThrottlingException) when calling the PutItem operation: "
        f"Rate of requests exceeds the allowed throughput; {RETRY_ADVICE}", retryable=True)

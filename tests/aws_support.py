"""AWS failures injected below botocore's retries, as AWS would send them, so that the one
retry layer (botocore's, eventlake/aws.py) is what the tests exercise; and botocore's pauses
recorded instead of slept."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

INJECTED_URL = "https://injected-failure.invalid/"
"""Where a failed attempt is pointed: moto's stub (next in line) then leaves it alone."""


class _Raw(io.BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


def dynamodb_error(code: str, status: int = 400) -> ClientError:
    """A DynamoDB error to inject (`ThrottlingException`, 503 `BrandNewOutage`...)."""
    return ClientError({"Error": {"Code": code, "Message": f"{code} (injected by the test)"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "call")


def _response(error: ClientError) -> AWSResponse:
    code = error.response["Error"]["Code"]
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                       "message": error.response["Error"]["Message"]}).encode()
    status = error.response["ResponseMetadata"]["HTTPStatusCode"]
    return AWSResponse(INJECTED_URL, status, {"x-amzn-requestid": "injected",
                                              "content-type": "application/x-amz-json-1.0"},
                       _Raw(body))  # type: ignore[arg-type]


class FailAttempts:
    """A `before-send` handler: the attempts `fail(body)` picks fail with `error` (a
    ClientError becomes DynamoDB's HTTP error response; any other exception is raised, as a
    dropped connection is). Counts every attempt."""

    def __init__(self, error: Exception, fail: Callable[[dict[str, Any], int], bool]) -> None:
        self.error, self.fail = error, fail
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        body = json.loads(request.body or b"{}")
        with self._lock:
            self.calls += 1
            fail = self.fail(body, self.calls)
        if not fail:
            return None
        request.url = INJECTED_URL
        if isinstance(self.error, ClientError):
            return _response(self.error)
        raise self.error


def inject(client: Any, operation: str, error: Exception, times: int | None) -> FailAttempts:
    """The first `times` attempts (None: every one) of `operation` (e.g. `PutItem`) on
    `client` (a DynamoDB client) fail with `error`."""
    handler = FailAttempts(error, lambda _, n: times is None or n <= times)
    client.meta.events.register_first(f"before-send.dynamodb.{operation}", handler)
    return handler


def inject_where(client: Any, operation: str, error: Exception,
                 fail: Callable[[dict[str, Any]], bool]) -> FailAttempts:
    """Attempts of `operation` whose request body `fail` picks fail with `error`."""
    handler = FailAttempts(error, lambda body, _: fail(body))
    client.meta.events.register_first(f"before-send.dynamodb.{operation}", handler)
    return handler


def record_pauses(monkeypatch: pytest.MonkeyPatch, sleep: Callable[[float], None]) -> None:
    """botocore's pauses between attempts go to `sleep` instead of time.sleep."""

    class _Time:
        pass

    fake = _Time()
    fake.sleep = sleep  # type: ignore[attr-defined]
    monkeypatch.setattr(botocore.endpoint, "time", fake)

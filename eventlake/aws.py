"""AWS clients, built lazily from Settings, the one retry layer, and the one place that
classifies AWS errors.

Every client honours `Settings.endpoint_url` (AWS_ENDPOINT_URL), so moto, LocalStack and AWS
run the same code. Nothing here talks to AWS at import time.

Retries: botocore's retry configuration owns them, for every call of every client
(EVENTLAKE_AWS_RETRY_MODE, EVENTLAKE_AWS_MAX_ATTEMPTS: attempts in total). Nothing in the
library loops over an AWS call again on top of it; the loops that remain do what botocore
cannot (compare-and-swap rounds on lake state, listing again when a file vanished). A caller
that must answer in time (the ingest Lambda) runs its calls under `retry_deadline`: a retry
whose backoff could end past the deadline is not made, `OutOfTime` is raised instead.

    attempt n ─ transient ─> needs-retry (ours, first): n < attempts, time left > longest pause?
                               ├ yes ─> botocore sleeps random() x min(2^(n-1), 20) s, n + 1
                               └ no ──> the last error (attempts spent) or OutOfTime (deadline)
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from eventlake.clock import ClockOffset
from eventlake.config import (
    AWS_CONNECT_TIMEOUT_S,
    AWS_MAX_PAUSE_S,
    AWS_READ_TIMEOUT_S,
    LAMBDA_READ_TIMEOUT_S,
    Settings,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_s3 import S3Client

TRANSIENT_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling",
    "RequestLimitExceeded", "InternalServerError", "InternalFailure", "ServiceUnavailable",
    "SlowDown", "RequestTimeout", "RequestTimeoutException", "LimitExceededException",
    "TransactionInProgressException",
})
"""Codes worth retrying. Not ItemCollectionSizeLimitExceededException: a full 10 GB item
collection stays full, so retrying it only delays the failure."""


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def is_transient(exc: BaseException) -> bool:
    """True for throttling, 5xx and connection trouble: the same request may succeed later."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, ConnectionClosedError | ConnectTimeoutError | EndpointConnectionError
                  | ReadTimeoutError):
        return True
    code = error_code(exc)
    if code in TRANSIENT_CODES:
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return isinstance(status, int) and status >= 500
    return False


_DEADLINE: ContextVar[Callable[[], float] | None] = ContextVar("eventlake_retry_deadline",
                                                               default=None)


class OutOfTime(Exception):
    """botocore stopped retrying a call because the pause before the next attempt could end
    past the caller's deadline. `attempts` were made; `last` is the failure of the last one."""

    def __init__(self, attempts: int, last: BaseException) -> None:
        super().__init__(f"stopped retrying after {attempts} attempt(s): {last}")
        self.attempts = attempts
        self.last = last


@contextmanager
def retry_deadline(left: Callable[[], float] | None) -> Iterator[None]:
    """AWS calls made inside (in this thread) retry only while the longest pause before the
    next attempt still ends within `left()` seconds; None: no deadline."""
    token = _DEADLINE.set(left)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _retryable_failure(response: Any, caught: BaseException | None,
                       operation: str) -> BaseException | None:
    """The failure of one attempt as an exception when it is worth retrying, else None."""
    if caught is not None:
        return caught if is_transient(caught) else None
    if not isinstance(response, tuple) or len(response) != 2 or not isinstance(response[1], dict):
        return None
    parsed: Any = response[1]
    if "Error" not in parsed:
        return None
    from botocore.exceptions import ClientError

    error = ClientError(parsed, operation)  # what botocore raises when it gives up
    return error if is_transient(error) else None


def _retry_policy(max_attempts: int) -> Callable[..., float | None]:
    """The `needs-retry` handler that runs before botocore's own and decides for a transient
    failure: retry while fewer than `max_attempts` were made, pausing
    `random() x min(2^(n-1), 20)` s after attempt n (botocore's backoff for throttling).

    Why not leave it to botocore: its standard and adaptive modes keep a retry budget per
    client (500 tokens, 5 per throttled retry), which all put threads share; under a burst of
    throttling it runs out after about 100 retries and every later call of that client gets
    one attempt. A throttled write should get its attempts whatever its neighbours did.
    Failures this does not call transient are left to botocore's handler.

    Under `retry_deadline`, raises OutOfTime instead of a retry whose longest pause could end
    past the deadline."""

    def decide(attempts: int, response: Any = None,
               caught_exception: BaseException | None = None, operation: Any = None,
               **_: Any) -> float | None:
        failure = _retryable_failure(response, caught_exception,
                                     getattr(operation, "name", "call"))
        if failure is None or attempts >= max_attempts:
            return None  # not ours to retry, or the last attempt: botocore's answer stands
        longest_pause = min(2.0 ** (attempts - 1), AWS_MAX_PAUSE_S)
        left = _DEADLINE.get()
        if left is not None and left() <= longest_pause:
            raise OutOfTime(attempts, failure)
        return random.random() * longest_pause

    return decide


def retries_config(settings: Settings) -> dict[str, Any]:
    """botocore's `retries` configuration from Settings: the one retry layer."""
    return {"mode": settings.aws_retry_mode, "total_max_attempts": settings.aws_max_attempts}


class Clients:
    """Lazily built, thread-safe boto3 clients sharing one session. `clock` is this host's
    offset from AWS's time, measured on the DynamoDB and S3 clients' responses."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = ClockOffset()
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    import boto3
                    from botocore.config import Config

                    config = Config(
                        region_name=self.settings.region,
                        retries=retries_config(self.settings),  # type: ignore[arg-type]
                        max_pool_connections=self.settings.put_concurrency + 4,
                        connect_timeout=AWS_CONNECT_TIMEOUT_S,
                        read_timeout=(LAMBDA_READ_TIMEOUT_S if service == "lambda"
                                      else AWS_READ_TIMEOUT_S),
                        # SO_KEEPALIVE on the connections of Invokes, which may wait minutes
                        # (the OS's probe timing applies: Linux's first probe is after 2 h)
                        tcp_keepalive=service == "lambda",
                        # Account-based DynamoDB endpoints (boto3 >= 1.37) are not routed by
                        # moto's in-process mock; the regional endpoint works everywhere.
                        account_id_endpoint_mode="disabled",
                    )
                    session: Any = boto3.session.Session()
                    client = session.client(service, endpoint_url=self.settings.endpoint_url,
                                            config=config)
                    client.meta.events.register_first(
                        "needs-retry", _retry_policy(self.settings.aws_max_attempts))
                    if service in ("dynamodb", "s3"):
                        self.clock.attach(client)
                    self._clients[service] = client
        return client

    @property
    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self._client("dynamodb")
        return client

    @property
    def dynamodbstreams(self) -> DynamoDBStreamsClient:
        client: DynamoDBStreamsClient = self._client("dynamodbstreams")
        return client

    @property
    def s3(self) -> S3Client:
        client: S3Client = self._client("s3")
        return client

    # The replay targets' clients. Untyped (Any): their mypy_boto3 stubs are not dependencies.
    @property
    def sqs(self) -> Any:
        return self._client("sqs")

    @property
    def events(self) -> Any:
        """EventBridge."""
        return self._client("events")

    @property
    def kinesis(self) -> Any:
        return self._client("kinesis")

    @property
    def lambda_(self) -> Any:
        return self._client("lambda")

    @property
    def cloudwatch(self) -> Any:
        """CloudWatch (the sweep's metrics, archive/metrics.py). Untyped, as the others here."""
        return self._client("cloudwatch")

    @property
    def glue(self) -> Any:
        """The Glue Data Catalog (`eventlake catalog glue`). Untyped, as the replay targets'."""
        return self._client("glue")

"""AWS clients, built lazily from Settings, and the one place that classifies AWS errors.

Every client honours `Settings.endpoint_url` (AWS_ENDPOINT_URL), so moto, LocalStack and AWS
run the same code. Nothing here talks to AWS at import time.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from eventlake.clock import ClockOffset
from eventlake.config import Settings

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
                        retries={"mode": "standard", "max_attempts": 3},
                        max_pool_connections=self.settings.put_concurrency + 4,
                        connect_timeout=5,
                        read_timeout=30,
                        # Account-based DynamoDB endpoints (boto3 >= 1.37) are not routed by
                        # moto's in-process mock; the regional endpoint works everywhere.
                        account_id_endpoint_mode="disabled",
                    )
                    session: Any = boto3.session.Session()
                    client = session.client(service, endpoint_url=self.settings.endpoint_url,
                                            config=config)
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

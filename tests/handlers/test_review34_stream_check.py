"""review34: the stream Lambda's cold-start lake check when S3 fails for a moment (503 on the
marker read): the batch fails, no bad state is kept, the next invocation checks again and
archives."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import botocore.client
import pytest
from botocore.exceptions import ClientError
from stream_support import ARCHIVED_IN_BATCH, batch

from eventlake.config import Settings
from eventlake.errors import TransientError
from eventlake.handlers import stream as stream_handler
from eventlake.lake.store import Lake

pytestmark = pytest.mark.integration


@pytest.fixture
def from_env(bucket: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    """A marked S3 lake, and a function configured for it whose Lake is built on a cold start."""
    root = f"s3://{bucket}/lake"
    lake = Lake(Settings.from_env(table="prod-events", lake_uri=root))
    assert lake.create_marker(table="prod-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", root)
    monkeypatch.setenv("EVENTLAKE_TABLE", "prod-events")
    stream_handler.reset()
    yield lake
    stream_handler.reset()


def test_a_503_reading_the_marker_fails_the_batch_and_the_next_invocation_checks_again(
        from_env: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    real = botocore.client.BaseClient._make_api_call
    failing = {"left": 1}
    marker_reads: list[str] = []

    def flaky(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "GetObject" and params.get("Key", "").endswith("_eventlake/lake.json"):
            marker_reads.append(operation)
            if failing["left"]:
                failing["left"] -= 1
                raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce"},
                                   "ResponseMetadata": {"HTTPStatusCode": 503}}, operation)
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", flaky)
    context = SimpleNamespace(aws_request_id="req-34")
    # when the cold start's marker read fails with S3's 503 (after botocore's own retries)
    with pytest.raises(TransientError, match="safe to retry"):
        stream_handler.handler(batch(), context)
    # then nothing was written, and no lake (nor its absence) was kept
    assert from_env.list_files() == []
    assert stream_handler._LAKE is None
    # and the re-delivered batch is archived after checking the lake again
    assert stream_handler.handler(batch(), context) == {"batchItemFailures": []}
    assert len(marker_reads) == 2
    got = from_env.read(columns=["event_id"])["event_id"].to_pylist()
    assert set(ARCHIVED_IN_BATCH) <= set(got) and len(got) == len(set(got))
    # a warm environment reads the marker no more
    assert stream_handler.handler(batch(), context) == {"batchItemFailures": []}
    assert len(marker_reads) == 2

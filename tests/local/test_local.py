"""The embedded local stack: a real moto HTTP endpoint reached through AWS_ENDPOINT_URL."""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

import boto3
import pytest

from eventlake.local.stack import local_stack


@pytest.mark.integration
def test_local_stack_points_clients_at_moto_and_restores_the_environment() -> None:
    assert "AWS_ENDPOINT_URL" not in os.environ

    with local_stack() as stack:
        assert os.environ["AWS_ENDPOINT_URL"] == stack.endpoint_url
        assert stack.endpoint_url.startswith("http://127.0.0.1:")
        # A plain boto3 client, no endpoint argument: AWS_ENDPOINT_URL alone routes it.
        s3 = boto3.client("s3")
        # (moto's state is per process: buckets of earlier tests in this worker are listed too)
        name = f"local-stack-check-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=name)
        assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    assert "AWS_ENDPOINT_URL" not in os.environ
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"  # the fixture's value, restored


def test_the_local_stack_handles_s3_writes_one_at_a_time_and_reads_together() -> None:
    # given an app that notes how many requests it is handling at once
    from eventlake.local.stack import AtomicS3Writes

    lock = threading.Lock()
    readers = threading.Barrier(4, timeout=10)  # passed only by four reads inside at once
    inside = 0
    most: dict[str, int] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        nonlocal inside
        with lock:
            inside += 1
            key = environ["REQUEST_METHOD"]
            most[key] = max(most.get(key, 0), inside)
        if key == "GET":
            readers.wait()
        else:
            time.sleep(0.05)  # moto's check, then its write
        with lock:
            inside -= 1
        return [b""]

    wrapped = AtomicS3Writes(app)
    s3 = "AWS4-HMAC-SHA256 Credential=testing/20240510/us-east-1/s3/aws4_request, ..."

    def call(method: str) -> None:
        wrapped({"REQUEST_METHOD": method, "HTTP_AUTHORIZATION": s3,
                 "HTTP_IF_NONE_MATCH": "*"}, lambda *a: None)

    # when four conditional PUTs, then four GETs, arrive together
    for method in ("PUT", "GET"):
        threads = [threading.Thread(target=call, args=(method,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # then the PUTs were handled one at a time (as S3 decides a conditional write atomically),
    # the reads side by side
    assert most == {"PUT": 1, "GET": 4}


def test_a_port_in_use_is_a_config_error_naming_it_not_an_exit() -> None:
    # given a port another program listens on
    import socket

    from eventlake.errors import ConfigError
    from eventlake.local.stack import start_moto_server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # when the local stack is asked to serve on it, then the caller gets an error it can
        # catch (werkzeug's own answer is to print and exit the process), naming the port
        with pytest.raises(ConfigError, match=rf"127\.0\.0\.1:{port}.*in use"):
            start_moto_server(port=port)

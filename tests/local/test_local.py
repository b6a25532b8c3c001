"""The embedded local stack: a real moto HTTP endpoint reached through AWS_ENDPOINT_URL."""

from __future__ import annotations

import os
import uuid

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

"""Helpers of the S3 tests (the moto server)."""

from __future__ import annotations

import boto3


def keys(bucket: str, endpoint: str) -> list[str]:
    """Every object key of `bucket`, sorted."""
    s3 = boto3.client("s3", endpoint_url=endpoint)
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))

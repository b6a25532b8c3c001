"""The lake's S3 bucket: created private and encrypted by `eventlake init`."""

from __future__ import annotations

from eventlake.aws import Clients, error_code


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    rest = uri[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


def ensure_bucket(clients: Clients, uri: str) -> list[str]:
    """Create the bucket when missing, block public access and turn on default encryption."""
    bucket, _ = split_s3_uri(uri)
    s3 = clients.s3
    changes: list[str] = []
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception as exc:
        if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        region = clients.settings.region
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={
                "LocationConstraint": region})  # type: ignore[typeddict-item]
        changes.append(f"created bucket `{bucket}`")
    block = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
             "RestrictPublicBuckets": True}
    try:
        current = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except Exception as exc:
        if error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
            raise
        current = {}
    if any(not current.get(k) for k in block):
        s3.put_public_access_block(Bucket=bucket,
                                   PublicAccessBlockConfiguration=block)  # type: ignore[arg-type]
        changes.append(f"blocked public access on `{bucket}`")
    try:
        s3.get_bucket_encryption(Bucket=bucket)
    except Exception as exc:
        if error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                       "BucketKeyEnabled": True}]})
        changes.append(f"enabled default encryption on `{bucket}`")
    return changes

"""JSONL on S3. Placeholder: being written."""

from __future__ import annotations

from eventlake.aws import Clients
from eventlake.replay.targets import Target, TargetError


class S3JsonlTarget(Target):
    def __init__(self, uri: str, clients: Clients) -> None:
        raise TargetError(f"target `jsonl:{uri}` is not done yet")

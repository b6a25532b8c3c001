"""The AWS targets (sqs, eventbridge, kinesis, lambda). Placeholder: being written."""

from __future__ import annotations

from eventlake.aws import Clients
from eventlake.replay.targets import Target, TargetError


def target(kind: str, name: str, clients: Clients) -> Target:
    raise TargetError(f"target `{kind}:{name}` is not done yet")

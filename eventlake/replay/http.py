"""The HTTP target. Placeholder: being written."""

from __future__ import annotations

from eventlake.replay.targets import Target, TargetError


class HttpTarget(Target):
    def __init__(self, url: str) -> None:
        raise TargetError(f"target `{url}` is not done yet")

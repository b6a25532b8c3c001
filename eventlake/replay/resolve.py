"""`target_for`: the target a `--target` names (or a Target, or a callable)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventlake.aws import Clients
from eventlake.replay.batch import Event
from eventlake.replay.shapes import Shape
from eventlake.replay.targets import (
    CallableTarget,
    JsonlTarget,
    StdoutTarget,
    Target,
    TargetError,
)

KINDS = ("stdout, jsonl:PATH (a local path or s3://), sqs:QUEUE, eventbridge:BUS, "
         "kinesis:STREAM, lambda:FUNCTION, http(s)://URL")
"""The named targets, for messages and --help."""


def target_for(spec: str | Target | Callable[[list[Event]], Any],
               shape: Shape | None = None, clients: Clients | None = None) -> Target:
    """The target `spec` names (see KINDS; or a Target, or a callable), sending events in
    `shape` (None: `seed`). AWS targets use `clients` (default: built from the environment)."""
    target = _target(spec, clients)
    target.shape = shape
    return target


def _target(spec: str | Target | Callable[[list[Event]], Any],
            clients: Clients | None) -> Target:
    if isinstance(spec, Target):
        return spec
    if not isinstance(spec, str):
        if callable(spec):
            return CallableTarget(spec)
        raise TargetError(f"target {spec!r} is neither a name nor a callable")
    kind, sep, rest = spec.partition(":")
    if spec == "stdout":
        return StdoutTarget()
    if kind == "jsonl" and sep and rest:
        if rest.startswith("s3://"):
            from eventlake.replay.s3jsonl import S3JsonlTarget

            return S3JsonlTarget(rest, clients or _clients())
        if "://" in rest:
            raise TargetError(f"target `{spec}`: a JSONL file is a local path or s3://")
        return JsonlTarget(rest)
    if kind in ("sqs", "eventbridge", "kinesis", "lambda") and sep and rest:
        from eventlake.replay import aws

        return aws.target(kind, rest, clients or _clients())
    if kind in ("http", "https") and rest.startswith("//"):
        from eventlake.replay.http import HttpTarget

        return HttpTarget(spec)
    raise TargetError(f"unknown target `{spec}`; expected one of: {KINDS} "
                      "(or, in Python, a callable taking a list of events)")


def _clients() -> Clients:
    from eventlake.config import Settings

    return Clients(Settings.from_env())

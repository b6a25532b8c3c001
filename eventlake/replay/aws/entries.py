"""What the AWS targets share: one event as a request entry, the size rules, cutting a batch
into calls, and `EntryTarget`, which sends those calls one after another through
`backoff.deliver` (only refused entries are resent).

    Batch ─ entries() ─> [Entry(event_id, fields, size)]
          ─ one too big alone? ─> DeliveryError, nothing of the batch sent
          ─ chunks(limits) ─> call 1, call 2, ... (one after another: no call overtakes)
          ─ deliver(put) ─> refused entries resent after a full-jitter wait, else DeliveryError
                            (at once when one is refused for good: Refused.final)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventlake.aws import Clients, error_code
from eventlake.events.canonical import canonical_json, digest
from eventlake.replay.backoff import Backoff, Refused, deliver
from eventlake.replay.batch import Batch
from eventlake.replay.shapes import SHAPES
from eventlake.replay.targets import DeliveryError, Target, TargetError

_log = logging.getLogger("eventlake.replay")


@dataclass(frozen=True)
class Entry:
    """One event as one entry of a request: the API's fields (without a per-call Id), the
    bytes it counts toward the target's limits, its FIFO message group (SQS) and the names a
    consumer may report it by (Lambda's `itemIdentifier`)."""

    event_id: str
    fields: dict[str, Any]
    size: int
    group: str | None = None
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    """What one call may carry: `entries` entries of at most `entry_bytes` each, at most
    `request_bytes` together. `what` names one entry in messages ("an SQS message")."""

    entries: int
    request_bytes: int
    entry_bytes: int
    what: str


@dataclass(frozen=True)
class Meta:
    """The columns of one event the targets route by (read from the batch, no payload parse)."""

    event_id: str
    event_type: str
    timestamp: datetime
    source: str | None
    subject: str | None


def metas(batch: Batch) -> list[Meta]:
    columns = [batch.rows.column(name).to_pylist()
               for name in ("event_id", "event_type", "timestamp", "source", "subject")]
    return [Meta(*values) for values in zip(*columns, strict=True)]


def shaped_bodies(batch: Batch, shape: Any) -> tuple[list[bytes], list[Any]]:
    """Each event in `shape` as canonical JSON bytes, and the shaped values (empty for the
    `seed` shape, whose bytes are the seed lines DuckDB built: no payload is parsed)."""
    if shape is None:
        lines = batch.seed_lines().split(b"\n")
        if len(lines) != len(batch) + 1 or lines[-1]:
            raise ValueError(f"{len(batch)} events gave {len(lines) - 1} seed lines")
        return lines[:-1], []
    values = batch.shaped(shape)
    return [canonical_json(value).encode() for value in values], values


def is_shape(shape: Any, name: str) -> bool:
    """Whether `shape` is the registered shape `name` (shapes.py may not define it)."""
    return shape is not None and shape is SHAPES.get(name)


def fitted(value: str, max_len: int, allowed: Callable[[str], bool] = lambda _: True) -> str:
    """`value` itself when it is 1..max_len characters that `allowed` accepts, else its
    SHA-256 (64 hex digits): the same value always maps to the same key."""
    if 0 < len(value) <= max_len and allowed(value):
        return value
    return digest(value)


def refuse_oversize(target: str, entries: Sequence[Entry], limits: Limits) -> None:
    """DeliveryError naming every entry above the per-entry limit (before anything is sent:
    an event is never skipped nor truncated)."""
    big = [e for e in entries if e.size > limits.entry_bytes]
    if big:
        sizes = ", ".join(f"`{e.event_id}` {e.size:,} bytes" for e in big[:5])
        raise DeliveryError(target, [e.event_id for e in big],
                            f"larger than {limits.what} may be ({limits.entry_bytes:,} bytes): "
                            f"{sizes}; events are never truncated, so select them out "
                            "(--where) or use a target that takes them")


def chunks(entries: Sequence[Entry], limits: Limits) -> Iterator[list[Entry]]:
    """`entries` in order, cut into calls of at most `limits.entries` entries and
    `limits.request_bytes` bytes (every entry already fits alone)."""
    chunk: list[Entry] = []
    held = 0
    for entry in entries:
        if chunk and (len(chunk) == limits.entries or held + entry.size > limits.request_bytes):
            yield chunk
            chunk, held = [], 0
        chunk.append(entry)
        held += entry.size
    if chunk:
        yield chunk


def call(target: str, entries: Sequence[Entry], method: Callable[..., Any],
         **kwargs: Any) -> Any:
    """`method(**kwargs)`; an AWS error (botocore has already retried what is transient)
    becomes a DeliveryError naming the call's events."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return method(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise DeliveryError(target, [e.event_id for e in entries],
                            f"the call failed: {exc}") from exc


def missing(target: str, exc: Exception) -> TargetError:
    """The error for a target AWS says does not exist."""
    return TargetError(f"target `{target}` does not exist ({error_code(exc)}): create it, "
                       "or check the name, the region and AWS_ENDPOINT_URL")


DENIED = ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation",
          "AuthorizationError")
"""Error codes of a call the role may not make."""


def ensure_exists(target: str, check: Callable[[], Any],
                  codes: tuple[str, ...] = ("ResourceNotFoundException",)) -> None:
    """Run `check` (a Describe/Get call); a ClientError with one of `codes` becomes the
    TargetError of `missing`. A role allowed to send but not to describe (least privilege:
    `events:PutEvents` without `events:DescribeEventBus`) skips the check with a warning: a
    target that is not there then fails the first batch, naming its events. Other errors pass
    through."""
    from botocore.exceptions import ClientError

    try:
        check()
    except ClientError as exc:
        if error_code(exc) in codes:
            raise missing(target, exc) from exc
        if error_code(exc) in DENIED:
            cannot_check(target, exc)
            return
        raise


def cannot_check(target: str, exc: Exception) -> None:
    """Log that the role may not describe `target`, so its check was skipped."""
    operation = getattr(exc, "operation_name", None) or "the check"
    _log.warning("could not check target `%s` before sending (%s denied: %s); sending anyway: "
                 "a missing target fails the first batch", target, operation, error_code(exc))


def refused_in(action: str, entries: Sequence[Entry], results: list[dict[str, Any]],
               final_codes: frozenset[str] = frozenset()) -> list[Refused[Entry]]:
    """The entries a call's per-entry `results` (one per entry, in order: PutEvents'
    `Entries`, PutRecords' `Records`) mark with an ErrorCode; those of `final_codes` are
    refused for good (not resent)."""
    if len(results) != len(entries):
        raise ValueError(f"{action} answered {len(results)} results for {len(entries)} entries")
    return [Refused(entry, entry.event_id, reason(result["ErrorCode"], result.get("ErrorMessage")),
                    final=result["ErrorCode"] in final_codes)
            for entry, result in zip(entries, results, strict=True) if result.get("ErrorCode")]


def reason(code: Any, message: Any) -> str:
    """An entry's refusal as `Code: message`."""
    return f"{code}: {message}" if message else str(code)


class EntryTarget(Target):
    """A target that puts entries in calls: subclasses say how an event becomes an Entry
    (`entries`) and how one call goes (`put`, returning the refused entries)."""

    kind = ""
    limits: Limits

    def __init__(self, name: str, clients: Clients, backoff: Backoff | None = None) -> None:
        self.name = name
        self.clients = clients
        self.backoff = backoff or Backoff()

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"

    def describe(self) -> str:
        return self.label

    def entries(self, batch: Batch) -> list[Entry]:
        raise NotImplementedError

    def put(self, entries: Sequence[Entry]) -> list[Refused[Entry]]:
        raise NotImplementedError

    def send(self, batch: Batch) -> int | None:
        entries = self.entries(batch)
        refuse_oversize(self.label, entries, self.limits)
        for chunk in chunks(entries, self.limits):
            deliver(self.label, chunk, self.put, self.backoff)
        return None

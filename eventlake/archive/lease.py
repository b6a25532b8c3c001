"""Leases: a lock with an expiry, kept in lake state, so one sweep runs at a time and a crashed
holder blocks the next one for at most the lease's TTL.

    <root>/_eventlake/locks/<name>   {"holder", "run_id", "acquired_at", "expires_at", "released"}

    acquire   absent            -> create it (If-None-Match / exclusive)   lost race: locked
              expired, released -> replace it (If-Match its version)       lost race: locked
              held              -> SweepLockedError naming the holder and its expiry
    renew     replace our own version with a later expiry                  lost: LeaseLostError
    release   replace our own version with `released: true`                lost: nothing to do

Every change is a compare-and-swap on the version just read, so of two sweeps that find the same
expired lease exactly one takes it over. Expiry is judged on the wall clock of whoever reads the
lease: keep the hosts' clocks in sync (NTP) and the TTL far above any skew.

A holder that stalls past its expiry loses the lease to the next sweep. That costs duplicate
work at worst, never data: the sweep's writes are anti-joined, and the watermark moves only by
compare-and-swap on the version the sweep read when it started.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from eventlake.errors import EventLakeError, StorageError
from eventlake.events.times import format_ts
from eventlake.lake.state import LakeState, StateConflictError

__all__ = ["Lease", "LeaseLostError", "SweepLockedError", "acquire_lease", "read_lease"]

_log = logging.getLogger("eventlake.archive.lease")
Clock = Callable[[], datetime]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class SweepLockedError(EventLakeError):
    """Another run holds the lease: let it finish (or let its lease expire) and run again."""

    def __init__(self, message: str, *, holder: str | None = None,
                 expires_at: datetime | None = None) -> None:
        super().__init__(message)
        self.holder = holder
        self.expires_at = expires_at


class LeaseLostError(SweepLockedError):
    """Our lease expired and another run took it over while we were working."""


@dataclass(frozen=True)
class LeaseState:
    """A lease as stored: who holds it and until when."""

    holder: str
    run_id: str
    acquired_at: datetime
    expires_at: datetime
    released: bool
    version: str

    def free(self, now: datetime) -> bool:
        return self.released or self.expires_at <= now


def read_lease(lake: LakeState, name: str) -> LeaseState | None:
    """The lease `name` as stored (held, expired or released), or None if never taken."""
    found = lake.read_state(_key(name))
    if found is None:
        return None
    data, version = found
    try:
        raw = json.loads(data)
        return LeaseState(str(raw["holder"]), str(raw["run_id"]),
                          datetime.fromisoformat(raw["acquired_at"]),
                          datetime.fromisoformat(raw["expires_at"]), bool(raw["released"]),
                          version)
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"lease `{_key(name)}` of lake `{getattr(lake, 'root', '?')}` is not "
                           f"readable ({exc}); if no run is active, delete it and run again"
                           ) from exc


@dataclass
class Lease:
    """A lease we hold. Use as a context manager (released on exit), or call `release()`."""

    lake: LakeState
    name: str
    holder: str
    run_id: str
    ttl_seconds: float
    acquired_at: datetime
    expires_at: datetime
    version: str
    clock: Clock = field(default=_wall_clock, repr=False)
    released: bool = False

    def renew_if_due(self) -> None:
        """Renew once a third of the TTL is used up (cheap to call often: no I/O before)."""
        if self.clock() >= self.expires_at - timedelta(seconds=self.ttl_seconds * 2 / 3):
            self.renew()

    def renew(self) -> None:
        """Push the expiry a full TTL ahead; LeaseLostError if another run took the lease."""
        now = self.clock()
        expires_at = now + timedelta(seconds=self.ttl_seconds)
        try:
            self.version = self.lake.swap_state(
                _key(self.name), self._data(expires_at, released=False), expected=self.version)
        except StateConflictError as exc:
            current = read_lease(self.lake, self.name)
            raise LeaseLostError(
                f"lease `{self.name}` of run `{self.run_id}` expired and was taken over by "
                f"{_describe(current)}: stopping before moving the watermark (the files written "
                f"so far are kept; the next run skips them). If this repeats, raise the lease "
                f"TTL ({self.ttl_seconds:g} s) above the run's duration",
                holder=current.holder if current else None,
                expires_at=current.expires_at if current else None) from exc
        self.expires_at = expires_at

    def release(self) -> None:
        """Mark the lease released so the next run need not wait for its expiry. A release
        that loses its race (the lease expired and was taken over) changes nothing."""
        if self.released:
            return
        self.released = True
        try:
            self.version = self.lake.swap_state(
                _key(self.name), self._data(self.clock(), released=True), expected=self.version)
        except StateConflictError:
            _log.warning("lease `%s` of run `%s` was taken over before release", self.name,
                         self.run_id)

    def _data(self, expires_at: datetime, *, released: bool) -> bytes:
        return _encode(self.holder, self.run_id, self.acquired_at, expires_at, released)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.release()
        except Exception:  # the lease expires on its own; never hide the run's own outcome
            _log.exception("could not release lease `%s` of run `%s`", self.name, self.run_id)


def acquire_lease(lake: LakeState, name: str, *, ttl_seconds: float, run_id: str,
                  holder: str | None = None, clock: Clock = _wall_clock) -> Lease:
    """Take lease `name` for `ttl_seconds`, or raise SweepLockedError while another holds it."""
    if not ttl_seconds > 0:
        raise ValueError(f"lease TTL must be > 0 seconds, got {ttl_seconds!r}")
    holder = holder or default_holder()
    current = read_lease(lake, name)
    now = clock()
    if current is not None and not current.free(now):
        raise _locked(name, current)
    expires_at = now + timedelta(seconds=ttl_seconds)
    data = _encode(holder, run_id, now, expires_at, False)
    try:
        version = lake.swap_state(_key(name), data,
                                  expected=None if current is None else current.version)
    except StateConflictError as exc:  # another run created or took it over first
        winner = read_lease(lake, name)
        if winner is None:  # taken and already released in between: let the caller retry
            raise SweepLockedError(f"lease `{name}` changed while taking it; run again") from exc
        raise _locked(name, winner) from exc
    if current is not None and not current.released:
        _log.warning("took over expired lease `%s` from %s", name, _describe(current))
    return Lease(lake, name, holder, run_id, ttl_seconds, now, expires_at, version, clock)


def default_holder() -> str:
    """`host:pid:thread`, so an operator can tell who holds a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


def _locked(name: str, current: LeaseState) -> SweepLockedError:
    return SweepLockedError(
        f"lease `{name}` is held by {_describe(current)}: another run is in progress; run again "
        f"after it finishes. If that run crashed, its lease expires at "
        f"{format_ts(current.expires_at)} and the next run takes it over",
        holder=current.holder, expires_at=current.expires_at)


def _describe(lease: LeaseState | None) -> str:
    if lease is None:
        return "nobody (it was released meanwhile)"
    return (f"`{lease.holder}` (run `{lease.run_id}`, until "
            f"{format_ts(lease.expires_at)})")


def _encode(holder: str, run_id: str, acquired_at: datetime, expires_at: datetime,
            released: bool) -> bytes:
    raw: dict[str, Any] = {"holder": holder, "run_id": run_id,
                           "acquired_at": format_ts(acquired_at),
                           "expires_at": format_ts(expires_at), "released": released}
    return json.dumps(raw, sort_keys=True).encode()


def _key(name: str) -> str:
    return f"locks/{name}"

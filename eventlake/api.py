"""`EventLake`: the Python API, one object per (table, lake) pair.

It validates events (events.py), stores them (hot.py) and reports state. Heavy parts (DuckDB,
Prefect) are imported only by the methods that need them, so a Lambda importing this module
stays small.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from eventlake.aws import Clients
from eventlake.config import Settings
from eventlake.errors import InvalidEventError
from eventlake.events import Event, parse_event
from eventlake.hot import HotStore, Outcome, PutResult


class EventLake:
    """The event lake: hot DynamoDB tier plus cold Parquet tier, configured by `Settings`."""

    def __init__(self, settings: Settings | None = None, *, clients: Clients | None = None
                 ) -> None:
        self.settings = settings or Settings.from_env()
        self.clients = clients or Clients(self.settings)

    @classmethod
    def from_env(cls, **overrides: Any) -> EventLake:
        """Settings from EVENTLAKE_* / AWS_* variables; keyword arguments override them."""
        return cls(Settings.from_env(**overrides))

    @cached_property
    def hot(self) -> HotStore:
        return HotStore(self.settings, self.clients)

    def init(self) -> list[str]:
        """Provision the table (and the bucket of an s3:// lake); idempotent. Returns changes."""
        changes = self.hot.provision()
        if self.settings.lake_uri.startswith("s3://"):
            from eventlake.bucket import ensure_bucket

            changes += ensure_bucket(self.clients, self.settings.lake_uri)
        return changes

    def put(self, event: Any) -> PutResult:
        """Validate and store one event (any accepted shape); see `Outcome` for the results."""
        return self.put_many([event])[0]

    def put_many(self, events: Iterable[Any], *, now: datetime | None = None
                 ) -> list[PutResult]:
        """Validate and store events; one result per input event, in input order.

        Invalid events are reported (outcome `invalid`, with the rule) and the valid ones are
        still stored. Nothing is written partially without a result saying so.
        """
        now = now or datetime.now(UTC)
        results: list[PutResult | None] = []
        valid: list[Event] = []
        positions: list[int] = []
        for position, raw in enumerate(events):
            try:
                event = raw if isinstance(raw, Event) else parse_event(raw, position=position,
                                                                       now=now)
            except InvalidEventError as exc:
                results.append(PutResult(position, exc.event_id, Outcome.INVALID, str(exc),
                                         exc.rule))
                continue
            results.append(None)
            valid.append(event)
            positions.append(position)
        for result in self.hot.put_many(valid, positions):
            results[result.position] = result
        return [r for r in results if r is not None]

    def status(self) -> dict[str, Any]:
        """Hot table state and lake location (later: watermark, archive lag, TTL margin)."""
        return {"hot": self.hot.describe(), "lake_uri": self.settings.lake_uri,
                "region": self.settings.region, "endpoint_url": self.settings.endpoint_url}

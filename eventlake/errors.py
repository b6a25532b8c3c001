"""The error tree: one root, split by what the caller should do next.

    EventLakeError
    ├── ConfigError          a setting is missing or malformed (fix the environment)
    │   ├── TableNotFoundError   EVENTLAKE_TABLE names no table (run `eventlake init`)
    │   └── LakeNotFoundError    EVENTLAKE_LAKE_URI names no lake (run `eventlake init`)
    ├── InvalidEventError    an event breaks a rule (fix the event; never retried)
    ├── TransientError       throttling, timeouts, 5xx (safe to retry: writes are idempotent)
    └── StorageError         the store refused or returned something we cannot use

A different event under a stored event_id is not raised: `put` answers `Outcome.CONFLICT`.
"""

from __future__ import annotations


class EventLakeError(Exception):
    """Root of every error eventlake raises on purpose."""


class ConfigError(EventLakeError, ValueError):
    """A setting is missing or malformed; the message names the variable."""


class TableNotFoundError(ConfigError):
    """The DynamoDB table does not exist: never initialised, or EVENTLAKE_TABLE is wrong."""


class InvalidEventError(EventLakeError, ValueError):
    """An event breaks a rule of the event model.

    `position` is the event's index in its request (0 for a single event), `event_id` its id
    when it had one, `rule` a short stable name (e.g. ``timestamp.future``) that tests and
    dashboards can key on.
    """

    def __init__(self, rule: str, message: str, *, position: int | None = None,
                 event_id: str | None = None) -> None:
        self.rule = rule
        self.detail = message
        self.position = position
        self.event_id = event_id
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.position is not None:
            where.append(f"#{self.position}")
        if self.event_id is not None:
            where.append(f"`{self.event_id}`")
        who = f"event {' '.join(where)}" if where else "event"
        return f"{who}: {self.detail} [rule {self.rule}]"

    def at(self, position: int) -> InvalidEventError:
        """The same error, naming the event's position in its request."""
        return InvalidEventError(self.rule, self.detail, position=position, event_id=self.event_id)


class TransientError(EventLakeError):
    """Throttling, timeouts or a 5xx from AWS: retrying the same call is safe."""


class StorageError(EventLakeError):
    """The store refused a request in a way retrying will not fix."""


class LakeNotFoundError(ConfigError, StorageError):
    """The lake does not exist (no `_eventlake/lake.json`, no events, or no bucket): never
    initialised, or EVENTLAKE_LAKE_URI is wrong. Still a StorageError, as a missing bucket
    was before it had a name of its own."""

"""eventlake: an event lake for AWS (DynamoDB hot tier, Parquet cold tier, DuckDB over both)."""

from __future__ import annotations

from eventlake.api import EventLake
from eventlake.config import VERSION, Settings
from eventlake.errors import (
    ConfigError,
    EventLakeError,
    InvalidEventError,
    StorageError,
    TransientError,
)
from eventlake.events.model import Event, parse_event
from eventlake.hot.results import Outcome, PutResult

__all__ = [
    "ConfigError",
    "Event",
    "EventLake",
    "EventLakeError",
    "InvalidEventError",
    "Outcome",
    "PutResult",
    "Settings",
    "StorageError",
    "TransientError",
    "parse_event",
]
__version__ = VERSION

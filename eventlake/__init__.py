"""eventlake: an event lake for AWS (DynamoDB hot tier, Parquet cold tier, DuckDB over both).

The names below are imported on first use (PEP 562): `import eventlake` alone, which every
submodule's import runs first (the CLI, the Lambda handlers), costs next to nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventlake.api import EventLake
    from eventlake.config import VERSION as __version__  # noqa: F401
    from eventlake.config import Settings
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
_HOMES = {
    "__version__": "eventlake.config",
    "EventLake": "eventlake.api",
    "Settings": "eventlake.config",
    "ConfigError": "eventlake.errors",
    "EventLakeError": "eventlake.errors",
    "InvalidEventError": "eventlake.errors",
    "StorageError": "eventlake.errors",
    "TransientError": "eventlake.errors",
    "Event": "eventlake.events.model",
    "parse_event": "eventlake.events.model",
    "Outcome": "eventlake.hot.results",
    "PutResult": "eventlake.hot.results",
}
"""Where each public name lives."""


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'eventlake' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), "VERSION" if name == "__version__" else name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

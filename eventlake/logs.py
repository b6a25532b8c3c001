"""Loggers that import `logging` when they first log.

`logging` costs ~2 ms to import. `eventlake sql --cold-only` logs nothing, and the modules it
loads (config, the lake's readers, the views) are where most of eventlake's loggers live, so
those modules name their logger with `lazy_logger` instead of `logging.getLogger`: the same
logger, fetched on the first call.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LazyLogger", "lazy_logger"]


class LazyLogger:
    """Stands in for `logging.getLogger(name)`: every attribute (`info`, `warning`,
    `isEnabledFor`, ...) is the real logger's, looked up on use."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attribute: str) -> Any:
        import logging

        return getattr(logging.getLogger(self.name), attribute)


def lazy_logger(name: str) -> LazyLogger:
    """The logger `name`, importing `logging` on its first use (the module docstring)."""
    return LazyLogger(name)

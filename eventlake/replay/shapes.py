"""The shapes a replayed event takes (`--shape`): a function from the `seed` event dict to
what a target sends. `seed` is the event itself (None here: targets then use the fast path,
`Batch.seed_lines`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventlake.errors import ConfigError

Event = dict[str, Any]
Shape = Callable[[Event], Any]

SHAPES: dict[str, Shape | None] = {"seed": None}
"""Every shape by name; `seed` maps to None (the event as it is)."""


class ShapeError(ConfigError):
    """An unknown shape, or one the target cannot carry."""


def shape_for(name: str) -> Shape | None:
    """The shape called `name` (None for `seed`); ShapeError naming the known ones."""
    try:
        return SHAPES[name]
    except KeyError:
        raise ShapeError(f"unknown shape `{name}`; expected one of: "
                         f"{', '.join(SHAPES)}") from None


def shaped(events: list[Event], shape: Shape | None) -> list[Any]:
    """`events` in `shape` (the same list for `seed`)."""
    return events if shape is None else [shape(event) for event in events]

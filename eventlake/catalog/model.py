"""What a catalog holds for the lake, in one engine's spelling: the raw table over `events/`
(Hive partitions on `dt`), the view `events` (one row per event_id by the lake's one-copy rule)
and the typed views `ev_<type>` (query/typed.py's schema).

`ddl.build` makes a `Catalog` for a dialect; `ddl.statements` prints it as DDL, and `glue`
registers the Athena one in the Glue Data Catalog. Both read only this description.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

__all__ = ["DIALECTS", "RAW_TABLE", "Catalog", "Column", "Dialect", "View"]

Dialect = Literal["athena", "spark", "trino"]
DIALECTS: tuple[str, ...] = get_args(Dialect)
RAW_TABLE = "events_raw"
"""The table over the lake's files as they are (copies of an event included)."""


@dataclass(frozen=True)
class Column:
    """A column: its name, and its type as the dialect spells it (for Athena's raw table, Hive
    DDL types such as `string`; for views, the query engine's, such as `varchar`)."""

    name: str
    type: str


@dataclass(frozen=True)
class View:
    """A view: its name, its SELECT in the dialect, and the columns it returns."""

    name: str
    sql: str
    columns: tuple[Column, ...]
    comment: str = ""


@dataclass(frozen=True)
class Catalog:
    """The lake as one dialect's catalog sees it."""

    dialect: Dialect
    location: str
    """The URI of the lake's `events/` folder, ending in `/`, in the engine's scheme."""
    columns: tuple[Column, ...]
    """The raw table's data columns, in the files' order (EVENT_SCHEMA)."""
    partition: Column
    """`dt`, the UTC date of `timestamp`: only in the path (`dt=YYYY-MM-DD/`)."""
    views: tuple[View, ...]
    """`events` first, then the typed views by name."""
    database: str | None = None
    """The schema/database the statements qualify names with (None: unqualified)."""
    table: str = RAW_TABLE
    properties: Mapping[str, str] = field(default_factory=dict)
    """Table properties (Athena: partition projection)."""

"""The names eventlake's writers give their event files, and what a name says about a file.

    stream-<first>-<last>-<digest>   the stream archiver (archive/stream.py), `stream-x<digest>`
    sweep-<since>-<until>-...        the sweep, over its ingestion window [since, until)
    expiry-<since>-<until>-...       the expiry check, over its band [since, until)
    backfill-<k>of<n>-...            the backfill, Scan segment k of n
    repair-<start>-<end>-<day>-...   reconcile's repair
    compacted-<digest>-<k>-of-<n>    compaction (lake/compactplan.py)
    removed-...                      the stream archiver, old images of REMOVEs the lake
                                     lacked (archive/removed.py)

(`...`: the writer's `<chunk>-<digest of the ids>`, archive/writer.py.)

A window's bounds are UTC times as `%Y%m%dT%H%M%S%f` (microseconds, no zone): `window_name`
writes them, `parse_window` reads them back. Files whose names none of these writers gives
are someone else's (`is_own_file`): the lake checks their schema before reading them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from eventlake.events.times import as_utc

__all__ = ["WRITERS", "Window", "WindowKind", "is_own_file", "parse_window", "window_name"]

WindowKind = Literal["sweep", "expiry"]
"""The writers that name their files after the ingestion window they read."""
WRITERS = ("stream", "sweep", "expiry", "backfill", "repair", "compacted", "removed")
"""The prefixes of the names eventlake's writers give their files."""
_OWN_FILE = re.compile(rf"(?:{'|'.join(WRITERS)})-[^/]*\.parquet")
_TIME = "%Y%m%dT%H%M%S%f"
_WINDOW = re.compile(r"^(sweep|expiry)-(\d{8}T\d{12})-(\d{8}T\d{12})-")


@dataclass(frozen=True)
class Window:
    """The ingestion window [since, until) a `sweep-` or `expiry-` file was written from."""

    kind: WindowKind
    since: datetime
    until: datetime


def window_name(kind: WindowKind, since: datetime, until: datetime) -> str:
    """`<kind>-<since>-<until>`: the name (less the writer's chunk suffix) of the files written
    from the ingestion window [since, until)."""
    return f"{kind}-{as_utc(since):{_TIME}}-{as_utc(until):{_TIME}}"


def parse_window(file_name: str) -> Window | None:
    """The window a `sweep-` or `expiry-` file name (a chunk of `window_name`'s) holds; None
    for any other name."""
    match = _WINDOW.match(file_name)
    if match is None:
        return None
    kind: WindowKind = "sweep" if match.group(1) == "sweep" else "expiry"
    since, until = (datetime.strptime(g, _TIME).replace(tzinfo=UTC) for g in match.groups()[1:])
    return Window(kind, since, until)


def is_own_file(file_name: str) -> bool:
    """Whether one of eventlake's writers gives a file this name (a base name, no folder)."""
    return _OWN_FILE.fullmatch(file_name) is not None

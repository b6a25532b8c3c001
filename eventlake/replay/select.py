"""`Selection`: which events a replay reads, and the SQL that reads one UTC day of them.

Every value a caller gives (times, types, subject, the resume position) is a DuckDB bound
parameter, never text in the SQL. The one piece of caller SQL is `where`, a predicate over the
`events` columns. It must parse as ONE SQL expression on its own (`duckdb.SQLExpression`:
no unbalanced parenthesis, no `;`, no FROM/UNION/ORDER BY...), else SelectionError. It is
applied in an inner query, in parentheses on lines of its own (a trailing `--` comment or a
bare `OR` stays inside), and the bound predicates (day, range, types, subject, position) wrap
it from outside:

    SELECT ... FROM (SELECT * FROM events WHERE (
    <where>
    )) AS selected WHERE dt BETWEEN $first_dt AND $last_dt AND timestamp >= $from_ts ...
    ORDER BY timestamp, event_id
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from eventlake.errors import ConfigError
from eventlake.events.times import as_utc, format_ts

COLUMNS = ("event_id", "event_type", "timestamp", "source", "subject", "event_payload",
           "ingested_at")
"""What a replay reads of each event: the `seed` shape's fields, and `ingested_at` (the
`stream` shape's record carries the stored item, which has it)."""

PASTABLE_PAYLOAD_SQL = r"""CASE WHEN json_valid(event_payload) THEN
    json(event_payload) = event_payload
    AND NOT regexp_matches(event_payload, '[:\[,]-?[nNiI][aAnN]') END"""
"""Whether the stored payload text can be pasted into a JSON line as it is: JSON that DuckDB's
writer gives back unchanged (no whitespace, hence no raw CR/LF; no trailing comma; numbers and
escapes as written), without the NaN/Infinity DuckDB's lenient parser accepts; NULL (not
safe) when DuckDB cannot parse it (`json()` would fail the query). What eventlake
stores (canonical JSON) passes; a foreign producer's text mostly does not."""

SEED_LINE_SQL = f"""CASE WHEN {PASTABLE_PAYLOAD_SQL} THEN
    '{{"event_id":' || to_json(event_id)
    || ',"event_payload":' || event_payload
    || ',"event_type":' || to_json(event_type)
    || ',"source":' || coalesce(to_json(source), 'null')
    || ',"subject":' || coalesce(to_json(subject), 'null')
    || ',"timestamp":"' || strftime(timezone('UTC', timestamp), '%Y-%m-%dT%H:%M:%S.%fZ')
    || '"}}' || chr(10) END"""
"""The event's `seed` JSON line, built by DuckDB: canonical JSON (keys sorted, no spaces, raw
UTF-8), `event_payload` the stored canonical JSON text as it is; NULL when that text is not
safe to paste (PASTABLE_PAYLOAD_SQL) or a column it needs is NULL: Batch.seed_lines then builds
that batch's lines in Python. Must equal `canonical_json(Batch.events[i]) + "\\n"` byte for
byte for every payload eventlake stores (tests/replay/test_shapes.py)."""


IDENTITY = "_ident"
"""The column of the read holding IDENTITY_SQL."""
IDENTITY_SQL = ("coalesce(TRY_CAST('0x' || left(content_hash, 16) AS UBIGINT), "
                "CAST('0x' || left(md5(event_id || '|' || coalesce(content_hash, '')), 16) "
                "AS UBIGINT))")
"""An event's identity as a number: the first 16 hex digits of its content_hash, as an unsigned
64-bit integer (`identity_of` computes it in Python). content_hash is the SHA-256 of the
canonical event, event_id included, so 64 bits of it tell events apart, and reading them costs
a cast per row, not a hash (an MD5 per row made a replay a fifth slower). A content_hash that
is not hex (a row planted by hand) falls back to the MD5 of `event_id|content_hash`. Stable
across DuckDB versions (DuckDB's `hash()` is not promised to be). The XOR of a set of events'
values (`bit_xor`) is the set's digest, whatever the order: a checkpoint records it for the
events at or before its position, so a late event and a vanished one cannot cancel out as they
do in a count."""

_HEX_PREFIX = re.compile(r"[0-9a-fA-F_]+")


def identity_of(event_id: str, content_hash: str | None) -> int:
    """IDENTITY_SQL in Python (what the tests hold DuckDB's to)."""
    prefix = (content_hash or "")[:16]
    if _HEX_PREFIX.fullmatch(prefix) and prefix.strip("_") == prefix and "__" not in prefix:
        return int(prefix, 16)
    text = f"{event_id}|{content_hash or ''}".encode()
    return int(hashlib.md5(text, usedforsecurity=False).hexdigest()[:16], 16)


class SelectionError(ConfigError):
    """A selection that cannot be read (an empty or inverted time range, ...)."""


@dataclass(frozen=True)
class Position:
    """A place in the total order: every event at or before it is done."""

    timestamp: datetime
    event_id: str


@dataclass(frozen=True)
class Selection:
    """Events with `from_ts <= timestamp < to_ts`, of `event_types` (any when empty), of
    `subject` (any when None), matching `where` (SQL over the `events` columns), read from
    `events`, or `events_cold` (the Parquet lake alone) when `cold_only`."""

    from_ts: datetime
    to_ts: datetime
    event_types: tuple[str, ...] = ()
    subject: str | None = None
    where: str | None = None
    cold_only: bool = False

    def __post_init__(self) -> None:
        start, end = as_utc(self.from_ts), as_utc(self.to_ts)
        if start >= end:
            raise SelectionError(f"the time range [`{format_ts(start)}`, `{format_ts(end)}`) is "
                                 "empty: --from must be before --to")
        object.__setattr__(self, "from_ts", start)
        object.__setattr__(self, "to_ts", end)
        object.__setattr__(self, "event_types", tuple(self.event_types))
        if self.where is not None and not self.where.strip():
            object.__setattr__(self, "where", None)
        if self.where is not None:
            check_where(self.where)

    @property
    def view(self) -> str:
        return "events_cold" if self.cold_only else "events"

    def day_range(self, after: Position | None = None) -> tuple[date, date]:
        """The first and last UTC day of [from_ts, to_ts) (from `after`'s day on when given;
        first > last when `after` is past the range). The read visits only the days in it that
        hold events (read.day_sizes)."""
        first = self.from_ts.date()
        if after is not None:
            first = max(first, as_utc(after.timestamp).date())
        return first, (self.to_ts - timedelta(microseconds=1)).date()

    def days(self, after: Position | None = None) -> Iterator[date]:
        """Every UTC day of [from_ts, to_ts), in order; from `after`'s day on when given."""
        first, last = self.day_range(after)
        return (first + timedelta(days=n) for n in range((last - first).days + 1))

    def window_sql(self, first: date, last: date, after: Position | None = None, *,
                   ordered: bool = True, columns: str | None = None,
                   identity: str | None = IDENTITY_SQL) -> tuple[str, dict[str, Any]]:
        """The query of the selected events of the UTC days `first`..`last` after `after`, in
        (timestamp, event_id) order (unordered when not `ordered`: for counting), and its
        parameters. It selects `columns` (SQL over the `events` columns; default COLUMNS,
        `_line` and `_ident` (`identity`; left out when None), what a replay reads).
        `dt BETWEEN $first_dt AND $last_dt` says what the timestamp range implies (dt is the UTC
        date of timestamp): it lets the views skip other days' files unopened."""
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        params: dict[str, Any] = {"first_dt": first, "last_dt": last,
                                  "from_ts": max(self.from_ts, start),
                                  "to_ts": min(self.to_ts, end)}
        # The last predicate keeps each event on its own day whatever the window: a row filed
        # under another day than its timestamp's (only a hand-placed file can hold one: the
        # lake's writers refuse it) is never replayed, rather than replayed or not depending
        # on how the days fall into windows.
        where = ["dt BETWEEN $first_dt AND $last_dt", "timestamp >= $from_ts",
                 "timestamp < $to_ts", "CAST(timezone('UTC', timestamp) AS DATE) = dt"]
        if self.event_types:
            names = [f"type_{i}" for i in range(len(self.event_types))]
            params.update(zip(names, self.event_types, strict=True))
            where.append(f"event_type IN ({', '.join('$' + n for n in names)})")
        if self.subject is not None:
            params["subject"] = self.subject
            where.append("subject = $subject")
        if after is not None:
            params["after_ts"] = as_utc(after.timestamp)
            params["after_id"] = after.event_id
            where.append("(timestamp > $after_ts OR (timestamp = $after_ts "
                         "AND event_id > $after_id))")
        source = self.view
        if self.where is not None:
            source = f"(SELECT * FROM {self.view} WHERE (\n{self.where}\n)) AS selected"
        if columns is None:
            columns = (", ".join(f'"{c}"' for c in COLUMNS) + f",\n  {SEED_LINE_SQL} AS _line"
                       + (f",\n  {identity} AS {IDENTITY}" if identity is not None else ""))
        sql = (f"SELECT {columns} FROM {source}\nWHERE " + "\n  AND ".join(where)
               + ("\nORDER BY timestamp, event_id" if ordered else ""))
        return sql, params

    def describe(self) -> dict[str, Any]:
        """The selection as JSON values (a checkpoint records it, to refuse resuming another)."""
        return {"from": format_ts(self.from_ts), "to": format_ts(self.to_ts),
                "types": list(self.event_types), "subject": self.subject, "where": self.where,
                "cold_only": self.cold_only}


def check_where(where: str) -> None:
    """SelectionError unless `where` is one SQL expression (DuckDB's parser decides), so that
    it cannot reach past its parentheses: `false) OR (true`, `true) UNION ALL (SELECT ...`,
    `x; DROP ...` and a trailing `;` are refused. Whether its columns exist is for the query."""
    try:
        duckdb.SQLExpression(where)
        # the expression as the query holds it: a `;` SQLExpression forgives would end it
        [_] = duckdb.extract_statements(f"SELECT 1 WHERE (\n{where}\n)")
    except (duckdb.Error, ValueError) as exc:
        raise SelectionError(f"--where `{where}` is not one SQL expression (a predicate over "
                             f"the events columns, parentheses balanced, no `;`): "
                             f"{str(exc).splitlines()[0]}") from exc

"""`count`: what a selection holds after a position (events, first and last timestamp, count per
type) without reading the events: one aggregate query per window of days that hold events
(read.windows, as the read visits them).

It runs on the replay's own connection, so it counts the same snapshot the replay then sends
(the total behind the progress bar is exact), and it is what `--dry-run` prints. The query
wraps the day's selection unordered: DuckDB reads only the columns the predicates and the
aggregate need, builds no seed line and sorts nothing. On a compacted lake it costs a small
part of a replay of the same events (benchmarks/replay.py measures it).

`through` counts the events at or before a position and XORs their identities
(select.IDENTITY_SQL) in the same aggregate: what a resumed run compares with its checkpoint,
and what the end of a run compares with what it sent. An event's identity is a cast of its
content_hash's prefix.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb

from eventlake.events.times import as_utc
from eventlake.replay.read import windows
from eventlake.replay.select import IDENTITY_SQL, Position, Selection


@dataclass
class Tally:
    """The selected events after a position: how many, the first and last timestamp, per
    event_type."""

    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    per_type: Counter[str] = field(default_factory=Counter)


def count(con: duckdb.DuckDBPyConnection, selection: Selection,
          after: Position | None = None) -> Tally:
    """Tally `selection`'s events after `after` (all when None), over `con`'s views."""
    tally = Tally()
    for first, last in windows(con, selection, after):
        sql, params = selection.window_sql(first, last, after, ordered=False)
        relation = con.sql("SELECT event_type, count(*), min(timestamp), max(timestamp)\n"
                           f"FROM (\n{sql}\n) AS selected GROUP BY event_type", params=params)
        assert relation is not None  # a SELECT always gives one
        for event_type, n, first, last in relation.fetchall():
            tally.count += int(n)
            tally.per_type[str(event_type)] += int(n)
            first, last = as_utc(first), as_utc(last)
            tally.first = first if tally.first is None else min(tally.first, first)
            tally.last = last if tally.last is None else max(tally.last, last)
    return tally


@dataclass(frozen=True)
class Identities:
    """A set of events as a count and the XOR of their identities (select.IDENTITY_SQL)."""

    count: int = 0
    digest: int = 0

    def plus(self, count: int, digest: int) -> Identities:
        """This set and `count` more events whose identities XOR to `digest` (disjoint)."""
        return Identities(self.count + count, self.digest ^ digest)


def through(con: duckdb.DuckDBPyConnection, selection: Selection, position: Position,
            identity: str | None = IDENTITY_SQL) -> Identities:
    """`selection`'s events at or before `position` (in (timestamp, event_id) order), over
    `con`'s views, their identities `identity` (select.IDENTITY_SQL; None: the count alone,
    the digest 0): one aggregate query per
    window of days up to the position's."""
    upto = dataclasses.replace(selection, to_ts=min(
        selection.to_ts, as_utc(position.timestamp) + timedelta(microseconds=1)))
    total = Identities()
    for first, last in windows(con, upto):
        sql, params = upto.window_sql(first, last, ordered=False,
                                      columns=f"timestamp, event_id, "
                                              f"{identity or '0::UBIGINT'} AS _ident")
        params.update(at_ts=as_utc(position.timestamp), at_id=position.event_id)
        relation = con.sql("SELECT count(*), bit_xor(_ident)\n"
                           f"FROM (\n{sql}\n) AS selected\n"
                           "WHERE timestamp < $at_ts OR event_id <= $at_id", params=params)
        assert relation is not None  # a SELECT always gives one
        [(n, digest)] = relation.fetchall()  # an aggregate without GROUP BY: one row
        total = total.plus(int(n), int(digest or 0))
    return total


def count_after(con: duckdb.DuckDBPyConnection, selection: Selection, position: Position
                ) -> int:
    """How many of `selection`'s events come after `position`: one `count(*)` per window of
    the days from the position's on (what a finished run compares with nothing: it sent none
    of them, so each arrived while it ran)."""
    total = 0
    for first, last in windows(con, selection, position):
        sql, params = selection.window_sql(first, last, position, ordered=False,
                                           columns="event_id")
        relation = con.sql(f"SELECT count(*) FROM (\n{sql}\n) AS selected", params=params)
        assert relation is not None  # a SELECT always gives one
        [(n,)] = relation.fetchall()
        total += int(n)
    return total


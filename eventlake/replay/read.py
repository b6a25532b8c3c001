"""The ordered stream of selected events: (timestamp, event_id) order across tiers and
partitions, late events included, holding one UTC day of selected events at a time.

The lake partitions by dt, the UTC date of `timestamp`, so ordering each day and visiting the
days in order gives the total order. A late event (old timestamp, ingested now) sits in its own
old day, hot or cold, and the `events` view has each event once whichever tiers hold it. Only
the days that hold events are visited (`selected_days`: the partitions the lake's listing found
and the hot rows' days, within the range; no file is opened to know them), so a range of a
century over a few days of events costs a few queries. Each day is one query, `ORDER BY
timestamp, event_id`, read as Arrow record batches: DuckDB sorts that day (the memory bound),
and the stream never holds the whole selection.

All days are read through one connection: one snapshot (lake listing, hot read) for the whole
replay, so an event archived while the replay runs is neither lost nor read twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

import duckdb
import pyarrow as pa

from eventlake.query.views import COLD_PARTITIONS, Tiers, connect
from eventlake.replay.select import Position, Selection

READ_BATCH_ROWS = 10_000
"""Rows per Arrow record batch fetched from DuckDB (not the target's batch size)."""


def open_reader(tiers: Tiers, selection: Selection, *, now: datetime | None = None
                ) -> duckdb.DuckDBPyConnection:
    """A connection for reading `selection`: the cold-only ones never touch DynamoDB. DuckDB's
    own progress bar is off: a read paced by a slow target would draw it over the replay's."""
    con = connect(tiers, hot=not selection.cold_only, now=now)
    con.execute("SET enable_progress_bar = false")
    return con


def read_batches(con: duckdb.DuckDBPyConnection, selection: Selection, *,
                 after: Position | None = None, rows: int = READ_BATCH_ROWS
                 ) -> Iterator[pa.RecordBatch]:
    """The selected events after `after` (all when None), in (timestamp, event_id) order, as
    record batches of up to `rows` rows with the columns of `select.COLUMNS` and `_line`
    (the seed JSON line)."""
    for day in selected_days(con, selection, after):
        sql, params = selection.day_sql(day, after)
        relation = con.sql(sql, params=params)
        assert relation is not None  # a SELECT always gives one
        reader = relation.to_arrow_reader(rows)
        try:
            for batch in reader:
                if batch.num_rows:
                    yield batch
        finally:
            reader.close()


def selected_days(con: duckdb.DuckDBPyConnection, selection: Selection,
                  after: Position | None = None) -> list[date]:
    """The UTC days of `selection` (from `after`'s day on) that may hold events on `con`'s
    snapshot, in order: the listed lake partitions, and the hot rows' days unless the
    selection is cold-only. No file is read (the listing and the hot rows are the
    connection's own tables)."""
    first, last = selection.day_range(after)
    hot = "" if selection.cold_only else "UNION SELECT dt FROM events_hot\n"
    relation = con.sql(f"SELECT dt FROM (SELECT dt FROM {COLD_PARTITIONS}\n{hot}) AS days\n"
                       "WHERE dt BETWEEN $first AND $last ORDER BY dt",
                       params={"first": first, "last": last})
    assert relation is not None  # a SELECT always gives one
    return [day for (day,) in relation.fetchall()]

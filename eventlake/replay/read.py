"""The ordered stream of selected events: (timestamp, event_id) order across tiers and
partitions, late events included, holding a window of a few UTC days of selected events at a
time.

The lake partitions by dt, the UTC date of `timestamp`, so ordering a run of days and visiting
the runs in order gives the total order. A late event (old timestamp, ingested now) sits in its
own old day, hot or cold, and the `events` view has each event once whichever tiers hold it.
Only the days that hold events are visited (`day_sizes`: the partitions the lake's listing
found and the hot rows' days, within the range; no file is opened to know them), so a range of a
century over a few days of events costs a few queries. Consecutive days are read together while
their files add up to at most WINDOW_BYTES (`windows`; a larger day is a window alone): each
window is one query, `ORDER BY timestamp, event_id`, read as Arrow record batches. DuckDB sorts
that window (the memory bound: WINDOW_BYTES of Parquet, or the largest day), and the stream
never holds the whole selection. Fewer, larger queries are what makes the read fast: one query
per day of 10,000 events spent most of its time starting queries.

All days are read through one connection: one snapshot (lake listing, hot read) for the whole
replay, so an event archived while the replay runs is neither lost nor read twice. Compaction
may delete listed files meanwhile (their rows are in its output): a window whose query finds a
listed file gone is read again, from just after the last event yielded, on a fresh snapshot
(`reopen`, at most VANISH_ATTEMPTS times in a row, a fresh snapshot that meets a file deleted
since its listing counting as one of them); the position only moves forward, so no event is
yielded twice, and the events at or before it were read already.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime

import duckdb
import pyarrow as pa

from eventlake.events.times import as_utc
from eventlake.lake.vanish import VANISH_ATTEMPTS, vanish_backoff, vanished_too_often
from eventlake.query.views import COLD_PARTITIONS, Tiers, connect, file_vanished_in_query, refresh
from eventlake.replay.select import IDENTITY_SQL, Position, Selection

_log = logging.getLogger(__name__)

READ_BATCH_ROWS = 10_000
"""Rows per Arrow record batch fetched from DuckDB (not the target's batch size)."""
WINDOW_BYTES = 8 * 2**20
"""How much Parquet one query of the read covers at most (a larger day alone): about 150,000
events of a few hundred bytes, a few hundred MB of DuckDB's sort at most."""
HOT_ROW_BYTES = 100
"""What a hot row counts for against WINDOW_BYTES (about its compressed size in Parquet)."""


def open_reader(tiers: Tiers, selection: Selection, *, now: datetime | None = None
                ) -> duckdb.DuckDBPyConnection:
    """A connection for reading `selection`: the cold-only ones never touch DynamoDB. DuckDB's
    own progress bar is off: a read paced by a slow target would draw it over the replay's."""
    con = connect(tiers, hot=not selection.cold_only, now=now)
    con.execute("SET enable_progress_bar = false")
    return con


def reopen_reader(con: duckdb.DuckDBPyConnection, tiers: Tiers, selection: Selection, *,
                  now: datetime | None = None) -> None:
    """Point `con` (from `open_reader`) at a fresh snapshot: list the lake, read the hot tier."""
    refresh(con, tiers, hot=not selection.cold_only, now=now)


def read_batches(con: duckdb.DuckDBPyConnection, selection: Selection, *,
                 after: Position | None = None, rows: int = READ_BATCH_ROWS,
                 reopen: Callable[[], None] | None = None,
                 identity: str | None = IDENTITY_SQL) -> Iterator[pa.RecordBatch]:
    """The selected events after `after` (all when None), in (timestamp, event_id) order, as
    record batches of up to `rows` rows with the columns of `select.COLUMNS`, `_line` (the seed
    JSON line) and `_ident` (`identity`: select.IDENTITY_SQL; none when None). With
    `reopen` (which points `con` at a fresh snapshot), a listed file that vanished under a
    query (compaction) makes the read go on after the last event yielded, on a fresh snapshot;
    TransientError after VANISH_ATTEMPTS in a row."""
    vanished = 0
    stale = False  # a file vanished: `con` must be pointed at a fresh snapshot first
    while True:
        try:
            if stale and reopen is not None:
                # the fresh listing's views may meet a file compaction deleted since: that
                # is one more vanished file, not an error of the read
                reopen()
                stale = False
            for first, last in windows(con, selection, after):
                sql, params = selection.window_sql(first, last, after, identity=identity)
                relation = con.sql(sql, params=params)
                assert relation is not None  # a SELECT always gives one
                reader = relation.to_arrow_reader(rows)
                try:
                    for batch in reader:
                        if batch.num_rows:
                            yield batch
                            after = _last_position(batch)
                            vanished = 0
                finally:
                    reader.close()
            return
        except duckdb.Error as exc:
            if reopen is None or not file_vanished_in_query(exc):
                raise
            vanished += 1
            if vanished >= VANISH_ATTEMPTS:
                raise vanished_too_often(exc, "under the replay's read") from exc
            _log.info("replay: a lake file vanished under the read (%s); reading on after "
                      "%s on a fresh listing", exc, after)
            time.sleep(vanish_backoff(vanished + 1))
            stale = True


def _last_position(batch: pa.RecordBatch) -> Position:
    """Where a record batch of the read ends in the total order."""
    timestamp = batch.column("timestamp")[-1].as_py()
    event_id = batch.column("event_id")[-1].as_py()
    return Position(as_utc(timestamp), event_id)


def windows(con: duckdb.DuckDBPyConnection, selection: Selection,
            after: Position | None = None, budget: int | None = None
            ) -> list[tuple[date, date]]:
    """The selected days (`day_sizes`) cut into runs of consecutive ones, in order, each run's
    bytes at most `budget` (default WINDOW_BYTES) unless one day alone is more: (first, last)
    of each."""
    budget = WINDOW_BYTES if budget is None else budget
    runs: list[tuple[date, date]] = []
    held = 0
    for day, size in day_sizes(con, selection, after):
        if runs and held + size <= budget:
            runs[-1] = (runs[-1][0], day)
            held += size
        else:
            runs.append((day, day))
            held = size
    return runs


def day_sizes(con: duckdb.DuckDBPyConnection, selection: Selection,
              after: Position | None = None) -> list[tuple[date, int]]:
    """The days of `selection` (from `after`'s day on) that may hold events on `con`'s
    snapshot, in order, with their bytes: the listed lake partitions' file sizes, and unless
    the selection is cold-only HOT_ROW_BYTES per hot row. No file is read."""
    first, last = selection.day_range(after)
    hot = ("" if selection.cold_only else
           f"UNION ALL SELECT dt, count(*) * {HOT_ROW_BYTES} FROM events_hot GROUP BY dt\n")
    relation = con.sql(f"SELECT dt, sum(bytes)::BIGINT FROM (SELECT dt, bytes FROM "
                       f"{COLD_PARTITIONS}\n{hot}) AS days\n"
                       "WHERE dt BETWEEN $first AND $last GROUP BY dt ORDER BY dt",
                       params={"first": first, "last": last})
    assert relation is not None  # a SELECT always gives one
    return [(day, int(size)) for day, size in relation.fetchall()]


"""The query layer: `events` over both tiers, each event once; pruning proven by the files a
query reads; compaction under readers; a cold-only connection that never calls DynamoDB."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from archive_support import NOW, World, hours
from race_support import read_while

from eventlake import EventLake, TransientError
from eventlake.archive.writer import archive_items
from eventlake.aws import Clients
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.compact import compact
from eventlake.lake.store import Lake, LakeFileError
from eventlake.lake.vanish import VANISH_ATTEMPTS
from eventlake.query.views import Engine, connect, refresh
from tests.lake.test_vanish import EVERY_PAUSE, pauses_recorded

DAYS = [date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3), date(2024, 5, 4)]
EARLY = datetime(2024, 5, 5, 8, 0, tzinfo=UTC)


@pytest.fixture
def el(world: World) -> EventLake:
    """The EventLake of the world's settings (2 index shards, 3 days' retention)."""
    return EventLake(world.settings, clients=world.clients)


def rows_of(con: duckdb.DuckDBPyConnection, query: str) -> list[Any]:
    relation = con.sql(query)
    assert relation is not None
    return relation.fetchall()


def ids(con: duckdb.DuckDBPyConnection, view: str = "events", where: str = "true") -> list[str]:
    """Every event_id the view returns, copies included, sorted."""
    return sorted(r[0] for r in rows_of(con, f"SELECT event_id FROM {view} WHERE {where}"))


def event(n: int, day: date, *, ingested_at: datetime = EARLY, **fields: Any) -> dict[str, Any]:
    """Event `n` of `day` as the lake stores it; the same n and day give the same content."""
    row = {"event_id": f"{day.isoformat()}-{n:03d}", "event_type": ["click", "order"][n % 2],
           "timestamp": datetime(day.year, day.month, day.day, tzinfo=UTC)
           + timedelta(minutes=7 * n), "ingested_at": ingested_at, "source": "shop",
           "subject": f"user/{n % 3}", "event_payload": json.dumps({"n": n}),
           "content_hash": f"hash-{day.isoformat()}-{n}"}
    row.update(fields)
    return row


def write(lake: Lake, rows: list[dict[str, Any]], name: str) -> list[str]:
    return [f.path for f in lake.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), name)]


def numbered(day: date, numbers: range | list[int]) -> list[str]:
    return sorted(f"{day.isoformat()}-{n:03d}" for n in numbers)


# -- each event once, across the tiers ----------------------------------------------------------

def test_each_event_is_read_once_across_the_hot_cold_boundary(world: World, el: EventLake
                                                               ) -> None:
    archived = world.ingest(["a", "b", "c"], NOW - hours(5))
    world.sweep(NOW - hours(1))  # watermark: NOW - 1 h
    recent = world.ingest(["d", "e"], NOW - hours(0.5))

    con = connect(el, now=NOW)

    assert ids(con, "events_cold") == archived
    assert ids(con, "events_hot") == recent
    assert ids(con) == archived + recent
    # (the hot read starts the tolerated clock skew before the watermark, and the table's
    # settle too: the world's sweep ran with settle 0, which writers' budgets do not allow for)
    owed = timedelta(seconds=world.settings.archive_settle_seconds)
    assert rows_of(con, "SELECT watermark, hot_since, hot_rows FROM eventlake_snapshot") == [
        (NOW - hours(1), NOW - hours(1) - world.settings.clock_skew - owed, 2)]


def test_an_event_both_hot_and_archived_is_read_once(world: World, el: EventLake) -> None:
    world.ingest(["a"], NOW - hours(5))
    world.sweep(NOW - hours(1))
    items = [world.item(i, NOW - hours(0.5)) for i in ("d", "e")]
    world.put_items(items)
    archive_items(world.lake, items, name="stream-000-001")  # the stream path, within seconds

    con = connect(el, now=NOW)

    # events_hot holds what the listed lake files lack: nothing was fetched from DynamoDB
    assert ids(con, "events_hot") == []
    assert ids(con, "events_cold") == ["a", "d", "e"]
    assert ids(con) == ["a", "d", "e"]
    assert rows_of(con, "SELECT count(*) FROM events WHERE dt = DATE '2024-05-10'") == [(3,)]


def test_late_events_are_read_once_before_and_after_they_are_archived(world: World,
                                                                        el: EventLake) -> None:
    # day D was archived and compacted long ago; an event of day D arrives now
    old_day = NOW.date() - timedelta(days=6)
    write(world.lake, [event(n, old_day) for n in range(3)], "sweep-old")
    world.ingest(["x"], NOW - hours(5))
    world.sweep(NOW - hours(1))
    late = world.item("late", NOW - hours(0.5), timestamp=NOW - timedelta(days=6, hours=2))
    world.put_items([late])
    expected = sorted([*numbered(old_day, range(3)), "late", "x"])

    hot = connect(el, now=NOW)
    assert ids(hot) == expected
    assert rows_of(hot, "SELECT dt FROM events WHERE event_id = 'late'") == [(old_day,)]

    archive_items(world.lake, [late], name="stream-000-002")  # its old partition: 2 files now
    assert ids(connect(el, now=NOW)) == expected

    world.sweep(NOW)  # the watermark passes it: cold only
    after = connect(el, now=NOW + hours(0.1))
    assert ids(after, "events_hot") == []
    assert ids(after) == expected


def test_without_a_watermark_the_hot_tier_is_read_over_retention_plus_ttl_lateness(
        world: World, el: EventLake) -> None:
    edge = NOW - timedelta(days=3 + 2)  # retention 3 days + 2 days TTL may lag
    world.ingest(["too-old"], edge - hours(1))
    world.ingest(["old-but-kept"], edge + hours(1))
    world.ingest(["new"], NOW - hours(1))

    con = connect(el, now=NOW)

    assert ids(con) == ["new", "old-but-kept"]
    assert rows_of(con, "SELECT watermark, hot_since FROM eventlake_snapshot") == [(None, edge)]


def test_copies_across_uncompacted_files_are_read_once_keeping_the_earliest(
        world: World, el: EventLake) -> None:
    day = DAYS[0]
    later = EARLY + hours(3)
    write(world.lake, [event(n, day) for n in range(0, 6)], "stream-a")
    write(world.lake, [event(n, day, ingested_at=later) for n in range(4, 9)], "stream-b")
    write(world.lake, [event(n, day, ingested_at=later) for n in range(8, 10)], "sweep-c")
    write(world.lake, [event(n, DAYS[1]) for n in range(3)], "compacted-0")  # one file: as is

    con = connect(el, hot=False)

    assert ids(con) == numbered(day, range(10)) + numbered(DAYS[1], range(3))
    assert rows_of(con, "SELECT ingested_at FROM events WHERE event_id = '2024-05-01-005'"
                   ) == [(EARLY,)]
    assert rows_of(con, "SELECT ingested_at FROM events WHERE event_id = '2024-05-01-008'"
                   ) == [(later,)]


def test_only_partitions_with_several_files_pay_for_deduplication(world: World,
                                                                   el: EventLake) -> None:
    for day in DAYS[:2]:
        write(world.lake, [event(n, day) for n in range(5)], "compacted-0")

    plan = rows_of(connect(el, hot=False), "EXPLAIN SELECT * FROM events")[0][1]
    assert "WINDOW" not in plan.upper() and "DISTINCT" not in plan.upper()
    assert plan.upper().count("READ_PARQUET") == 1

    write(world.lake, [event(n, DAYS[1]) for n in range(3, 8)], "stream-b")
    plan = rows_of(connect(el, hot=False), "EXPLAIN SELECT * FROM events")[0][1]
    assert plan.upper().count("WINDOW") == 1 and plan.upper().count("READ_PARQUET") == 2


# -- compaction under readers ------------------------------------------------------------------

def test_readers_see_each_event_once_while_compaction_runs(world: World, el: EventLake) -> None:
    days = DAYS[:2]
    for day in days:
        for i in range(8):
            write(world.lake, [event(n, day) for n in range(i * 4, i * 4 + 4)], f"stream-{i}")
    expected = sorted(i for day in days for i in numbered(day, range(32)))

    def sql() -> list[str]:
        got = sorted(el.sql("SELECT event_id FROM events", hot=False)["event_id"].to_pylist())
        return [] if got == expected else [f"{len(got)} rows, {len(set(got))} ids"]

    def compactions() -> None:
        for round_ in range(6):  # copies keep arriving; compaction merges them away
            for day in days:
                write(world.lake, [event(n, day) for n in (round_, 20 + round_)],
                      f"again-{round_}")
            compact(world.lake, min_files=2)
            time.sleep(0.02)

    reads, failures = read_while(compactions, {"sql": sql})

    assert failures == []
    assert reads["sql"] >= 3
    assert [len(world.lake.list_files(dts=[d.isoformat()])) for d in days] == [1, 1]


def test_a_connection_keeps_reading_a_several_file_partition_while_it_is_compacted(
        world: World, el: EventLake) -> None:
    for i in range(3):
        write(world.lake, [event(n, DAYS[0]) for n in range(i, i + 3)], f"stream-{i}")
    con = connect(el, hot=False)

    compact(world.lake, min_files=2)  # the three listed files are gone, one merged file left
    write(world.lake, [event(n, DAYS[0]) for n in range(4, 7)], "stream-3")

    assert ids(con) == numbered(DAYS[0], range(7))  # the partition is read by its pattern


def test_sql_lists_again_when_compaction_removes_a_listed_file_under_the_query(
        world: World, el: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    write(world.lake, [event(n, DAYS[0]) for n in range(3)], "compacted-earlier")
    import eventlake.query.views as query

    real = query.take_snapshot
    listings: list[int] = []

    def listed_then_compacted(*args: Any, **kwargs: Any) -> query.Snapshot:
        snapshot = real(*args, **kwargs)
        listings.append(len(snapshot.files))
        if len(listings) == 1:  # a late event arrives; compaction merges it with the one file
            write(world.lake, [event(n, DAYS[0]) for n in range(2, 5)], "stream-late")
            compact(world.lake, min_files=2)
        return snapshot

    monkeypatch.setattr(query, "take_snapshot", listed_then_compacted)

    got = el.sql("SELECT event_id FROM events ORDER BY event_id", hot=False)

    assert got["event_id"].to_pylist() == numbered(DAYS[0], range(5))
    assert listings == [1, 1]


def test_sql_gives_up_with_a_transient_error_when_files_keep_vanishing(
        world: World, el: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    import eventlake.query.views as query

    real = query.take_snapshot
    attempts: list[int] = []

    def listed_then_deleted(*args: Any, **kwargs: Any) -> query.Snapshot:
        path = write(world.lake, [event(len(attempts), DAYS[0])], f"s-{len(attempts)}")[0]
        snapshot = real(*args, **kwargs)
        Path(path).unlink()
        attempts.append(1)
        return snapshot

    monkeypatch.setattr(query, "take_snapshot", listed_then_deleted)

    pauses = pauses_recorded(monkeypatch)

    with pytest.raises(TransientError, match=f"vanished {VANISH_ATTEMPTS} times"):
        el.sql("SELECT count(*) FROM events", hot=False)
    assert len(attempts) == VANISH_ATTEMPTS
    assert pauses == EVERY_PAUSE


# -- pruning, proven by the files a query reads ---------------------------------------------------

@pytest.fixture
def four_days(world: World) -> dict[date, list[str]]:
    """DAYS[0] and DAYS[2] in one file each; DAYS[1] and DAYS[3] in two files (copies)."""
    files: dict[date, list[str]] = {}
    for k, day in enumerate(DAYS):
        files[day] = write(world.lake, [event(n, day) for n in range(6)], "first")
        if k % 2:
            files[day] += write(world.lake, [event(n, day) for n in range(4, 9)], "second")
    return files


def corrupt_all_but(files: dict[date, list[str]], keep: date) -> None:
    """Overwrite every other partition's files with bytes no Parquet reader accepts."""
    for day, paths in files.items():
        if day != keep:
            for path in paths:
                Path(path).write_bytes(b"not parquet at all" * 4)


@pytest.mark.parametrize("engine", ["duckdb", "arrow"])
@pytest.mark.parametrize("keep", [DAYS[1], DAYS[2]], ids=["two-files", "one-file"])
def test_dt_predicates_read_only_their_partitions_files(
        el: EventLake, four_days: dict[date, list[str]], keep: date, engine: Engine) -> None:
    con = connect(el, hot=False, engine=engine)
    corrupt_all_but(four_days, keep)
    expected = numbered(keep, range(9 if keep == DAYS[1] else 6))

    assert ids(con, where=f"dt = DATE '{keep}'") == expected
    assert ids(con, where=f"dt BETWEEN DATE '{keep}' AND DATE '{keep}'") == expected
    assert rows_of(con, f"SELECT count(*) FROM events_between(TIMESTAMPTZ '{keep} 00:07:00+00',"
                        f" TIMESTAMPTZ '{keep} 00:21:00+00')") == [(2,)]  # n = 1, 2
    with pytest.raises(duckdb.Error):  # control: a full read does meet the corrupt files
        rows_of(con, "SELECT count(*) FROM events")


def test_on_arrow_datasets_a_timestamp_predicate_alone_skips_other_days_files(
        el: EventLake, world: World) -> None:
    # single-file partitions: over several files the de-duplicating window stops timestamp
    # predicates (copies must meet first), so those partitions are read whole
    files = {day: write(world.lake, [event(n, day) for n in range(6)], "compacted-0")
             for day in DAYS}
    con = connect(el, hot=False, engine="arrow")
    corrupt_all_but(files, DAYS[2])

    assert ids(con, "events_cold", where=f"timestamp >= TIMESTAMPTZ '{DAYS[2]} 00:10:00+00' "
                                         f"AND timestamp < TIMESTAMPTZ '{DAYS[2]} 00:30:00+00'"
               ) == numbered(DAYS[2], [2, 3, 4])


def test_on_duckdbs_reader_a_timestamp_predicate_alone_skips_other_days_row_groups(
        el: EventLake, world: World) -> None:
    for day in DAYS:
        write(world.lake, [event(n, day) for n in range(6)], "compacted-0")
    con = connect(el, hot=False)

    profile = rows_of(con, "EXPLAIN ANALYZE SELECT count(*) FROM events "
                           f"WHERE timestamp >= TIMESTAMPTZ '{DAYS[2]} 00:10:00+00' "
                           f"AND timestamp < TIMESTAMPTZ '{DAYS[2]} 00:30:00+00'")[0][1]

    scanned = re.search(r"Row Groups Scanned: (\d+) / (\d+)", profile)
    assert scanned and scanned.groups() == ("1", "4"), profile
    assert rows_of(con, "SELECT count(*) FROM events WHERE timestamp >= "
                        f"TIMESTAMPTZ '{DAYS[2]} 00:10:00+00' AND timestamp < "
                        f"TIMESTAMPTZ '{DAYS[2]} 00:30:00+00'") == [(3,)]


def test_events_between_is_half_open_and_takes_text_or_timestamps(
        world: World, el: EventLake) -> None:
    write(world.lake, [event(n, DAYS[0]) for n in range(6)], "compacted-0")  # every 7 minutes
    con = connect(el, hot=False)

    assert ids(con, "events_between('2024-05-01 00:07:00', '2024-05-01 00:21:00')") == \
        numbered(DAYS[0], [1, 2])
    relation = con.sql("SELECT count(*) FROM events_between($a, $b)",
                       params={"a": datetime(2024, 5, 1, tzinfo=UTC),
                               "b": datetime(2024, 5, 2, tzinfo=UTC)})
    assert relation is not None and relation.fetchall() == [(6,)]


# -- the cold-only connection, the API, refresh ----------------------------------------------------

def test_a_cold_only_connection_never_calls_dynamodb(world: World, el: EventLake,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    write(world.lake, [event(n, DAYS[0]) for n in range(3)], "compacted-0")

    def refuse(self: Clients) -> Any:
        pytest.fail("DynamoDB was called")

    monkeypatch.setattr(Clients, "dynamodb", property(refuse))

    con = el.connect(hot=False)
    assert ids(con) == numbered(DAYS[0], range(3))
    assert ids(con, "events_hot") == []
    assert rows_of(con, "DESCRIBE events_hot") == rows_of(con, "DESCRIBE events_cold")
    assert el.sql("SELECT count(*) AS n FROM events", hot=False).to_pylist() == [{"n": 3}]


def test_sql_returns_arrow_and_takes_named_parameters(world: World, el: EventLake) -> None:
    write(world.lake, [event(n, day) for day in DAYS[:2] for n in range(4)], "compacted-0")

    got = el.sql("SELECT event_id, dt FROM events WHERE event_type = $type AND dt = $day "
                 "ORDER BY event_id", {"type": "order", "day": DAYS[1]}, hot=False)

    assert isinstance(got, pa.Table)
    assert got.to_pylist() == [{"event_id": i, "dt": DAYS[1]}
                               for i in numbered(DAYS[1], [1, 3])]


def test_a_connection_sees_the_lake_as_listed_until_refreshed(world: World, el: EventLake
                                                              ) -> None:
    write(world.lake, [event(n, DAYS[0]) for n in range(2)], "first")
    con = connect(el, hot=False)
    write(world.lake, [event(n, DAYS[1]) for n in range(2)], "first")

    assert ids(con) == numbered(DAYS[0], range(2))
    refresh(con, el, hot=False)
    assert ids(con) == numbered(DAYS[0], range(2)) + numbered(DAYS[1], range(2))
    assert ids(con.cursor()) == ids(con)  # a cursor sees the views of a local lake


def test_the_views_have_the_lake_columns_then_dt(world: World, el: EventLake) -> None:
    world.ingest(["h"], NOW - hours(1))
    con = connect(el, now=NOW)
    expected = [("event_id", "VARCHAR"), ("event_type", "VARCHAR"),
                ("timestamp", "TIMESTAMP WITH TIME ZONE"),
                ("ingested_at", "TIMESTAMP WITH TIME ZONE"), ("source", "VARCHAR"),
                ("subject", "VARCHAR"), ("event_payload", "VARCHAR"), ("content_hash", "VARCHAR"),
                ("dt", "DATE")]

    for view in ("events", "events_cold", "events_hot"):
        assert [r[:2] for r in rows_of(con, f"DESCRIBE {view}")] == expected, view
    assert rows_of(con, "SELECT current_setting('TimeZone')") == [("UTC",)]


def test_a_refresh_keeps_the_time_zone_the_user_set_a_new_connection_is_utc(
        world: World, el: EventLake) -> None:
    world.ingest(["h"], NOW - hours(1))
    con = connect(el, now=NOW)
    con.execute("SET TimeZone = 'Asia/Tokyo'")

    refresh(con, el, now=NOW)

    assert rows_of(con, "SELECT current_setting('TimeZone')") == [("Asia/Tokyo",)]
    assert rows_of(con, "SELECT count(*) FROM events") == [(1,)]
    assert rows_of(connect(el, now=NOW), "SELECT current_setting('TimeZone')") == [("UTC",)]


def test_a_missing_file_the_query_names_itself_is_not_retried(el: EventLake, tmp_path: Path
                                                                ) -> None:
    with pytest.raises(duckdb.IOException, match=r"missing\.parquet"):
        el.sql(f"SELECT * FROM read_parquet('{tmp_path / 'missing.parquet'}')", hot=False)


# -- a file that is not the lake's (issue 8, item 12) ------------------------------------------

@pytest.mark.parametrize("engine", ["duckdb", "arrow"])
@pytest.mark.parametrize("several", [False, True], ids=["alone", "next-to-lake-files"])
def test_a_foreign_file_is_refused_by_name_rather_than_counted_as_a_null_row(
        world: World, el: EventLake, engine: Engine, several: bool) -> None:
    # given a partition holding a Parquet file of another tool (no `event_id`, no `timestamp`)
    day = DAYS[0]
    if several:
        write(world.lake, [event(n, day) for n in range(3)], "stream-1-3-0123456789ab")
    folder = Path(world.lake.root) / "events" / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    foreign = folder / "export.parquet"
    pq.write_table(pa.table({"order": [1, 2], "total": [9.5, 3.0]}), foreign)

    # when the lake is queried, the query is refused, naming the file
    with pytest.raises(LakeFileError) as caught:
        connect(el, hot=False, engine=engine).sql("select count(*) from events").fetchall()
    assert f"`{foreign}`" in str(caught.value)
    assert "lacks column(s) ['event_id'" in str(caught.value)


def test_a_file_of_the_lakes_schema_under_another_name_is_read(world: World,
                                                                el: EventLake) -> None:
    write(world.lake, [event(n, DAYS[0]) for n in range(3)], "import-by-hand")

    assert rows_of(connect(el, hot=False), "select count(*) from events") == [(3,)]

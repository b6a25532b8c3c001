"""The selection: every flag value a bound parameter, the caller's predicate one SQL expression
applied inside its own query (the bound predicates outside), the days of a half-open range, and
only the days that hold events visited."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.store import Lake
from eventlake.replay import read
from eventlake.replay.count import count
from eventlake.replay.read import open_reader, read_batches
from eventlake.replay.run import replay
from eventlake.replay.select import Position, Selection, SelectionError

DAY = date(2024, 5, 1)
START = datetime(2024, 5, 1, tzinfo=UTC)
HOSTILE = "o'brien'); DROP TABLE events; --"


class ColdTiers:
    """Tiers over a local lake alone: a cold-only replay with `now` given never asks `hot`."""

    def __init__(self, lake: Lake) -> None:
        self.cold = lake
        self.hot: Any = None


def row(n: int, subject: str, event_type: str = "click") -> dict[str, Any]:
    return {"event_id": f"e-{n:03d}", "event_type": event_type,
            "timestamp": START + timedelta(minutes=n), "ingested_at": START + timedelta(days=1),
            "source": "shop", "subject": subject, "event_payload": json.dumps({"n": n}),
            "content_hash": f"h{n}"}


@pytest.fixture
def cold(lake: Any) -> ColdTiers:
    lake.cold.write(pa.Table.from_pylist(
        [row(1, HOSTILE), row(2, "x' OR '1'='1"), row(3, "plain", "order"), row(4, "plain")],
        schema=EVENT_SCHEMA), "sweep-a")
    return ColdTiers(lake.cold)


def ids_of(tiers: ColdTiers, selection: Selection) -> list[str]:
    got: list[str] = []
    replay(tiers, selection, lambda events: got.extend(e["event_id"] for e in events),
           now=START + timedelta(days=2))
    return got


def test_a_subject_with_quotes_and_sql_is_matched_literally(cold: ColdTiers) -> None:
    one_day = Selection(START, START + timedelta(days=1), subject=HOSTILE, cold_only=True)

    assert ids_of(cold, one_day) == ["e-001"]
    assert ids_of(cold, Selection(START, START + timedelta(days=1), subject="x",
                                  cold_only=True)) == []
    sql, params = one_day.window_sql(DAY, DAY)
    assert HOSTILE not in sql and "$subject" in sql
    assert params["subject"] == HOSTILE


def test_types_and_the_resume_position_are_bound_too() -> None:
    selection = Selection(START, START + timedelta(days=1), event_types=("a'b", "c"))
    sql, params = selection.window_sql(DAY, DAY, Position(START, "e'-1"))

    assert "a'b" not in sql and "e'-1" not in sql
    assert "event_type IN ($type_0, $type_1)" in sql
    assert (params["type_0"], params["type_1"], params["after_id"]) == ("a'b", "c", "e'-1")


def test_the_where_predicate_is_parenthesised_on_its_own_lines(cold: ColdTiers) -> None:
    # a trailing comment and an OR stay inside the predicate: the range still applies
    selection = Selection(START, START + timedelta(minutes=3),
                          where="subject = 'plain' OR true -- all", cold_only=True)

    assert "(\nsubject = 'plain' OR true -- all\n)" in selection.window_sql(DAY, DAY)[0]
    assert ids_of(cold, selection) == ["e-001", "e-002"]


def test_types_select_and_cold_only_reads_the_lake_view(cold: ColdTiers) -> None:
    selection = Selection(START, START + timedelta(days=1), event_types=("order",),
                          cold_only=True)

    assert "FROM events_cold" in selection.window_sql(DAY, DAY)[0]
    assert "FROM events\n" in Selection(START, START + timedelta(days=1)).window_sql(DAY, DAY)[0]
    assert ids_of(cold, selection) == ["e-003"]


def test_the_range_is_half_open_and_visits_each_utc_day_once() -> None:
    end = datetime(2024, 5, 3, tzinfo=UTC)
    assert list(Selection(START + timedelta(hours=5), end).days()) == [
        date(2024, 5, 1), date(2024, 5, 2)]
    second = date(2024, 5, 2)
    sql, params = Selection(START + timedelta(hours=5), end).window_sql(second, second)
    assert (params["from_ts"], params["to_ts"]) == (datetime(2024, 5, 2, tzinfo=UTC), end)
    assert "timestamp < $to_ts" in sql


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(SelectionError, match="empty"):
        Selection(START, START)


def test_dry_run_counts_and_sends_nothing(cold: ColdTiers, tmp_path: Path) -> None:
    out, ckpt = tmp_path / "out.jsonl", tmp_path / "ckpt.json"
    selection = Selection(START, START + timedelta(days=1), cold_only=True)

    report = replay(cold, selection, f"jsonl:{out}", checkpoint=ckpt, dry_run=True,
                    now=START + timedelta(days=2))

    assert not out.exists() and not ckpt.exists()
    assert (report.sent, report.per_type) == (4, {"click": 3, "order": 1})
    assert report.first_timestamp == "2024-05-01T00:01:00.000000Z"
    assert report.last_timestamp == "2024-05-01T00:04:00.000000Z"


# -- --where: one expression, inside its own query ---------------------------------------------

@pytest.mark.parametrize("where", [
    "false) OR (true",
    "true) UNION ALL (SELECT * FROM events",
    "subject = 'plain'; DROP TABLE events",
    "true;",
    "(true",
    "true /* unterminated",
    "true ORDER BY 1",
    "subject, source",
])
def test_a_where_that_is_not_one_expression_is_refused_at_construction(where: str) -> None:
    with pytest.raises(SelectionError, match="is not one SQL expression"):
        Selection(START, START + timedelta(days=1), where=where)


def test_a_where_over_columns_and_the_payload_still_selects(cold: ColdTiers) -> None:
    def where(text: str) -> Selection:
        return Selection(START, START + timedelta(days=1), where=text, cold_only=True)

    assert ids_of(cold, where("(event_payload->>'$.n')::INT >= 3")) == ["e-003", "e-004"]
    assert ids_of(cold, where("subject LIKE 'pla%' AND event_type = 'click'")) == ["e-004"]
    assert ids_of(cold, where("subject = 'plain' -- a comment")) == ["e-003", "e-004"]


def test_the_bound_predicates_wrap_the_where_from_outside(cold: ColdTiers) -> None:
    selection = Selection(START, START + timedelta(minutes=3), event_types=("click",),
                          where="true OR true", cold_only=True)

    sql, _ = selection.window_sql(DAY, DAY)

    assert "FROM (SELECT * FROM events_cold WHERE (\ntrue OR true\n)) AS selected\nWHERE dt" in sql
    assert ids_of(cold, selection) == ["e-001", "e-002"]


def test_a_where_with_an_or_over_two_days_sends_each_event_once_in_order(
        tmp_path: Path, lake: Any) -> None:
    # the review's probe: 2,000 events over two days, a type that matches none, OR true
    day_rows = [dict(row(n, "s"), timestamp=START + timedelta(minutes=n)) for n in range(2000)]
    lake.cold.write(pa.Table.from_pylist(day_rows, schema=EVENT_SCHEMA), "two-days")
    selection = Selection(START, START + timedelta(days=2), event_types=("nosuch",),
                          where="false OR true", cold_only=True)

    assert ids_of(ColdTiers(lake.cold), selection) == []
    got = ids_of(ColdTiers(lake.cold), Selection(START, START + timedelta(days=2),
                                                 where="false OR true", cold_only=True))
    assert got == [f"e-{n:03d}" for n in range(2000)]


# -- the days visited: those holding events, not every calendar day ------------------------------

@pytest.fixture
def visited(monkeypatch: pytest.MonkeyPatch) -> list[tuple[date, date]]:
    """The windows of days the read and the count query (Selection.window_sql's calls), each
    day a window of its own (WINDOW_BYTES 1) unless a test sets it back."""
    windows: list[tuple[date, date]] = []
    window_sql = Selection.window_sql

    def spy(self: Selection, first: date, last: date, *args: Any, **kwargs: Any
            ) -> tuple[str, dict[str, Any]]:
        windows.append((first, last))
        return window_sql(self, first, last, *args, **kwargs)

    monkeypatch.setattr(Selection, "window_sql", spy)
    monkeypatch.setattr(read, "WINDOW_BYTES", 1)
    return windows


def days(*offsets: int) -> list[tuple[date, date]]:
    return [(DAY + timedelta(days=n), DAY + timedelta(days=n)) for n in offsets]


def three_days(lake: Any) -> ColdTiers:
    rows = [dict(row(n, "s"), event_id=f"d{d}-{n}", timestamp=START + timedelta(days=d, hours=n))
            for d in (0, 3, 40) for n in range(2)]
    lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "three-days")
    return ColdTiers(lake.cold)


def test_a_fifty_year_range_visits_only_the_days_that_hold_events(
        lake: Any, visited: list[tuple[date, date]], monkeypatch: pytest.MonkeyPatch) -> None:
    tiers = three_days(lake)
    fifty_years = Selection(START - timedelta(days=365 * 25), START + timedelta(days=365 * 25),
                            cold_only=True)

    got = ids_of(tiers, fifty_years)

    assert got == ["d0-0", "d0-1", "d3-0", "d3-1", "d40-0", "d40-1"]
    # the read's only: nothing wrote to the lake during the run, so nothing is recounted
    assert visited == days(0, 3, 40)
    visited.clear()
    report = replay(tiers, fifty_years, "stdout", dry_run=True, now=START)
    assert (report.sent, visited) == (6, days(0, 3, 40))

    # and: small days are read together, one query for the three (files far under the budget)
    monkeypatch.setattr(read, "WINDOW_BYTES", 8 * 2**20)
    visited.clear()
    assert ids_of(tiers, fifty_years) == got
    assert visited == [(DAY, DAY + timedelta(days=40))]


def test_a_window_holds_consecutive_days_up_to_its_budget(lake: Any) -> None:
    tiers = three_days(lake)
    con = open_reader(tiers, Selection(START, START + timedelta(days=1), cold_only=True),
                      now=START)
    selection = Selection(START, START + timedelta(days=41), cold_only=True)
    sizes = dict(read.day_sizes(con, selection))
    one = sizes[DAY]

    assert read.windows(con, selection, budget=one) == days(0, 3, 40)
    assert read.windows(con, selection, budget=2 * one + sizes[DAY + timedelta(days=3)] - 1
                        ) == [(DAY, DAY + timedelta(days=3)), (DAY + timedelta(days=40),) * 2]
    assert read.windows(con, selection, budget=10**9) == [(DAY, DAY + timedelta(days=40))]
    assert read.windows(con, selection, budget=0) == days(0, 3, 40)  # a day alone over it
    con.close()


def test_days_outside_the_range_or_before_the_position_are_not_visited(
        lake: Any, visited: list[tuple[date, date]]) -> None:
    tiers = three_days(lake)
    con = open_reader(tiers, Selection(START, START + timedelta(days=1), cold_only=True),
                      now=START)
    selection = Selection(START + timedelta(days=1), START + timedelta(days=41), cold_only=True)

    assert [d for d, _ in read.day_sizes(con, selection)] == [DAY + timedelta(days=3),
                                                              DAY + timedelta(days=40)]
    after = Position(START + timedelta(days=3, hours=1), "d3-1")
    assert [d for d, _ in read.day_sizes(con, selection, after)] == [
        DAY + timedelta(days=3), DAY + timedelta(days=40)]
    assert [r["event_id"] for b in read_batches(con, selection, after=after)
            for r in b.to_pylist()] == ["d40-0", "d40-1"]
    assert count(con, selection, after).count == 2
    assert read.day_sizes(con, Selection(START + timedelta(days=4),
                                         START + timedelta(days=40), cold_only=True)) == []
    con.close()


def test_the_hot_rows_days_are_visited_too(world: Any, visited: list[tuple[date, date]]
                                           ) -> None:
    from archive_support import NOW, hours

    from eventlake import EventLake

    el = EventLake(world.settings, clients=world.clients)
    world.put_items([world.item("archived", NOW - hours(5), timestamp=NOW - hours(30))])
    world.sweep(NOW - hours(1))
    # a late event (hot) on a day the lake has no partition of, and a recent one
    world.put_items([world.item("late", NOW - hours(0.5), timestamp=NOW - timedelta(days=9)),
                     world.item("recent", NOW - hours(0.5))])
    got: list[str] = []

    replay(el, Selection(NOW - timedelta(days=365 * 50), NOW + hours(1)),
           lambda events: got.extend(e["event_id"] for e in events), now=NOW)

    assert got == ["late", "archived", "recent"]
    # the read's, the recount's, then the count of the days after the last event sent
    assert [first for first, _ in visited] == sorted({
        (NOW - timedelta(days=9)).date(), (NOW - hours(30)).date(), (NOW - hours(0.5)).date()}
        ) * 2 + [(NOW - hours(0.5)).date()]


def test_an_event_filed_under_another_day_is_left_out_however_days_fall_into_windows(
        lake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a hand-placed file in dt=DAY holding an event of the next day (the lake's writers
    # refuse such a row), beside the ordinary events of both days
    import pyarrow.parquet as pq

    tiers = three_days(lake)
    stray = dict(row(9, "s"), event_id="stray", timestamp=START + timedelta(days=3, hours=5))
    folder = Path(lake.cold.settings.lake_uri) / "events" / f"dt={DAY.isoformat()}"
    pq.write_table(pa.Table.from_pylist([stray], schema=EVENT_SCHEMA), folder / "foreign.parquet")
    selection = Selection(START, START + timedelta(days=41), cold_only=True)

    # when: read with each day its own window, then with all days in one
    monkeypatch.setattr(read, "WINDOW_BYTES", 1)
    one_by_one = ids_of(tiers, selection)
    monkeypatch.setattr(read, "WINDOW_BYTES", 10**9)
    together = ids_of(tiers, selection)

    # then: the same events either way, the stray one in neither
    assert one_by_one == together == ["d0-0", "d0-1", "d3-0", "d3-1", "d40-0", "d40-1"]

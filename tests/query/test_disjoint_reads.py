"""events_cold over verified files: files a manifest names are read bare, the rest meet them
only where they may share an event_id, and the answer is always the one-copy rule's."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlake.config import Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.hot.store import HotStore
from eventlake.lake.compact import compact
from eventlake.lake.dedup import read_distinct
from eventlake.lake.disjoint import verify
from eventlake.lake.store import Lake
from eventlake.query import views
from eventlake.query.views import Engine, connect, run_sql

DAYS = [date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)]
T0 = datetime(2024, 5, 4, 8, 0, tzinfo=UTC)
NOW = datetime(2024, 5, 6, tzinfo=UTC)


@dataclass
class ColdOnly:
    """The Tiers of a cold-only reader: DynamoDB is never touched (every read passes
    hot=False); the hot side only tells the time."""

    cold: Lake

    @property
    def hot(self) -> HotStore:
        clock: Any = SimpleNamespace(now=lambda: NOW)
        return clock  # type: ignore[no-any-return]


def event(n: int, day: date = DAYS[0], *, late: int = 0) -> dict[str, Any]:
    """Event `n` of `day`; `late` > 0 is a copy ingested `late` seconds later (and another
    hash, so the rule's choice shows)."""
    return {"event_id": f"{day.isoformat()}-{n:03d}", "event_type": ["click", "order"][n % 2],
            "timestamp": datetime(day.year, day.month, day.day, tzinfo=UTC)
            + timedelta(minutes=n), "ingested_at": T0 + timedelta(seconds=late),
            "source": "shop", "subject": f"user/{n % 3}", "event_payload": json.dumps({"n": n}),
            "content_hash": f"h-{n}-{late}"}


def write(lake: Lake, rows: list[dict[str, Any]], name: str) -> str:
    return lake.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), name)[0].path


def stream_day(lake: Lake, day: date = DAYS[0], files: int = 6, per_file: int = 4) -> list[str]:
    return [write(lake, [event(n, day) for n in range(k * per_file, (k + 1) * per_file)],
                  f"stream-{k:06d}-{k:06d}-d{k:02d}") for k in range(files)]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


def con_of(lake: Lake, engine: Engine = "auto") -> duckdb.DuckDBPyConnection:
    return connect(ColdOnly(lake), hot=False, now=NOW, engine=engine)


ROW = "event_id, ingested_at, content_hash"


def rows(con: duckdb.DuckDBPyConnection, where: str = "true") -> list[tuple[Any, ...]]:
    return con.execute(f"SELECT {ROW} FROM events_cold WHERE {where} ORDER BY ALL").fetchall()


def one_copy_rule(lake: Lake) -> list[tuple[Any, ...]]:
    """What the rule says events_cold holds: lake.dedup's reader, every file de-duplicated."""
    table = read_distinct(lake, columns=["event_id", "ingested_at", "content_hash"])
    return sorted(zip(*(table[c].to_pylist() for c in table.column_names), strict=True))


def plan(con: duckdb.DuckDBPyConnection) -> str:
    return str(con.execute("EXPLAIN SELECT * FROM events_cold").fetchall()[0][1]).upper()


# -- read bare -----------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["duckdb", "arrow"])
def test_a_verified_stream_day_is_read_bare_and_answers_as_the_rule_does(
        lake: Lake, engine: Engine) -> None:
    stream_day(lake)
    before = rows(con_of(lake, engine))
    assert "WINDOW" in plan(con_of(lake, engine))  # not verified yet: de-duplicated whole

    verify(lake, [DAYS[0].isoformat()])
    con = con_of(lake, engine)

    assert "WINDOW" not in plan(con) and "JOIN" not in plan(con)
    assert rows(con) == before == one_copy_rule(lake)
    assert len(rows(con)) == 24


def test_the_snapshot_names_the_verified_files(lake: Lake) -> None:
    paths = stream_day(lake, files=3)
    verify(lake, [DAYS[0].isoformat()])
    extra = write(lake, [event(99)], "stream-extra")

    snapshot = views.take_snapshot(ColdOnly(lake), hot=False, now=NOW)

    assert snapshot.verified == frozenset(paths)
    assert extra not in snapshot.verified


# -- copies are still counted once ---------------------------------------------------------

@pytest.mark.parametrize("engine", ["duckdb", "arrow"])
def test_a_hand_planted_copy_of_a_verified_file_is_counted_once(
        lake: Lake, engine: Engine) -> None:
    paths = stream_day(lake)
    verify(lake, [DAYS[0].isoformat()])
    shutil.copy(paths[2], paths[2].replace("-d02", "-copy"))
    for _ in range(2):  # and re-verified: the copy is refused, never trusted
        con = con_of(lake, engine)

        assert "WINDOW" in plan(con)
        assert rows(con) == one_copy_rule(lake)
        assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM events_cold"
                           ).fetchall() == [(24, 24)]
        verify(lake, [DAYS[0].isoformat()])


@pytest.mark.parametrize("engine", ["duckdb", "arrow"])
def test_a_planted_earlier_copy_of_one_event_is_the_copy_read(lake: Lake, engine: Engine
                                                             ) -> None:
    stream_day(lake)
    verify(lake, [DAYS[0].isoformat()])
    write(lake, [event(5, late=-60), event(500)], "planted")  # ingested a minute earlier
    write(lake, [event(6, late=60)], "planted-later")  # ingested later: the verified copy wins
    verify(lake, [DAYS[0].isoformat()])

    con = con_of(lake, engine)

    assert rows(con, "event_id IN ('2024-05-01-005', '2024-05-01-006')") == [
        ("2024-05-01-005", T0 - timedelta(seconds=60), "h-5--60"),
        ("2024-05-01-006", T0, "h-6-0")]
    assert rows(con) == one_copy_rule(lake)
    assert len(rows(con)) == 25


def test_a_file_with_an_event_twice_is_read_through_the_window(lake: Lake) -> None:
    stream_day(lake)
    write(lake, [event(300), event(300, late=5), event(301)], "stream-twice")
    verify(lake, [DAYS[0].isoformat()])

    assert rows(con_of(lake)) == one_copy_rule(lake)
    assert [r for r in rows(con_of(lake)) if r[0] == "2024-05-01-300"] == [
        ("2024-05-01-300", T0, "h-300-0")]


@pytest.mark.parametrize("engine", ["duckdb", "arrow"])
def test_a_lone_planted_file_with_an_event_twice_is_counted_once(lake: Lake, engine: Engine
                                                                 ) -> None:
    # given a day whose only file was planted by hand and holds event 300 twice, and a day
    # whose only file an eventlake writer wrote
    write(lake, [event(300), event(300, late=5), event(301)], "restored")
    write(lake, [event(1, DAYS[1]), event(2, DAYS[1])], "stream-000001-000002-d00")

    # then every reader counts each event once, the earliest copy: the view, and lake.dedup's
    con = con_of(lake, engine)
    assert rows(con) == one_copy_rule(lake)
    assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM events_cold"
                       ).fetchall() == [(4, 4)]
    assert [r for r in rows(con) if r[0] == "2024-05-01-300"] == [
        ("2024-05-01-300", T0, "h-300-0")]
    assert read_distinct(lake).num_rows == 4


@pytest.mark.parametrize("engine", ["duckdb", "arrow"])
def test_a_lone_planted_file_once_verified_is_read_bare(lake: Lake, engine: Engine) -> None:
    # given days whose only file another tool wrote (a lake migrated in: part-0000.parquet a
    # day), each id once, read through the window while nobody has looked at them
    for day in DAYS:
        write(lake, [event(n, day) for n in range(4)], "part-0000")
    before = rows(con_of(lake, engine))
    assert "WINDOW" in plan(con_of(lake, engine))

    # when they are verified (compaction and the sweep verify the days they look at)
    verify(lake, [day.isoformat() for day in DAYS])

    # then every query reads them bare, as the manifests allow: no window over the whole lake
    snapshot = views.take_snapshot(ColdOnly(lake), hot=False, now=NOW)
    assert len(snapshot.verified) == len(DAYS)
    con = con_of(lake, engine)
    assert "WINDOW" not in plan(con) and "JOIN" not in plan(con)
    assert rows(con) == before == one_copy_rule(lake) and len(before) == 12


def test_a_verified_name_rewritten_with_other_events_is_not_trusted(lake: Lake) -> None:
    paths = stream_day(lake)
    verify(lake, [DAYS[0].isoformat()])
    name = Path(paths[0]).stem
    write(lake, [event(n, late=-5) for n in range(4, 12)], name)  # copies of d01 and d02

    con = con_of(lake)

    assert rows(con) == one_copy_rule(lake)
    assert con.execute("SELECT count(*) FROM events_cold").fetchall() == [(20,)]


def test_a_file_written_after_the_last_verify_is_de_duplicated_against_the_rest(
        lake: Lake) -> None:
    stream_day(lake)
    verify(lake, [DAYS[0].isoformat()])
    write(lake, [event(n, late=1) for n in (3, 7, 40)], "stream-crash-before-verify")

    con = con_of(lake)

    assert rows(con) == one_copy_rule(lake)
    assert con.execute("SELECT count(*) FROM events_cold").fetchall() == [(25,)]


# -- pruning and compaction ----------------------------------------------------------------

@pytest.mark.parametrize("engine", ["duckdb", "arrow"])
@pytest.mark.parametrize("keep", [DAYS[0], DAYS[1]], ids=["verified", "mixed"])
def test_dt_predicates_skip_the_files_of_other_verified_and_mixed_partitions(
        lake: Lake, engine: Engine, keep: date) -> None:
    files = {day: stream_day(lake, day, files=3) for day in DAYS}
    verify(lake, [d.isoformat() for d in DAYS])
    for day in DAYS[1:]:  # verified files plus one that copies an event of theirs
        files[day].append(write(lake, [event(1, day, late=-1)], "stream-extra"))
    con = con_of(lake, engine)
    for day in DAYS:  # every other partition unreadable
        if day != keep:
            for path in files[day]:
                Path(path).write_bytes(b"not parquet" * 8)

    assert len(rows(con, f"dt = DATE '{keep}'")) == 12
    assert rows(con, f"dt = DATE '{keep}' AND event_id = '{keep}-001'")[0][1] == (
        T0 - timedelta(seconds=1) if keep == DAYS[1] else T0)
    with pytest.raises(duckdb.Error):  # control: a full read meets the broken files
        rows(con)


def test_compaction_between_the_listing_and_the_query_counts_each_event_once(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    stream_day(lake)
    verify(lake, [DAYS[0].isoformat()])
    write(lake, [event(n, late=1) for n in (1, 2)], "stream-extra")
    expected = one_copy_rule(lake)
    real = views.take_snapshot
    listings: list[int] = []

    def listed_then_compacted(*args: Any, **kwargs: Any) -> views.Snapshot:
        snapshot = real(*args, **kwargs)
        listings.append(len(snapshot.files))
        if len(listings) == 1:
            compact(lake, min_files=2)
        return snapshot

    monkeypatch.setattr(views, "take_snapshot", listed_then_compacted)

    got = run_sql(ColdOnly(lake), f"SELECT {ROW} FROM events_cold ORDER BY ALL", hot=False)

    assert sorted(zip(*got.to_pydict().values(), strict=True)) == expected
    assert listings == [7, 1]


def test_a_long_lived_connection_fails_loudly_rather_than_miscounting_after_compaction(
        lake: Lake) -> None:
    stream_day(lake)
    verify(lake, [DAYS[0].isoformat()])
    con = con_of(lake)
    compact(lake, min_files=2)

    with pytest.raises(duckdb.Error) as failure:
        rows(con)
    assert views.file_vanished_in_query(failure.value)
    views.refresh(con, ColdOnly(lake), hot=False, now=NOW)
    assert len(rows(con)) == 24


# -- the property --------------------------------------------------------------------------

FILE = st.lists(st.tuples(st.integers(0, 11), st.integers(-2, 2)), min_size=1, max_size=6)
"""One file: (event number, lateness) rows; a small id pool makes overlaps likely."""
STEP = st.tuples(st.sampled_from(DAYS[:2]), FILE, st.booleans())
"""Write a file to a day, then verify (True) or not."""


@contextmanager
def temp_lake() -> Iterator[Lake]:
    """A fresh local lake per example (hypothesis reuses a test's fixtures)."""
    with tempfile.TemporaryDirectory() as folder:
        yield Lake(Settings(lake_uri=str(Path(folder) / "lake")))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=7), engine=st.sampled_from(["duckdb", "arrow"]))
def test_whatever_is_written_and_verified_the_view_answers_as_the_one_copy_rule(
        steps: list[tuple[date, list[tuple[int, int]], bool]], engine: Engine) -> None:
    with temp_lake() as lake:
        for k, (day, file, then_verify) in enumerate(steps):
            write(lake, [event(n, day, late=late) for n, late in file], f"stream-{k:02d}")
            if then_verify:
                verify(lake, [day.isoformat()])

        assert rows(con_of(lake, engine)) == one_copy_rule(lake)

"""The selection: every flag value a bound parameter, the caller's predicate in parentheses,
the days of a half-open range."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.store import Lake
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
    sql, params = one_day.day_sql(DAY)
    assert HOSTILE not in sql and "$subject" in sql
    assert params["subject"] == HOSTILE


def test_types_and_the_resume_position_are_bound_too() -> None:
    selection = Selection(START, START + timedelta(days=1), event_types=("a'b", "c"))
    sql, params = selection.day_sql(DAY, Position(START, "e'-1"))

    assert "a'b" not in sql and "e'-1" not in sql
    assert "event_type IN ($type_0, $type_1)" in sql
    assert (params["type_0"], params["type_1"], params["after_id"]) == ("a'b", "c", "e'-1")


def test_the_where_predicate_is_parenthesised_on_its_own_lines(cold: ColdTiers) -> None:
    # a trailing comment and an OR stay inside the predicate: the range still applies
    selection = Selection(START, START + timedelta(minutes=3),
                          where="subject = 'plain' OR true -- all", cold_only=True)

    assert "(\nsubject = 'plain' OR true -- all\n)" in selection.day_sql(DAY)[0]
    assert ids_of(cold, selection) == ["e-001", "e-002"]


def test_types_select_and_cold_only_reads_the_lake_view(cold: ColdTiers) -> None:
    selection = Selection(START, START + timedelta(days=1), event_types=("order",),
                          cold_only=True)

    assert "FROM events_cold" in selection.day_sql(DAY)[0]
    assert "FROM events\n" in Selection(START, START + timedelta(days=1)).day_sql(DAY)[0]
    assert ids_of(cold, selection) == ["e-003"]


def test_the_range_is_half_open_and_visits_each_utc_day_once() -> None:
    end = datetime(2024, 5, 3, tzinfo=UTC)
    assert list(Selection(START + timedelta(hours=5), end).days()) == [
        date(2024, 5, 1), date(2024, 5, 2)]
    sql, params = Selection(START + timedelta(hours=5), end).day_sql(date(2024, 5, 2))
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

"""Reconcile on in-process moto and a local lake: hot events older than the watermark must be
in the lake with the same hash; missing ones are repaired, different ones only reported."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from eventlake import EventLake
from eventlake.archive.reconcile import ReconcileReport, reconcile
from eventlake.codec import RowBuilder
from eventlake.errors import LakeNotFoundError, TableNotFoundError
from eventlake.events.model import Event, parse_event
from eventlake.hot.store import Item
from eventlake.lake.store import Lake
from eventlake.lake.watermark import advance_watermark

NOW = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
WATERMARK = datetime(2024, 5, 3, 6, 0, tzinfo=UTC)
MAY_1, MAY_2, MAY_3 = date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def event(event_id: str, timestamp: str, **payload: Any) -> Event:
    return parse_event({"event_id": event_id, "event_type": "order.created",
                        "timestamp": timestamp, "source": "shop/web",
                        "event_payload": {"order": event_id, **payload}}, now=NOW)


def ingest(lake: EventLake, ev: Event, ingested_at: datetime) -> Item:
    """Store `ev` in the hot table as ingested at `ingested_at`; returns the item."""
    item = lake.hot.to_item(ev, ingested_at)
    lake.clients.dynamodb.put_item(TableName=lake.settings.table, Item=item)
    return item


def archive(cold: Lake, items: Sequence[Item], name: str = "sweep") -> None:
    """Write items to the lake the way the archivers do (codec rows, one file per dt)."""
    builder = RowBuilder()
    assert builder.add_images(items) == []
    cold.write(builder.to_table(), name=name)


def set_watermark(cold: Lake, when: datetime) -> None:
    advance_watermark(cold, when, expected=None, run_id="sweep-test", now=NOW)


def run(lake: EventLake, cold: Lake, start: date = MAY_1, end: date = MAY_3,
        repair: bool = False) -> ReconcileReport:
    return reconcile(cold, lake.hot, lake.settings, start=start, end=end, repair=repair,
                     now=NOW)


def per_day(report: ReconcileReport) -> dict[str, tuple[int, int, int, int, int]]:
    return {d.day.isoformat(): (d.hot, d.cold, d.missing, d.different, d.repaired)
            for d in report.days}


def lake_files(cold: Lake) -> list[str]:
    return [f.path.removeprefix(cold.root + "/events/") for f in cold.list_files()]


@pytest.fixture
def cold(lake: EventLake) -> Lake:
    set_watermark(lake_ := Lake(lake.settings, clients=lake.clients), WATERMARK)
    return lake_


@pytest.fixture
def three_days(lake: EventLake) -> list[Item]:
    """Five hot events ingested May 1-3 (all before the watermark), none archived yet."""
    return [
        ingest(lake, event("a1", "2024-05-01T08:00:00Z"), at("2024-05-01T08:00:01")),
        ingest(lake, event("a2", "2024-05-01T23:59:59Z"), at("2024-05-02T00:00:02")),
        ingest(lake, event("b1", "2024-05-02T10:00:00Z"), at("2024-05-02T10:00:01")),
        ingest(lake, event("b2", "2024-05-02T11:00:00Z"), at("2024-05-02T11:00:01")),
        ingest(lake, event("c1", "2024-05-03T05:00:00Z"), at("2024-05-03T05:00:01")),
    ]


# -- the happy path ----------------------------------------------------------------------------

def test_a_fully_archived_range_is_ok(lake: EventLake, cold: Lake, three_days: list[Item]
                                      ) -> None:
    # given every hot event in the lake
    archive(cold, three_days)

    # when reconciling May 1-3
    report = run(lake, cold)

    # then every ingestion day is complete (a2 is counted on its ingestion day, May 2)
    assert report.ok
    assert per_day(report) == {"2024-05-01": (1, 1, 0, 0, 0), "2024-05-02": (3, 3, 0, 0, 0),
                               "2024-05-03": (1, 1, 0, 0, 0)}
    assert (report.watermark, report.until) == (WATERMARK, WATERMARK)
    assert (report.missing_ids, report.different_ids, report.lost_ids) == ([], [], [])
    out = report.to_dict()
    assert json.loads(json.dumps(out)) == out
    assert out["ok"] is True and out["hot"] == 5 and out["days_are"].startswith("UTC dates")


def test_only_the_partitions_of_the_hot_events_are_read_and_only_two_columns(
        lake: EventLake, cold: Lake, three_days: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an archived lake, and a partition of events that are no longer hot
    archive(cold, three_days)
    old = event("z9", "2024-04-01T00:00:00Z")
    archive(cold, [lake.hot.to_item(old, at("2024-04-01T00:00:01"))], name="old")
    reads: list[tuple[date | None, date | None, list[str] | None]] = []
    real_read = Lake.read

    def spy(self: Lake, start: date | None = None, end: date | None = None,
            columns: Sequence[str] | None = None) -> pa.Table:
        reads.append((start, end, None if columns is None else list(columns)))
        return real_read(self, start, end, columns)

    monkeypatch.setattr(Lake, "read", spy)

    # when reconciling
    assert run(lake, cold).ok

    # then each needed dt is read once (May 1 serves two ingestion days), April never
    assert sorted(reads) == [(d, d, ["event_id", "content_hash"]) for d in (MAY_1, MAY_2, MAY_3)]


# -- missing events ----------------------------------------------------------------------------

def test_missing_events_are_reported_per_day_and_repair_archives_them(
        lake: EventLake, cold: Lake, three_days: list[Item]) -> None:
    # given a1 and b2 never archived
    archive(cold, [i for i in three_days if i["event_id"]["S"] not in ("a1", "b2")])

    # when reconciling without repair
    report = run(lake, cold)

    # then both are reported on their ingestion days, and nothing is written
    assert not report.ok
    assert per_day(report) == {"2024-05-01": (1, 0, 1, 0, 0), "2024-05-02": (3, 2, 1, 0, 0),
                               "2024-05-03": (1, 1, 0, 0, 0)}
    assert report.missing_ids == report.lost_ids == ["a1", "b2"]
    assert (report.missing, report.lost, report.repaired) == (2, 2, 0)
    files_before = lake_files(cold)

    # when reconciling with repair
    repaired = run(lake, cold, repair=True)

    # then they are re-archived under deterministic names, byte-for-byte the archivers' rows
    assert (repaired.missing, repaired.repaired, repaired.lost, repaired.ok) == (2, 2, 0, True)
    assert repaired.missing_ids == ["a1", "b2"] and repaired.lost_ids == []
    assert per_day(repaired)["2024-05-02"] == (3, 2, 1, 0, 1)
    new = sorted(set(lake_files(cold)) - set(files_before))
    assert [f.split("/")[0] for f in new] == ["dt=2024-05-01", "dt=2024-05-02"]
    assert all(f.split("/")[1].startswith("repair-2024-05-01-2024-05-03-") for f in new)
    rows = cold.read().sort_by("event_id")
    builder = RowBuilder()
    builder.add_images(sorted(three_days, key=lambda i: str(i["event_id"]["S"])))
    assert rows.equals(builder.to_table())

    # and a re-run finds nothing missing, so writes nothing
    again = run(lake, cold, repair=True)
    assert (again.ok, again.missing, again.repaired) == (True, 0, 0)
    assert sorted(lake_files(cold)) == sorted(files_before + new)


def test_a_missing_event_that_expired_before_the_repair_stays_lost(
        lake: EventLake, cold: Lake, three_days: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given b1 missing from the lake, and TTL deleting it between the check and the repair
    archive(cold, [i for i in three_days if i["event_id"]["S"] != "b1"])
    real = lake.hot.read_ingested
    calls: list[datetime] = []

    def expiring(since: datetime, until: datetime) -> Any:
        calls.append(since)
        if calls.count(since) == 2:  # the repair's second read of the day
            return (i for i in real(since, until) if i["event_id"]["S"] != "b1")
        return real(since, until)

    monkeypatch.setattr(lake.hot, "read_ingested", expiring)

    # when repairing
    report = run(lake, cold, repair=True)

    # then it is reported as lost, not as repaired
    assert (report.missing, report.repaired, report.lost, report.ok) == (1, 0, 1, False)
    assert report.lost_ids == ["b1"]


# -- different content -------------------------------------------------------------------------

def test_a_different_hash_is_reported_and_never_repaired(
        lake: EventLake, cold: Lake, three_days: list[Item]) -> None:
    # given b1 stored in the lake with other content (an immutability violation)
    archive(cold, [i for i in three_days if i["event_id"]["S"] != "b1"])
    forged = lake.hot.to_item(event("b1", "2024-05-02T10:00:00Z", tampered=True),
                              at("2024-05-02T10:00:01"))
    archive(cold, [forged], name="forged")
    files = lake_files(cold)

    # when reconciling with repair
    report = run(lake, cold, repair=True)

    # then it is found, counted as different, and the lake is left as it was
    assert not report.ok
    assert per_day(report)["2024-05-02"] == (3, 3, 0, 1, 0)
    assert (report.different, report.different_ids, report.repaired) == (1, ["b1"], 0)
    assert report.missing_ids == [] and report.lost == 0
    assert lake_files(cold) == files


def test_a_bad_copy_beside_a_good_one_is_still_different(
        lake: EventLake, cold: Lake, three_days: list[Item]) -> None:
    # given c1 archived correctly, and a second copy with other content in another file
    archive(cold, three_days)
    forged = lake.hot.to_item(event("c1", "2024-05-03T05:00:00Z", tampered=True),
                              at("2024-05-03T05:00:01"))
    archive(cold, [forged], name="forged")

    # when reconciling, then the readers' choice between them is not left to chance
    report = run(lake, cold)
    assert per_day(report)["2024-05-03"] == (1, 1, 0, 1, 0)
    assert report.different_ids == ["c1"]


# -- what is not counted -----------------------------------------------------------------------

def test_events_ingested_after_the_watermark_are_not_counted(
        lake: EventLake, cold: Lake, three_days: list[Item]) -> None:
    # given everything archived, and two events ingested after the watermark (not archived)
    archive(cold, three_days)
    ingest(lake, event("c2", "2024-05-03T06:00:00Z"), WATERMARK)
    ingest(lake, event("c3", "2024-05-03T07:00:00Z"), at("2024-05-03T07:00:00"))

    # when reconciling a range that runs past today
    report = run(lake, cold, end=date(2024, 5, 9))

    # then only what the watermark says is archived is checked
    assert report.ok
    assert per_day(report)["2024-05-03"] == (1, 1, 0, 0, 0)
    assert [d.day for d in report.days] == [MAY_1, MAY_2, MAY_3]
    assert report.until == WATERMARK


def test_nothing_is_due_before_the_first_sweep(lake: EventLake, three_days: list[Item]) -> None:
    # given hot events and no watermark yet
    cold = Lake(lake.settings, clients=lake.clients)

    # when reconciling, then nothing is checked and nothing is wrong
    report = run(lake, cold, repair=True)
    assert (report.ok, report.watermark, report.until, report.days) == (True, None, None, [])
    assert cold.list_files() == []


def test_late_events_are_found_in_their_old_partitions(lake: EventLake, cold: Lake) -> None:
    # given events ingested on May 2 with timestamps from March and April
    late = [ingest(lake, event("late-1", "2024-03-01T12:00:00Z"), at("2024-05-02T09:00:00")),
            ingest(lake, event("late-2", "2024-04-15T12:00:00Z"), at("2024-05-02T09:00:01")),
            ingest(lake, event("late-3", "2024-04-15T13:00:00Z"), at("2024-05-02T09:00:02"))]
    archive(cold, late[:2])

    # when reconciling May 2 with repair
    report = run(lake, cold, start=MAY_2, end=MAY_2, repair=True)

    # then the archived ones are found in their old partitions, the missing one goes there too
    assert per_day(report) == {"2024-05-02": (3, 2, 1, 0, 1)}
    assert report.ok and report.missing_ids == ["late-3"]
    assert sorted(cold.read(date(2024, 4, 15), date(2024, 4, 15))["event_id"].to_pylist()) == [
        "late-2", "late-3"]


def test_copies_in_several_files_are_not_a_problem(
        lake: EventLake, cold: Lake, three_days: list[Item]) -> None:
    # given every event archived twice (stream and sweep, before compaction)
    archive(cold, three_days, name="stream")
    archive(cold, three_days, name="sweep")

    # when reconciling, then each event counts once
    report = run(lake, cold)
    assert report.ok
    assert (report.hot, report.cold) == (5, 5)


def test_cold_rows_of_expired_events_are_not_problems(lake: EventLake, cold: Lake) -> None:
    # given lake rows ingested on May 1 whose hot items TTL already removed
    gone = lake.hot.to_item(event("gone", "2024-05-01T08:00:00Z"), at("2024-05-01T08:00:00"))
    archive(cold, [gone])

    # when reconciling May 1, then there is nothing hot to check and nothing wrong
    report = run(lake, cold, start=MAY_1, end=MAY_1)
    assert report.ok
    assert per_day(report) == {"2024-05-01": (0, 0, 0, 0, 0)}


# -- ranges ------------------------------------------------------------------------------------

def test_an_empty_range_is_ok(lake: EventLake, cold: Lake, three_days: list[Item]) -> None:
    # given nothing ingested in April
    report = run(lake, cold, start=date(2024, 4, 1), end=date(2024, 4, 3))

    # then the days are reported empty and all is well
    assert report.ok
    assert per_day(report) == {f"2024-04-0{d}": (0, 0, 0, 0, 0) for d in (1, 2, 3)}


def test_a_range_that_ends_before_it_starts_is_refused(lake: EventLake, cold: Lake) -> None:
    with pytest.raises(ValueError, match="before it starts"):
        run(lake, cold, start=MAY_3, end=MAY_1)


def test_id_lists_are_capped_but_counts_are_not(lake: EventLake, cold: Lake) -> None:
    # given 120 hot events on May 1, none archived
    base = at("2024-05-01T08:00:00")
    for i in range(120):
        ingest(lake, event(f"m{i:03d}", "2024-05-01T08:00:00Z"), base + timedelta(seconds=i))

    # when reconciling
    report = run(lake, cold, start=MAY_1, end=MAY_1)

    # then the count is complete, the list the first 100 ids
    assert report.missing == report.lost == 120
    assert report.missing_ids == [f"m{i:03d}" for i in range(100)]
    assert len(report.lost_ids) == 100


def test_repair_file_names_are_deterministic(
        lake: EventLake, cold: Lake, three_days: list[Item], tmp_path: Path) -> None:
    # given two identical lakes with the same events missing
    other = Lake(lake.settings.with_(lake_uri=str(tmp_path / "other")), clients=lake.clients)
    other.create_marker(table=lake.settings.table)
    set_watermark(other, WATERMARK)

    # when repairing both, then the same files are written
    run(lake, cold, repair=True)
    run(lake, other, repair=True)
    assert lake_files(cold) == lake_files(other) != []
    assert pc.all(pc.equal(cold.read()["event_id"], other.read()["event_id"])).as_py()


def test_an_item_the_codec_cannot_read_counts_as_missing_and_is_not_repaired(
        lake: EventLake, cold: Lake, three_days: list[Item]) -> None:
    # given everything archived but one hot item with an impossible date (Feb 30)
    archive(cold, three_days)
    bad = lake.hot.to_item(event("bad", "2024-05-02T10:00:00Z"), at("2024-05-02T12:00:00"))
    bad["timestamp"] = {"S": "2024-02-30T10:00:00.000000Z"}
    lake.clients.dynamodb.put_item(TableName=lake.settings.table, Item=bad)

    # when repairing
    report = run(lake, cold, repair=True)

    # then it is reported lost, and set aside raw with the reason, as the sweep does
    assert per_day(report)["2024-05-02"] == (4, 3, 1, 0, 0)
    assert report.lost_ids == ["bad"] and not report.ok
    [entry] = cold.read_quarantine()
    assert (entry.rule, entry.source) == ("record.bad_timestamp", "reconcile")
    assert entry.record["event_id"] == {"S": "bad"}


# -- nothing to check is a failure, not "ok" ----------------------------------------------------

def test_reconciling_a_table_that_does_not_exist_fails_naming_it(cold: Lake, lake: EventLake
                                                                  ) -> None:
    typo = EventLake(lake.settings.with_(table="events-tset"), clients=lake.clients)

    with pytest.raises(TableNotFoundError, match="`events-tset` does not exist"):
        reconcile(cold, typo.hot, typo.settings, start=MAY_1, end=MAY_3, now=NOW)


def test_reconciling_a_lake_never_initialised_fails_naming_it(lake: EventLake, tmp_path: Path
                                                               ) -> None:
    typo = Lake(lake.settings.with_(lake_uri=str(tmp_path / "laek")), clients=lake.clients)

    with pytest.raises(LakeNotFoundError, match="laek"):
        run(lake, typo)

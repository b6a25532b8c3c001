"""Disjoint-files manifests: `verify` records only files whose event_ids are unique and meet no
other recorded file's; anything planted, copied, repeated or replaced stays out."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from eventlake.config import Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.compact import compact
from eventlake.lake.disjoint import (
    manifest_key,
    read_manifest,
    verified_files,
    verify,
    verify_recent,
)
from eventlake.lake.store import Lake, WrittenFile

DAY = date(2024, 3, 10)
DT = DAY.isoformat()
INGESTED = datetime(2024, 3, 10, 8, 30, tzinfo=UTC)


def event(n: int, **fields: Any) -> dict[str, Any]:
    row = {"event_id": f"e-{n:04d}", "event_type": "order.paid",
           "timestamp": datetime(2024, 3, 10, tzinfo=UTC) + timedelta(seconds=n),
           "ingested_at": INGESTED, "source": "shop", "subject": f"order/{n}",
           "event_payload": json.dumps({"n": n}), "content_hash": f"hash-{n}"}
    row.update(fields)
    return row


def write(lake: Lake, numbers: list[int] | range, name: str, **fields: Any) -> str:
    rows = [event(n, **fields) for n in numbers]
    return lake.write_partition(DT, pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), name).path


def base(path: str) -> str:
    return path.rpartition("/")[2]


def trusted(lake: Lake) -> list[str]:
    """Base names of the listed files the manifest names."""
    return sorted(base(p) for p in verified_files(lake, lake.list_files()))


def stream_day(lake: Lake, files: int = 4, per_file: int = 5) -> list[str]:
    """Files as the stream writer names them, each with its own events."""
    return [write(lake, range(k * per_file, (k + 1) * per_file),
                  f"stream-{100 * k:06d}-{100 * k + 99:06d}-d{k:02d}") for k in range(files)]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


# -- what is accepted -----------------------------------------------------------------------

def test_stream_files_of_one_day_are_all_recorded_as_disjoint(lake: Lake) -> None:
    paths = stream_day(lake)

    report = verify(lake, [DT])

    assert report.accepted == {DT: [base(p) for p in paths]}
    assert report.refused == {}
    assert trusted(lake) == sorted(base(p) for p in paths)


def test_a_second_verify_with_nothing_new_reads_no_file_and_writes_nothing(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    stream_day(lake)
    verify(lake, [DT])
    before = lake.read_state(manifest_key(DT))
    reads: list[str] = []
    real = lake.read_file
    monkeypatch.setattr(lake, "read_file", lambda path, *a, **k: reads.append(path)
                        or real(path, *a, **k))

    report = verify(lake, [DT])

    assert (report.accepted, report.refused, report.dropped) == ({}, {}, {})
    assert reads == []
    assert lake.read_state(manifest_key(DT)) == before


def test_a_new_file_is_checked_against_the_recorded_ones_and_added(lake: Lake) -> None:
    stream_day(lake)
    verify(lake, [DT])
    late = write(lake, range(100, 103), "stream-000900-000999-late")

    report = verify(lake, [DT])

    assert report.accepted == {DT: [base(late)]}
    assert base(late) in trusted(lake)


def test_a_partition_with_one_file_is_left_alone(lake: Lake) -> None:
    write(lake, range(3), "compacted-x-1-of-1")

    assert verify(lake, [DT]).accepted == {}
    assert lake.read_state(manifest_key(DT)) is None


# -- what is refused ------------------------------------------------------------------------

def test_a_hand_planted_copy_of_a_verified_file_is_refused(lake: Lake) -> None:
    paths = stream_day(lake)
    verify(lake, [DT])
    copy = paths[1].replace("-d01", "-copy")
    shutil.copy(paths[1], copy)

    report = verify(lake, [DT])

    assert list(report.refused[DT]) == [base(copy)]
    assert "shares 5 event_id(s) with verified files, e.g. `e-0005`" in report.refused[DT][
        base(copy)]
    assert base(copy) not in trusted(lake) and base(paths[1]) in trusted(lake)


def test_a_refused_file_is_not_read_again_while_it_stays(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = stream_day(lake)
    shutil.copy(paths[1], paths[1].replace("-d01", "-copy"))
    verify(lake, [DT])
    before = lake.read_state(manifest_key(DT))
    reads: list[str] = []
    real = lake.read_file
    monkeypatch.setattr(lake, "read_file", lambda path, *a, **k: reads.append(path)
                        or real(path, *a, **k))

    assert verify(lake, [DT]).to_dict() == {"accepted": {}, "refused": {}, "dropped": {},
                                            "skipped": {}}
    assert reads == [] and lake.read_state(manifest_key(DT)) == before


def test_copies_planted_before_the_first_verify_let_only_the_first_by_name_in(
        lake: Lake) -> None:
    paths = stream_day(lake, files=2)
    shutil.copy(paths[0], paths[0].replace("stream-", "a-copy-of-stream-"))

    report = verify(lake, [DT])

    assert report.accepted[DT] == ["a-copy-of-stream-000000-000099-d00.parquet",
                                   base(paths[1])]
    assert list(report.refused[DT]) == [base(paths[0])]


def test_a_file_holding_one_copy_of_one_event_is_refused(lake: Lake) -> None:
    stream_day(lake)
    verify(lake, [DT])
    planted = write(lake, [200, 201, 7], "hand-planted")

    report = verify(lake, [DT])

    assert report.refused == {DT: {base(planted): "shares 1 event_id(s) with verified "
                                                  "files, e.g. `e-0007`"}}


def test_a_file_holding_an_event_twice_is_refused(lake: Lake) -> None:
    stream_day(lake)
    rows = [event(300), event(301), event(300)]
    path = lake.write_partition(DT, pa.Table.from_pylist(rows, schema=EVENT_SCHEMA),
                                "stream-twice").path

    report = verify(lake, [DT])

    assert report.refused[DT] == {base(path): "holds event_id `e-0300` more than once"}


def test_an_unreadable_file_is_refused_by_name_and_the_rest_verified(lake: Lake) -> None:
    paths = stream_day(lake, files=2)
    garbage = Path(paths[0]).with_name("stream-garbage.parquet")
    garbage.write_bytes(b"not parquet" * 10)

    report = verify(lake, [DT])

    assert report.accepted[DT] == [base(p) for p in paths]
    assert report.refused[DT][garbage.name].startswith("unreadable:")


def test_a_file_replaced_under_its_name_by_other_content_is_no_longer_trusted(
        lake: Lake) -> None:
    paths = stream_day(lake)
    verify(lake, [DT])
    write(lake, [0, 1, 2, 5, 6, 7, 8], base(paths[0]).removesuffix(".parquet"))  # now overlaps

    assert base(paths[0]) not in trusted(lake)
    report = verify(lake, [DT])

    assert report.dropped == {DT: 1}
    assert list(report.refused[DT]) == [base(paths[0])]
    assert base(paths[0]) not in trusted(lake)


def test_a_file_rewritten_with_the_same_size_but_a_new_time_is_no_longer_trusted(
        lake: Lake) -> None:
    paths = stream_day(lake)
    verify(lake, [DT])
    stat = os.stat(paths[0])
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))

    assert base(paths[0]) not in trusted(lake)


def test_a_file_written_but_never_verified_is_not_trusted(lake: Lake) -> None:
    stream_day(lake)
    verify(lake, [DT])
    crashed = write(lake, range(500, 505), "stream-crashed-before-verify")

    assert base(crashed) not in trusted(lake)
    assert len(trusted(lake)) == 4


def test_entries_of_files_compacted_away_are_dropped(lake: Lake) -> None:
    stream_day(lake)
    verify(lake, [DT])
    compact(lake, min_files=2)
    write(lake, range(600, 602), "stream-after")

    report = verify(lake, [DT])

    assert report.dropped == {DT: 4}
    assert sorted(report.accepted[DT]) == sorted(base(f.path) for f in lake.list_files())
    assert len(read_manifest(lake, DT).files) == 2


def test_an_unreadable_manifest_trusts_nothing_and_is_rewritten(lake: Lake) -> None:
    stream_day(lake)
    verify(lake, [DT])
    current = lake.read_state(manifest_key(DT))
    assert current is not None
    lake.write_state(manifest_key(DT), b"{not json", expected=current.version)

    assert trusted(lake) == []
    assert len(verify(lake, [DT]).accepted[DT]) == 4
    assert len(trusted(lake)) == 4


# -- concurrency ------------------------------------------------------------------------------

def test_two_verifies_racing_both_land_and_never_accept_overlapping_files(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    stream_day(lake)
    verify(lake, [DT])
    first = write(lake, range(700, 705), "stream-r1")
    real_swap = lake.swap_state
    calls: list[str] = []

    def rival_writes_first(key: str, data: bytes, *, expected: str | None) -> str:
        calls.append(key)
        if len(calls) == 1:  # another verify, which also sees an overlapping newcomer
            monkeypatch.setattr(lake, "swap_state", real_swap)
            write(lake, range(702, 708), "stream-r0")
            assert verify(lake, [DT]).accepted == {DT: ["stream-r0.parquet"]}
            monkeypatch.setattr(lake, "swap_state", rival_writes_first)
        return real_swap(key, data, expected=expected)

    monkeypatch.setattr(lake, "swap_state", rival_writes_first)

    report = verify(lake, [DT])

    # the rival's write stands (its swap came first); ours lost, re-read the manifest and
    # found `first` already refused against the rival's file: nothing left to write
    assert len(calls) == 1 and report.to_dict()["accepted"] == {}
    assert "stream-r0.parquet" in trusted(lake) and base(first) not in trusted(lake)
    data = json.loads(lake.read_state(manifest_key(DT)).data)  # type: ignore[union-attr]
    assert [r["name"] for r in data["refused"]] == [base(first)]


def test_a_file_vanishing_while_its_ids_are_read_skips_the_partition(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = stream_day(lake)
    real = lake.read_file

    def compacted_meanwhile(path: str, *args: Any, **kwargs: Any) -> pa.Table:
        Path(paths[2]).unlink(missing_ok=True)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(lake, "read_file", compacted_meanwhile)

    report = verify(lake, [DT])

    assert list(report.skipped) == [DT] and "vanished" in report.skipped[DT]
    assert lake.read_state(manifest_key(DT)) is None


# -- the sweep's call -------------------------------------------------------------------------

def test_verify_recent_looks_at_the_written_days_today_and_yesterday(lake: Lake) -> None:
    now = datetime(2024, 3, 12, 1, 0, tzinfo=UTC)
    stream_day(lake, files=2)  # 2024-03-10: written by this sweep
    for dt in ("2024-03-11", "2024-03-12", "2024-03-09"):
        for k in range(2):
            lake.write(pa.Table.from_pylist([event(
                k, event_id=f"{dt}-{k}", timestamp=datetime.fromisoformat(f"{dt}T01:00:00+00:00")
            )], schema=EVENT_SCHEMA), f"stream-{k}")
    written = [WrittenFile(f"{lake.root}/events/dt={DT}/x.parquet", DT, 1, 1)]

    report = verify_recent(lake, written, now)

    assert sorted(report.accepted) == ["2024-03-10", "2024-03-11", "2024-03-12"]


def test_verify_recent_reports_a_failure_instead_of_raising(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    stream_day(lake)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk on fire")

    monkeypatch.setattr(lake, "list_files", broken)

    report = verify_recent(lake, [], datetime(2024, 3, 10, 12, tzinfo=UTC))

    assert report.skipped == {"2024-03-09": "OSError: disk on fire",
                              "2024-03-10": "OSError: disk on fire"}


def test_on_s3_manifests_are_written_by_compare_and_swap_and_read_back(s3_lake: Lake) -> None:
    paths = stream_day(s3_lake, files=3)
    assert verify(s3_lake, [DT]).accepted[DT] == [base(p) for p in paths]
    planted = write(s3_lake, [1, 900], "hand-planted")

    report = verify(s3_lake, [DT])

    assert list(report.refused[DT]) == [base(planted)]
    assert trusted(s3_lake) == sorted(base(p) for p in paths)
    assert verify(s3_lake, [DT]).to_dict() == {"accepted": {}, "refused": {}, "dropped": {},
                                               "skipped": {}}


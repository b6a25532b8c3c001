"""Compaction and the disjoint-files manifests: compaction verifies what it rewrote; a crash
between its steps never leaves a manifest naming two files that share an event_id; a merged file
refused while its inputs were there is accepted once they are gone; a hand-planted copy is
counted once throughout."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lake_support import ColdOnly

from eventlake.config import Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake import compact as compact_module
from eventlake.lake.compact import compact
from eventlake.lake.disjoint import manifest_key, read_manifest, verified_files, verify
from eventlake.lake.store import Lake
from eventlake.query.views import connect

OLD_DAY = date(2024, 3, 10)  # long past: no sweep verifies it (today/yesterday only)
DT = OLD_DAY.isoformat()
NOW = datetime(2024, 6, 1, tzinfo=UTC)
INGESTED = datetime(2024, 3, 10, 8, 30, tzinfo=UTC)


def event(n: int) -> dict[str, Any]:
    return {"event_id": f"e-{n:04d}", "event_type": ["click", "order"][n % 2],
            "timestamp": datetime(2024, 3, 10, tzinfo=UTC) + timedelta(seconds=n),
            "ingested_at": INGESTED, "source": "shop", "subject": f"order/{n}",
            "event_payload": json.dumps({"n": n, "pad": "x" * (n % 40)}),
            "content_hash": f"hash-{n}"}


def write(lake: Lake, numbers: range | list[int], name: str) -> str:
    rows = [event(n) for n in numbers]
    return lake.write_partition(DT, pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), name).path


def stream_day(lake: Lake, files: int = 6, per_file: int = 10) -> list[str]:
    return [write(lake, range(k * per_file, (k + 1) * per_file),
                  f"stream-{k:06d}-{k:06d}-d{k:02d}") for k in range(files)]


def base(path: str) -> str:
    return path.rpartition("/")[2]


def trusted(lake: Lake) -> list[str]:
    return sorted(base(p) for p in verified_files(lake, lake.list_files()))


def counted(lake: Lake) -> tuple[int, int]:
    """(rows, distinct event_ids) through events_cold, as a reader sees the lake now."""
    con = connect(ColdOnly(lake, NOW), hot=False, now=NOW)
    rows, distinct = con.sql("select count(*), count(distinct event_id) from events_cold"
                             ).fetchall()[0]
    return int(rows), int(distinct)


def assert_manifest_true(lake: Lake) -> None:
    """The listed files the manifest names hold each event_id once between them: a reader
    reading them bare never sees two copies."""
    named = verified_files(lake, lake.list_files())
    held = Counter(i for p in named for i in pq.read_table(p, columns=["event_id"])
                   ["event_id"].to_pylist())
    assert [i for i, n in held.items() if n > 1] == []


def split_thresholds(lake: Lake) -> dict[str, int]:
    """Thresholds under which compaction merges every file into two outputs, which it then
    leaves alone (they are large)."""
    sizes = [f.size for f in lake.list_files(dts=[DT])]
    return {"min_files": 4, "small_file_bytes": max(sizes) + 1,
            "target_bytes": sum(sizes) // 2 + 1}


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


# -- compaction verifies what it rewrote ------------------------------------------------------

def test_an_old_day_compacted_into_several_outputs_is_read_bare_and_counted_once(
        lake: Lake) -> None:
    # given an old day of stream files nobody verified
    stream_day(lake)
    assert trusted(lake) == []

    # when compaction splits it into two outputs
    report = compact(lake, now=NOW, **split_thresholds(lake))

    # then it verified them, readers read both bare, and each event counts once
    outputs = sorted(base(f.path) for f in lake.list_files())
    assert len(outputs) == 2 and all(o.startswith("compacted-") for o in outputs)
    assert sorted(report.verified.accepted[DT]) == outputs
    assert report.to_dict()["verified"]["accepted"] == {DT: report.verified.accepted[DT]}
    assert trusted(lake) == outputs
    assert counted(lake) == (60, 60)


def test_a_verify_failing_after_the_rewrite_is_reported_and_the_rewrite_stands(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    stream_day(lake)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("state store on fire")

    monkeypatch.setattr(lake, "swap_state", broken)

    report = compact(lake, now=NOW, **split_thresholds(lake))

    assert report.ok and report.files_out == 2
    assert report.verified.skipped == {DT: "OSError: state store on fire"}
    assert trusted(lake) == [] and counted(lake) == (60, 60)


def test_the_next_compaction_verifies_a_partition_left_with_several_unverified_files(
        lake: Lake) -> None:
    # given an old day compacted into two outputs whose verify never happened
    stream_day(lake)
    thresholds = split_thresholds(lake)
    compact(lake, now=NOW, **thresholds)
    (Path(lake.root) / "_eventlake" / manifest_key(DT)).unlink()  # killed before step 6
    assert trusted(lake) == []

    # when compaction runs again (nothing to merge)
    report = compact(lake, now=NOW, **thresholds)

    # then it left the files alone but verified them while looking for copies
    assert (report.partitions, report.skipped) == ([], 1)
    assert len(trusted(lake)) == 2 and counted(lake) == (60, 60)


# -- crashes between compaction's steps ------------------------------------------------------

def crash_writing_second_output(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    real = lake.write_partition
    writes: list[str] = []

    def one_then_killed(*args: Any, **kwargs: Any) -> Any:
        if writes:
            raise KeyboardInterrupt("killed while writing")
        result = real(*args, **kwargs)
        writes.append(result.path)
        return result

    monkeypatch.setattr(lake, "write_partition", one_then_killed)


def crash_deleting(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    real = lake.delete

    def two_then_killed(paths: Any) -> None:
        real(list(paths)[:2])
        raise KeyboardInterrupt("killed while deleting")

    monkeypatch.setattr(lake, "delete", two_then_killed)


def crash_before_verify(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt("killed before verifying")

    monkeypatch.setattr(compact_module, "_verify", killed)


def crash_swapping_manifest(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    real = lake.swap_state

    def landed_then_killed(key: str, data: bytes, *, expected: str | None) -> str:
        real(key, data, expected=expected)  # the write lands; the process dies before using it
        raise KeyboardInterrupt("killed after the manifest write")

    monkeypatch.setattr(lake, "swap_state", landed_then_killed)


@pytest.mark.parametrize("crash", [crash_writing_second_output, crash_deleting,
                                   crash_before_verify, crash_swapping_manifest])
@pytest.mark.parametrize("sweep_verified_first", [False, True])
def test_a_crash_between_compaction_steps_never_lets_readers_read_two_copies_bare(
        lake: Lake, monkeypatch: pytest.MonkeyPatch, crash: Any,
        sweep_verified_first: bool) -> None:
    # given an old day of stream files, verified by a sweep (or not), and a hand-planted copy
    paths = stream_day(lake)
    thresholds = split_thresholds(lake)
    if sweep_verified_first:
        verify(lake, [DT], now=NOW)
    shutil.copy(paths[2], paths[2].replace("stream-", "planted-"))

    # when compaction is killed at one of its steps
    with monkeypatch.context() as killed:
        crash(lake, killed)
        with pytest.raises(KeyboardInterrupt):
            compact(lake, now=NOW, **thresholds)

    # then the manifest is absent, stale or right; readers count each event once, before and
    # after a sweep's verify
    assert_manifest_true(lake)
    assert counted(lake)[0] == counted(lake)[1] == 60
    verify(lake, [DT], now=NOW)
    assert_manifest_true(lake)
    assert counted(lake) == (60, 60)

    # and the next run finishes the job: outputs only, read bare, each event once
    compact(lake, now=NOW, **thresholds)
    files = sorted(base(f.path) for f in lake.list_files())
    assert all(f.startswith("compacted-") for f in files)
    assert len(files) == 1 or trusted(lake) == files
    assert_manifest_true(lake)
    assert counted(lake) == (60, 60)


# -- refused files examined again -------------------------------------------------------------

def test_outputs_refused_beside_their_inputs_are_accepted_once_the_inputs_are_gone(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given verified stream files, and a compaction killed after writing its two outputs
    stream_day(lake)
    thresholds = split_thresholds(lake)
    verify(lake, [DT], now=NOW)
    with monkeypatch.context() as killed:
        killed.setattr(lake, "delete", lambda paths: (_ for _ in ()).throw(
            KeyboardInterrupt("killed before deleting")))
        with pytest.raises(KeyboardInterrupt):
            compact(lake, now=NOW, **thresholds)
    # a sweep sees outputs and inputs side by side, and refuses the outputs
    seen = verify(lake, [DT], now=NOW)
    outputs = sorted(base(f.path) for f in lake.list_files() if "compacted-" in f.path)
    assert sorted(seen.refused[DT]) == outputs
    assert counted(lake) == (60, 60)

    # when the inputs go (the next run finishes the interrupted one)
    report = compact(lake, now=NOW, **thresholds)

    # then the refused outputs were examined again and accepted: read bare, counted once
    assert (report.leftovers_removed, report.partitions) == (6, [])
    assert trusted(lake) == outputs
    assert verify(lake, [DT], now=NOW).to_dict()["accepted"] == {}
    assert counted(lake) == (60, 60)


def test_a_verify_alone_re_examines_refusals_whose_files_are_gone(lake: Lake) -> None:
    # given a verified day and a file holding copies of two of its files' events
    paths = stream_day(lake, files=3)
    verify(lake, [DT], now=NOW)
    merged = write(lake, range(0, 20), "merged-by-hand")
    assert verify(lake, [DT], now=NOW).refused[DT][base(merged)].startswith("shares 20")
    refusal = read_manifest(lake, DT).refusals
    assert len(refusal) == 1 and len(next(iter(refusal.values())).against or ()) == 2

    # when one of the two files it copied goes, then the other
    Path(paths[0]).unlink()
    still = verify(lake, [DT], now=NOW)
    Path(paths[1]).unlink()
    freed = verify(lake, [DT], now=NOW)

    # then it is refused again while a copy stays verified, and accepted after
    assert still.refused[DT][base(merged)].startswith("shares 10")
    assert freed.accepted == {DT: [base(merged)]}
    assert trusted(lake) == sorted([base(merged), base(paths[2])])


def test_a_file_holding_an_id_twice_is_not_read_again_when_its_siblings_change(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = stream_day(lake, files=3)
    twice = lake.write_partition(DT, pa.Table.from_pylist([event(900), event(900)],
                                                          schema=EVENT_SCHEMA), "twice").path
    verify(lake, [DT], now=NOW)
    Path(paths[0]).unlink()  # a sibling goes
    reads: list[str] = []
    real = lake.read_file
    monkeypatch.setattr(lake, "read_file", lambda path, *a, **k: reads.append(path)
                        or real(path, *a, **k))

    report = verify(lake, [DT], now=NOW)

    assert report.dropped == {DT: 1} and twice not in reads
    assert base(twice) not in trusted(lake)


def test_a_refusal_from_an_older_manifest_without_its_grounds_is_examined_once(
        lake: Lake) -> None:
    paths = stream_day(lake, files=3)
    planted = paths[0].replace("stream-", "planted-")
    shutil.copy(paths[0], planted)
    [refused] = verify(lake, [DT], now=NOW).refused[DT]  # one of the two copies, by name
    assert refused in (base(planted), base(paths[0]))
    stored = lake.read_state(manifest_key(DT))
    assert stored is not None
    data = json.loads(stored.data)
    for entry in data["refused"]:
        del entry["against"]  # as an older release wrote it
    lake.write_state(manifest_key(DT), json.dumps(data).encode(), expected=stored.version)

    first = verify(lake, [DT], now=NOW)
    second = verify(lake, [DT], now=NOW)

    assert list(first.refused[DT]) == [refused] and second.refused == {}
    assert refused not in trusted(lake) and len(trusted(lake)) == 3
    assert counted(lake) == (30, 30)


# -- a hand-planted copy ----------------------------------------------------------------------

def test_a_hand_planted_copy_left_by_compaction_is_refused_again_and_counted_once(
        lake: Lake) -> None:
    # given a verified old day of settled files, and a copy of one of them planted just now
    # (too young for compaction to merge)
    paths = stream_day(lake)
    hours_ago = time.time() - 7200
    for p in paths:
        os.utime(p, (hours_ago, hours_ago))
    thresholds = split_thresholds(lake)
    verify(lake, [DT])
    planted = paths[3].replace("stream-", "planted-")
    shutil.copy(paths[3], planted)
    assert counted(lake) == (60, 60)

    # when compaction merges the settled files
    report = compact(lake, min_age_seconds=3600, **thresholds)

    # then its verify refused the copy against the outputs; the copy is counted once
    assert report.files_in == 6 and Path(planted).exists()
    assert list(report.verified.refused[DT]) == [base(planted)]
    assert base(planted) not in trusted(lake)
    assert len(trusted(lake)) == 2
    assert_manifest_true(lake)
    assert counted(lake) == (60, 60)

"""What mutation testing found unchecked in the disjoint-files manifest and its id digest
(mutants38, docs/mutation-testing.md): a digest that does not hold (a null id, a file index
out of range, a wrong column type, another day's stamp) is never used, so a copy planted by
hand is still refused (else `events` counts its event twice); a digest that cannot be deleted
never undoes a verify; the sweep's clock ages the orphans, and a verify without a clock ages
them by UTC on any host; a refusal names the event_id a file holds twice; a lone stream file
costs a reader no manifest read."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from clock_support import nine_hours_east_of_utc

from eventlake.config import Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.disjoint import (
    manifest_key,
    read_manifest,
    verified_files,
    verify,
    verify_recent,
)
from eventlake.lake.store import Lake, WrittenFile
from tests.lake.test_disjoint import DT, base, event, stream_day, trusted, write


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


def digest_path(lake: Lake) -> Path:
    key = read_manifest(lake, DT).digest
    assert key is not None
    return Path(lake.root) / "_eventlake" / key


def digests(lake: Lake) -> list[str]:
    folder = Path(lake.root) / "_eventlake" / "disjoint" / f"dt={DT}"
    return sorted(p.name for p in folder.glob("*.ids.parquet"))


def damage_digest(lake: Lake, change: Callable[[pa.Table], pa.Table],
                  dt: str = DT) -> None:
    """Rewrite the digest the manifest names: `change` of its table, stamped for `dt`."""
    path = digest_path(lake)
    table = pq.read_table(path)
    files = table.schema.metadata[b"eventlake.files"]
    pq.write_table(change(table).replace_schema_metadata({
        b"eventlake.files": files, b"eventlake.dt": dt.encode()}), path)


def with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def at_id(table: pa.Table, event_id: str, column: str, value: Any) -> pa.Array:
    """`column` with `value` in the row of `event_id`."""
    here = pc.equal(table["event_id"], event_id)
    return pc.if_else(here, pa.scalar(value, table[column].type), table[column])


def plant_copy_of_event_7(lake: Lake) -> str:
    """A file planted by hand: two new events and a copy of `e-0007` (a verified file's)."""
    rows = [event(200), event(7), event(201)]
    return lake.write_partition(DT, pa.Table.from_pylist(rows, schema=EVENT_SCHEMA),
                                "hand-planted").path


@pytest.mark.parametrize("damage", ["a null id", "a file index out of range",
                                    "another day's stamp"])
def test_a_digest_that_does_not_hold_is_not_used_and_a_planted_copy_stays_out(
        lake: Lake, damage: str) -> None:
    # given a verified day whose digest was damaged
    stream_day(lake)
    verify(lake, [DT])
    if damage == "a null id":  # the id a planted copy shares would not be known
        damage_digest(lake, lambda t: with_column(t, "event_id",
                                                  at_id(t, "e-0007", "event_id", None)))
    elif damage == "a file index out of range":  # one past the last file
        files = len(read_manifest(lake, DT).files)
        damage_digest(lake, lambda t: with_column(t, "file", at_id(t, "e-0007", "file", files)))
    else:  # another day's ids under this day's file names
        damage_digest(lake, lambda t: with_column(
            t, "event_id", pc.binary_join_element_wise("x", t["event_id"], "")), dt="2024-03-11")
    # and a file planted by hand holding a copy of `e-0007`
    planted = plant_copy_of_event_7(lake)
    # when verify runs
    report = verify(lake, [DT])
    # then it read the verified files instead of the digest, and refused the copy
    assert report.refused == {DT: {base(planted): "shares 1 event_id(s) with verified "
                                                  "files, e.g. `e-0007`"}}
    assert base(planted) not in trusted(lake)


def test_a_digest_whose_file_index_is_not_uint32_is_not_used(lake: Lake) -> None:
    # given a verified day whose digest's file column was rewritten as int64
    stream_day(lake)
    verify(lake, [DT])
    damage_digest(lake, lambda t: with_column(t, "file", t["file"].cast(pa.int64())))
    # and a new file, and a file planted by hand holding a copy of `e-0007`
    late = write(lake, range(100, 103), "stream-000900-000999-late")
    planted = plant_copy_of_event_7(lake)
    # when verify runs
    report = verify(lake, [DT])
    # then the new file is in and the copy out, by the files' own ids
    assert report.accepted == {DT: [base(late)]}
    assert list(report.refused[DT]) == [base(planted)]


def test_a_digest_whose_file_list_holds_no_names_is_not_used(lake: Lake) -> None:
    # given a verified day whose digest's file list was damaged into lists (a bad hand edit)
    paths = stream_day(lake)
    verify(lake, [DT])
    path = digest_path(lake)
    table = pq.read_table(path)
    names = json.loads(table.schema.metadata[b"eventlake.files"])
    pq.write_table(table.replace_schema_metadata({
        b"eventlake.files": json.dumps([[n] for n in names]).encode(),
        b"eventlake.dt": DT.encode()}), path)
    # and a new file, and a copy of a verified one planted by hand
    late = write(lake, range(100, 103), "stream-000900-000999-late")
    copy = paths[1].replace("-d01", "-copy")
    Path(copy).write_bytes(Path(paths[1]).read_bytes())
    # when verify runs
    report = verify(lake, [DT])
    # then it read the verified files instead: the new file is in, the copy stays out
    assert report.accepted == {DT: [base(late)]}
    assert list(report.refused[DT]) == [base(copy)]
    assert base(copy) not in trusted(lake)


def test_a_digest_that_cannot_be_deleted_leaves_the_new_manifest_standing(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a verified day, a new file, and a store refusing deletes (a policy without it)
    stream_day(lake)
    verify(lake, [DT])
    old_digest = base(str(read_manifest(lake, DT).digest))
    late = write(lake, range(100, 103), "stream-000900-000999-late")

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError("AccessDenied: s3:DeleteObject")

    monkeypatch.setattr(lake, "delete", refused)
    # when verify records the new file with a new digest
    report = verify(lake, [DT])
    # then the new file is verified; the old digest is only left behind
    assert report.accepted == {DT: [base(late)]} and report.skipped == {}
    assert base(late) in trusted(lake)
    assert old_digest in digests(lake)


def test_the_sweeps_verify_ages_orphan_digests_by_the_sweeps_clock(lake: Lake) -> None:
    # given a verified day and a digest nobody names, written just now by this machine's clock
    stream_day(lake)
    verify(lake, [DT])
    orphan = digest_path(lake).with_name("crashed-run.ids.parquet")
    orphan.write_bytes(b"left by a crash before its swap")
    late = write(lake, range(100, 103), "stream-000900-000999-late")
    # when the sweep, its clock two hours later, verifies what it wrote
    sweep_now = datetime.now(UTC) + timedelta(hours=2)
    written = [WrittenFile(late, DT, 3, os.path.getsize(late))]
    report = verify_recent(lake, written, sweep_now)
    # then the orphan is an hour old by that clock, and deleted
    assert report.accepted == {DT: [base(late)]}
    assert orphan.name not in digests(lake)
    assert digests(lake) == [digest_path(lake).name]


@pytest.fixture
def host_nine_hours_east_of_utc() -> Iterator[None]:
    """This process's local time zone UTC+9 for the test."""
    with nine_hours_east_of_utc():
        yield


@pytest.mark.usefixtures("host_nine_hours_east_of_utc")
def test_a_verify_without_a_clock_ages_orphans_by_utc_on_a_host_east_of_utc(
        lake: Lake) -> None:
    # given a host whose local time is nine hours ahead of UTC, a verified day, and a digest
    # a racing verify wrote a moment ago and is about to name
    stream_day(lake)
    verify(lake, [DT])
    racer = digest_path(lake).with_name("racing-run.ids.parquet")
    racer.write_bytes(b"a racing verify's, not named yet")
    late = write(lake, range(100, 103), "stream-000900-000999-late")
    # when verify runs with no clock of its own (it takes the time now)
    before = datetime.now(UTC)
    report = verify(lake, [DT])
    after = datetime.now(UTC)
    # then the racer's digest is a moment old by UTC, and left alone
    assert report.accepted == {DT: [base(late)]}
    assert racer.name in digests(lake)
    # and the manifest says when it was verified in UTC, not in the host's local time
    state = lake.read_state(manifest_key(DT))
    assert state is not None
    verified_at = datetime.fromisoformat(json.loads(state.data)["verified_at"])
    assert before <= verified_at <= after


def test_a_refusal_names_the_event_id_the_file_holds_twice(lake: Lake) -> None:
    # given a verified day, and a file holding `e-0300` twice and `e-0007` of a verified file
    stream_day(lake)
    verify(lake, [DT])
    rows = [event(7), event(300), event(301), event(300)]
    path = lake.write_partition(DT, pa.Table.from_pylist(rows, schema=EVENT_SCHEMA),
                                "stream-twice").path
    # when verify examines it
    report = verify(lake, [DT])
    # then it is refused for the id it holds twice, not for the first contested one
    assert report.refused == {DT: {base(path): "holds event_id `e-0300` more than once"}}


def test_a_file_refused_for_an_id_twice_does_not_stop_the_files_after_it(lake: Lake) -> None:
    # given a verified day, a file holding `e-0300` twice and a new file named after it
    stream_day(lake)
    verify(lake, [DT])
    rows = [event(300), event(301), event(300)]
    twice = lake.write_partition(DT, pa.Table.from_pylist(rows, schema=EVENT_SCHEMA),
                                 "stream-000500-000599-twice").path
    late = write(lake, range(100, 103), "stream-000900-000999-late")
    # when verify examines both (in name order)
    report = verify(lake, [DT])
    # then the first is refused and the second accepted in the same run
    assert list(report.refused[DT]) == [base(twice)]
    assert report.accepted == {DT: [base(late)]}


def test_a_reader_reads_no_manifest_for_a_day_of_one_stream_file(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a day of one stream file, and another day of one file planted by hand
    write(lake, range(3), "stream-000000-000099-d00")
    planted = lake.write_partition("2024-03-11", pa.Table.from_pylist(
        [event(9, event_id="p-1", timestamp=datetime(2024, 3, 11, tzinfo=UTC))],
        schema=EVENT_SCHEMA), "hand-planted").path
    states: list[str] = []
    real = lake.read_state
    monkeypatch.setattr(lake, "read_state", lambda key: states.append(key) or real(key))
    # when a reader asks which listed files are verified
    verified = verified_files(lake, lake.list_files())
    # then only the planted file's day costs a manifest read (the stream file is read bare)
    assert verified == frozenset() and Path(planted).exists()
    assert states == [manifest_key("2024-03-11")]

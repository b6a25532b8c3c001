"""What mutation testing found unchecked in the disjoint-files manifest and its id digest
(mutants38, docs/mutation-testing.md): a corrupt digest never stops verify, a digest that
cannot be deleted never undoes a verify, the sweep's clock ages the orphans, and a refusal
names the event_id a file holds twice."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventlake.config import Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.disjoint import read_manifest, verify, verify_recent
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

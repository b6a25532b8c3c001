"""The id digest next to a disjoint-files manifest: a verify after k new files reads those k
files and the digest, not every verified file; the digest always holds exactly the ids of the
manifest's files; one missing, unreadable or naming other files is never trusted."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlake.config import Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.compact import compact
from eventlake.lake.compactrecord import file_identity
from eventlake.lake.disjoint import IdCache, manifest_key, read_manifest, verified_files, verify
from eventlake.lake.disjointids import (
    DIGEST_SUFFIX,
    KnownIds,
    delete_orphans,
    digest_key,
    read_digest,
)
from eventlake.lake.store import Lake, StateConflictError

DT = "2024-03-10"
OTHER_DT = "2024-03-11"
INGESTED = datetime(2024, 3, 10, 8, 30, tzinfo=UTC)
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def write(lake: Lake, numbers: list[int] | range, name: str) -> str:
    rows = [{"event_id": f"e-{n:04d}", "event_type": "order.paid",
             "timestamp": datetime(2024, 3, 10, tzinfo=UTC) + timedelta(seconds=n),
             "ingested_at": INGESTED, "source": "shop", "subject": f"order/{n}",
             "event_payload": json.dumps({"n": n}), "content_hash": f"hash-{n}"}
            for n in numbers]
    return lake.write_partition(DT, pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), name).path


def write_other_day(lake: Lake, numbers: range, name: str) -> str:
    rows = [{"event_id": f"o-{n:04d}", "event_type": "order.paid",
             "timestamp": datetime(2024, 3, 11, tzinfo=UTC) + timedelta(seconds=n),
             "ingested_at": INGESTED, "source": "shop", "subject": f"order/{n}",
             "event_payload": json.dumps({"n": n}), "content_hash": f"hash-o{n}"}
            for n in numbers]
    return lake.write_partition(OTHER_DT, pa.Table.from_pylist(rows, schema=EVENT_SCHEMA),
                                name).path


def stream_day(lake: Lake, files: int = 6, per_file: int = 5) -> list[str]:
    return [write(lake, range(k * per_file, (k + 1) * per_file), f"stream-{k:06d}-d{k:02d}")
            for k in range(files)]


def base(path: str) -> str:
    return path.rpartition("/")[2]


def trusted(lake: Lake) -> list[str]:
    return sorted(base(p) for p in verified_files(lake, lake.list_files()))


def digests(lake: Lake) -> list[str]:
    """Digest objects of DT present in the lake's state folder."""
    folder = Path(lake.root) / "_eventlake" / "disjoint" / f"dt={DT}"
    return sorted(p.name for p in folder.glob("*.ids.parquet"))


def assert_digest_true(lake: Lake) -> None:
    """The manifest names a digest holding exactly the ids of its files, each with its file."""
    manifest = read_manifest(lake, DT)
    assert manifest.digest is not None
    known = read_digest(lake, DT, manifest.digest, manifest.files)
    assert known is not None
    held = sorted(zip(known.ids.to_pylist(),
                      [known.files[o] for o in known.owners.to_pylist()], strict=True))
    listed = {file_identity(f): f for f in lake.list_files(dts=[DT])}
    expected = sorted((i, identity) for identity in manifest.files
                      for i in pq.read_table(listed[identity].path, columns=["event_id"])
                      ["event_id"].to_pylist())
    assert held == expected


class Reads:
    """Event files and state keys a lake reads."""

    def __init__(self, lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
        self.files: list[str] = []
        self.states: list[str] = []
        read_file, read_state = lake.read_file, lake.read_state

        def counted_file(path: str, *args: Any, **kwargs: Any) -> pa.Table:
            self.files.append(base(path))
            return read_file(path, *args, **kwargs)

        def counted_state(key: str) -> Any:
            self.states.append(key)
            return read_state(key)

        monkeypatch.setattr(lake, "read_file", counted_file)
        monkeypatch.setattr(lake, "read_state", counted_state)

    @property
    def digests(self) -> list[str]:
        return [k for k in self.states if k.endswith(".ids.parquet")]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


# -- the ids and their files ------------------------------------------------------------------

def pairs(known: KnownIds) -> list[tuple[str, str]]:
    return sorted(zip(known.ids.to_pylist(), [known.files[o] for o in known.owners.to_pylist()],
                      strict=True))


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 4), max_size=6), added=st.integers(0, 3),
       keep=st.sets(st.integers(0, 9)))
def test_known_ids_keep_each_id_with_its_file_through_plus_and_only(
        sizes: list[int], added: int, keep: set[int]) -> None:
    files = [(f"f{k}", pa.array([f"e-{k}-{i}" for i in range(n)], pa.string()))
             for k, n in enumerate(sizes + [2] * added)]
    first, more = files[:len(sizes)], files[len(sizes):]
    kept = {f"f{k}" for k in keep}

    known = KnownIds.of(first).plus(more).only(kept)

    assert set(known.files) == kept & {name for name, _ in files}
    assert pairs(known) == sorted((i, name) for name, a in files if name in kept
                                  for i in a.to_pylist())


# -- reading less -----------------------------------------------------------------------------

def test_a_verify_after_one_new_file_reads_that_file_and_the_digest_only(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    stream_day(lake)
    verify(lake, [DT])
    late = write(lake, range(100, 103), "stream-000900-late")
    reads = Reads(lake, monkeypatch)

    report = verify(lake, [DT])

    assert report.accepted == {DT: [base(late)]}
    assert reads.files == [base(late)]
    assert len(reads.digests) == 1
    assert len(trusted(lake)) == 7
    assert_digest_true(lake)


def test_a_hand_planted_copy_is_refused_against_the_file_the_digest_names(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = stream_day(lake)
    verify(lake, [DT])
    copy = paths[3].replace("-d03", "-copy")
    shutil.copy(paths[3], copy)
    reads = Reads(lake, monkeypatch)
    digest_before, digest_files = read_manifest(lake, DT).digest, digests(lake)

    report = verify(lake, [DT])

    assert reads.files == [base(copy)]  # the copy only: the digest says where its ids are
    # nothing accepted, nothing dropped: the same files, so the same digest (none written)
    assert read_manifest(lake, DT).digest == digest_before and digests(lake) == digest_files
    assert report.refused == {DT: {base(copy): "shares 5 event_id(s) with verified files, "
                                               "e.g. `e-0015`"}}
    manifest = read_manifest(lake, DT)
    listed = {base(f.path): f for f in lake.list_files()}
    refusal = next(iter(manifest.refusals.values()))
    assert refusal.against == frozenset({file_identity(listed[base(paths[3])])})
    assert base(copy) not in trusted(lake)
    assert_digest_true(lake)


def test_a_file_sharing_one_id_with_a_verified_file_and_one_with_another_newcomer(
        lake: Lake) -> None:
    stream_day(lake)
    verify(lake, [DT])
    first = write(lake, [200, 201], "stream-a-new")
    clash_new = write(lake, [201, 202], "stream-b-new")
    clash_old = write(lake, [203, 4], "stream-c-new")

    report = verify(lake, [DT])

    assert report.accepted == {DT: [base(first)]}
    assert set(report.refused[DT]) == {base(clash_new), base(clash_old)}
    assert_digest_true(lake)


# -- a digest is never trusted blindly --------------------------------------------------------

def replace_manifest(lake: Lake, change: Any) -> None:
    current = lake.read_state(manifest_key(DT))
    assert current is not None
    data = json.loads(current.data)
    change(data)
    lake.write_state(manifest_key(DT), json.dumps(data).encode(), expected=current.version)


@pytest.mark.parametrize("damage", ["old format", "missing", "garbage", "other files",
                                    "other partition"])
def test_a_manifest_without_a_usable_digest_makes_verify_read_the_files_and_write_one(
        lake: Lake, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    paths = stream_day(lake)
    verify(lake, [DT])
    key = read_manifest(lake, DT).digest
    assert key is not None
    digest_path = Path(lake.root) / "_eventlake" / key
    if damage == "old format":  # a manifest of an earlier release
        replace_manifest(lake, lambda d: d.pop("ids"))
    elif damage == "missing":
        digest_path.unlink()
    elif damage == "garbage":
        digest_path.write_bytes(b"PAR1 not really")
    elif damage == "other files":  # a digest of an older manifest: one file fewer
        stale = pq.read_table(digest_path)
        files = json.loads(stale.schema.metadata[b"eventlake.files"])[:-1]
        stale = stale.filter(pa.compute.less(stale["file"], len(files)))
        pq.write_table(stale.replace_schema_metadata({
            b"eventlake.files": json.dumps(files).encode(), b"eventlake.dt": DT.encode()}),
            digest_path)
    else:
        replace_manifest(lake, lambda d: d.update(ids=key.replace(DT, "2024-03-11")))
    copy = paths[0].replace("-d00", "-copy")
    shutil.copy(paths[0], copy)
    late = write(lake, range(100, 103), "stream-000900-late")
    reads = Reads(lake, monkeypatch)

    report = verify(lake, [DT])

    assert sorted(reads.files) == sorted([base(p) for p in paths] + [base(copy), base(late)])
    assert report.accepted == {DT: [base(late)]}
    assert list(report.refused[DT]) == [base(copy)]
    assert_digest_true(lake)
    reads.files.clear()
    write(lake, range(110, 112), "stream-000901-later")
    verify(lake, [DT])
    assert reads.files == ["stream-000901-later.parquet"]  # the new digest serves again


def test_a_manifest_whose_ids_field_is_not_a_key_is_read_without_a_digest(lake: Lake) -> None:
    stream_day(lake)
    verify(lake, [DT])
    replace_manifest(lake, lambda d: d.update(ids=["not", "a", "key"]))

    manifest = read_manifest(lake, DT)

    assert manifest.digest is None and len(manifest.files) == 6


@pytest.mark.parametrize("named", ["lake state", "another partition's digest",
                                   "an event file"])
def test_verify_never_deletes_what_a_manifest_names_outside_its_digest_folder(
        lake: Lake, named: str) -> None:
    # given a verified day whose manifest's "ids" was edited to name another object of the lake
    paths = stream_day(lake)
    verify(lake, [DT])
    if named == "lake state":
        key = "watermark.json"
        lake.write_state(key, b'{"ingested_until": "2024-03-10T09:00:00+00:00"}',
                         expected=None)
        target = Path(lake.root) / "_eventlake" / key
    elif named == "another partition's digest":
        write_other_day(lake, range(300, 303), "stream-other-a")
        write_other_day(lake, range(303, 306), "stream-other-b")
        verify(lake, [OTHER_DT])
        key = str(read_manifest(lake, OTHER_DT).digest)
        target = Path(lake.root) / "_eventlake" / key
    else:
        key = f"../events/dt={DT}/{base(paths[0])}"
        target = Path(paths[0])
    replace_manifest(lake, lambda d: d.update(ids=key))
    assert read_manifest(lake, DT).digest is None  # not a digest of this partition
    # when the next verify records a new file, with a digest of its own
    late = write(lake, range(100, 103), "stream-000900-late")
    report = verify(lake, [DT])
    # then it read the files instead, and left the object it named where it was
    assert report.accepted == {DT: [base(late)]}
    assert_digest_true(lake)
    assert target.exists()


def test_a_manifest_naming_a_digest_key_the_lake_refuses_is_verified_without_it(
        lake: Lake) -> None:
    # a key in the digest folder that is not a valid state key (a hand edit, a bad copy)
    stream_day(lake)
    verify(lake, [DT])
    replace_manifest(lake, lambda d: d.update(ids=f"disjoint/dt={DT}/.hidden{DIGEST_SUFFIX}"))
    late = write(lake, range(100, 103), "stream-000900-late")

    report = verify(lake, [DT])

    assert report.skipped == {} and report.accepted == {DT: [base(late)]}
    assert_digest_true(lake)


# -- crashes and races ------------------------------------------------------------------------

def test_a_crash_between_the_digest_and_the_manifest_leaves_the_manifest_true(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    stream_day(lake)
    verify(lake, [DT])
    before = lake.read_state(manifest_key(DT))
    late = write(lake, range(100, 103), "stream-000900-late")
    real_swap = lake.swap_state

    def crash(*args: Any, **kwargs: Any) -> str:
        raise SystemExit("killed after writing the digest")

    monkeypatch.setattr(lake, "swap_state", crash)
    with pytest.raises(SystemExit):
        verify(lake, [DT])
    monkeypatch.setattr(lake, "swap_state", real_swap)

    # the manifest is the one before, and still names a digest of exactly its files
    assert lake.read_state(manifest_key(DT)) == before
    assert len(digests(lake)) == 2  # the orphan: named by nobody
    assert_digest_true(lake)
    assert base(late) not in trusted(lake)

    assert verify(lake, [DT]).accepted == {DT: [base(late)]}
    assert_digest_true(lake)
    assert len(digests(lake)) == 2  # the old one replaced, the orphan left: it may be a
    # racing verify's, about to be named


def test_a_digest_nobody_names_is_deleted_once_it_is_an_hour_old(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a verified day and an orphan digest a crash left two hours ago
    stream_day(lake)
    verify(lake, [DT])
    real_swap = lake.swap_state
    monkeypatch.setattr(lake, "swap_state", lambda *a, **k: (_ for _ in ()).throw(
        SystemExit("killed after writing the digest")))
    write(lake, range(100, 103), "stream-000900-late")
    with pytest.raises(SystemExit):
        verify(lake, [DT])
    monkeypatch.setattr(lake, "swap_state", real_swap)
    named = base(str(read_manifest(lake, DT).digest))
    [orphan] = [d for d in digests(lake) if d != named]
    folder = Path(lake.root) / "_eventlake" / "disjoint" / f"dt={DT}"
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
    os.utime(folder / orphan, (two_hours_ago, two_hours_ago))
    # when the next verify writes a digest
    verify(lake, [DT])
    # then only the digest its manifest names is left, and it is true
    assert digests(lake) == [base(str(read_manifest(lake, DT).digest))]
    assert orphan not in digests(lake)
    assert_digest_true(lake)


def test_a_young_digest_nobody_names_yet_is_left_alone(lake: Lake) -> None:
    # a racing verify's digest, written a moment ago and about to be named by its swap
    stream_day(lake)
    verify(lake, [DT])
    named = str(read_manifest(lake, DT).digest)
    racer = digest_key(DT, "racer")
    (Path(lake.root) / "_eventlake" / racer).write_bytes(b"not read")
    assert delete_orphans(lake, DT, named, now=datetime.now(UTC)) == 0
    assert sorted(digests(lake)) == sorted([base(named), base(racer)])
    assert delete_orphans(lake, DT, named, now=datetime.now(UTC) + timedelta(hours=2)) == 1
    assert digests(lake) == [base(named)]


def test_a_verify_losing_the_swap_deletes_its_digest_and_builds_on_the_rivals(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    stream_day(lake)
    verify(lake, [DT])
    mine = write(lake, range(700, 705), "stream-mine")
    real_swap, real_list = lake.swap_state, lake.list_files
    rival: list[str] = []

    def rival_writes_first(key: str, data: bytes, *, expected: str | None) -> str:
        if not rival:  # a rival that listed before `mine` existed records its own file
            rival.append(write(lake, range(800, 805), "stream-rival"))
            monkeypatch.setattr(lake, "list_files", lambda *a, **k: [
                f for f in real_list(*a, **k) if f.path != mine])
            monkeypatch.setattr(lake, "swap_state", real_swap)
            assert verify(lake, [DT]).accepted == {DT: ["stream-rival.parquet"]}
            monkeypatch.setattr(lake, "list_files", real_list)
            monkeypatch.setattr(lake, "swap_state", rival_writes_first)
        return real_swap(key, data, expected=expected)

    monkeypatch.setattr(lake, "swap_state", rival_writes_first)

    report = verify(lake, [DT])

    # the rival's record stands and ours is added to it: the day's 6 files, the rival's, ours
    assert report.accepted == {DT: [base(mine)]}
    assert {"stream-rival.parquet", base(mine)} <= set(trusted(lake))
    assert len(trusted(lake)) == 8
    assert_digest_true(lake)
    assert len(digests(lake)) == 1  # ours from the lost swap, and the rival's, deleted


def test_a_racers_digest_deleted_as_an_orphan_before_its_swap_only_costs_a_read(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a verify whose digest is deleted between its write and its swap (another verify's
    # `delete_orphans` with a clock running hours ahead)
    paths = stream_day(lake)
    verify(lake, [DT])
    late = write(lake, range(100, 103), "stream-000900-late")
    real_swap = lake.swap_state

    def orphaned_first(key: str, data: bytes, *, expected: str | None) -> str:
        named = read_manifest(lake, DT).digest
        assert delete_orphans(lake, DT, str(named), now=datetime.now(UTC) + timedelta(hours=3))
        return real_swap(key, data, expected=expected)

    monkeypatch.setattr(lake, "swap_state", orphaned_first)
    assert verify(lake, [DT]).accepted == {DT: [base(late)]}
    monkeypatch.setattr(lake, "swap_state", real_swap)
    # then its manifest names a digest that is gone: still true, and never trusted blindly
    assert digests(lake) == []
    assert len(trusted(lake)) == 7
    copy = paths[2].replace("-d02", "-copy")
    shutil.copy(paths[2], copy)
    reads = Reads(lake, monkeypatch)
    report = verify(lake, [DT])
    assert sorted(reads.files) == sorted([base(p) for p in paths] + [base(late), base(copy)])
    assert list(report.refused[DT]) == [base(copy)]
    assert_digest_true(lake)


def test_a_swap_that_landed_but_was_reported_lost_leaves_the_manifest_true(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a verify whose swap lands but answers a conflict (an S3 PUT retried after a lost
    # response, when a rival rewrote the manifest in between, naming the same digest)
    paths = stream_day(lake)
    planted = paths[1].replace("-d01", "-planted")
    shutil.copy(paths[1], planted)
    verify(lake, [DT])  # the planted copy is refused
    late = write(lake, range(100, 103), "stream-000900-late")
    real_swap = lake.swap_state
    calls: list[str] = []

    def landed_then_lost(key: str, data: bytes, *, expected: str | None) -> str:
        calls.append(key)
        real_swap(key, data, expected=expected)
        if len(calls) == 1:
            monkeypatch.setattr(lake, "swap_state", real_swap)
            Path(planted).unlink()  # the rival only drops the refusal of a file now gone
            verify(lake, [DT])
            monkeypatch.setattr(lake, "swap_state", landed_then_lost)
            raise StateConflictError("lost to a rival")
        return "unused"

    monkeypatch.setattr(lake, "swap_state", landed_then_lost)
    verify(lake, [DT])
    monkeypatch.setattr(lake, "swap_state", real_swap)

    # then the manifest names every file, each event once, whatever became of the digest
    assert trusted(lake) == sorted([base(p) for p in paths] + [base(late)])
    held = Counter(i for p in verified_files(lake, lake.list_files())
                   for i in pq.read_table(p, columns=["event_id"])["event_id"].to_pylist())
    assert len(held) == 33 and set(held.values()) == {1}
    more = write(lake, range(110, 112), "stream-000901-more")
    assert verify(lake, [DT]).accepted == {DT: [base(more)]}
    assert_digest_true(lake)


def test_a_verified_file_compacted_away_and_restored_with_its_identity_is_refused(
        lake: Lake, tmp_path: Path) -> None:
    # given a verified day, one file of which is merged into another and deleted (compaction)
    paths = stream_day(lake)
    verify(lake, [DT])
    [before] = [file_identity(f) for f in lake.list_files() if f.path == paths[0]]
    backup = tmp_path / base(paths[0])
    shutil.copy2(paths[0], backup)  # a backup keeping its modification time
    merged = write(lake, [*range(0, 5), *range(100, 103)], "compacted-x-1-of-1")
    Path(paths[0]).unlink()
    assert verify(lake, [DT]).accepted == {DT: [base(merged)]}

    # when the file comes back from the backup, the very file the manifest once named
    shutil.copy2(backup, paths[0])
    assert [file_identity(f) for f in lake.list_files() if f.path == paths[0]] == [before]
    report = verify(lake, [DT])

    # then it is refused against the file now holding its events: each event read once
    assert list(report.refused[DT]) == [base(paths[0])]
    held = Counter(i for p in verified_files(lake, lake.list_files())
                   for i in pq.read_table(p, columns=["event_id"])["event_id"].to_pylist())
    assert len(held) == 33 and set(held.values()) == {1}
    assert_digest_true(lake)


# -- compaction -------------------------------------------------------------------------------

def test_compaction_verifies_with_its_id_cache_and_leaves_a_true_digest(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    stream_day(lake)
    verify(lake, [DT])
    sizes = [f.size for f in lake.list_files(dts=[DT])]

    report = compact(lake, now=NOW, min_files=4, small_file_bytes=max(sizes) + 1,
                     target_bytes=sum(sizes) // 2 + 1)

    outputs = sorted(base(f.path) for f in lake.list_files())
    assert sorted(report.verified.accepted[DT]) == outputs and trusted(lake) == outputs
    assert_digest_true(lake)
    assert len(digests(lake)) == 1
    late = write(lake, range(100, 103), "stream-000900-late")
    reads = Reads(lake, monkeypatch)
    assert verify(lake, [DT], ids=IdCache()).accepted == {DT: [base(late)]}
    assert reads.files == [base(late)]
    held = Counter(i for p in verified_files(lake, lake.list_files())
                   for i in pq.read_table(p, columns=["event_id"])["event_id"].to_pylist())
    assert len(held) == 33 and set(held.values()) == {1}


def test_compaction_still_merges_a_copy_planted_beside_a_day_verified_with_a_digest(
        lake: Lake) -> None:
    # given a day of large files verified with a digest, and a large copy of one planted
    paths = [write(lake, range(k * 200, (k + 1) * 200), f"sweep-{k}") for k in range(3)]
    verify(lake, [DT])
    copy = paths[1].replace("sweep-1", "backfill-copy")
    shutil.copy(paths[1], copy)
    size = min(f.size for f in lake.list_files())

    # when compaction looks at the day (verify refuses the copy against the digest alone)
    report = compact(lake, now=NOW, min_files=4, small_file_bytes=size // 2,
                     target_bytes=size + 1)

    # then it still finds the copies among files verify did not read, and merges them
    assert report.duplicates_dropped == 200
    held = Counter(i for f in lake.list_files()
                   for i in pq.read_table(f.path, columns=["event_id"])["event_id"].to_pylist())
    assert len(held) == 600 and set(held.values()) == {1}
    assert sorted(trusted(lake)) == sorted(base(f.path) for f in lake.list_files())
    assert_digest_true(lake)


# -- on S3 ------------------------------------------------------------------------------------

def test_on_s3_a_verify_after_one_new_file_reads_it_and_the_digest(
        s3_lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = stream_day(s3_lake, files=4)
    assert verify(s3_lake, [DT]).accepted[DT] == [base(p) for p in paths]
    late = write(s3_lake, range(100, 103), "stream-000900-late")
    planted = write(s3_lake, [2, 900], "hand-planted")
    reads = Reads(s3_lake, monkeypatch)

    report = verify(s3_lake, [DT])

    assert sorted(reads.files) == sorted([base(late), base(planted)])
    assert report.accepted == {DT: [base(late)]} and list(report.refused[DT]) == [base(planted)]
    assert len(reads.digests) == 1
    manifest = read_manifest(s3_lake, DT)
    assert manifest.digest is not None
    known = read_digest(s3_lake, DT, manifest.digest, manifest.files)
    assert known is not None and len(known.ids) == 23
    keys = [o["Key"] for o in s3_lake._s3.list_objects_v2(
        Bucket=s3_lake._bucket, Prefix="lake/_eventlake/disjoint/").get("Contents", [])]
    assert sorted(keys) == sorted([f"lake/_eventlake/{manifest_key(DT)}",
                                   f"lake/_eventlake/{manifest.digest}"])


def test_on_s3_an_old_digest_nobody_names_is_deleted(s3_lake: Lake) -> None:
    stream_day(s3_lake, files=3)
    verify(s3_lake, [DT])
    named = str(read_manifest(s3_lake, DT).digest)
    orphan = digest_key(DT, "crashed")
    s3_lake._s3.put_object(Bucket=s3_lake._bucket, Key=f"lake/_eventlake/{orphan}", Body=b"x")

    assert delete_orphans(s3_lake, DT, named, now=datetime.now(UTC)) == 0  # too young
    assert delete_orphans(s3_lake, DT, named, now=datetime.now(UTC) + timedelta(hours=2)) == 1

    keys = [o["Key"] for o in s3_lake._s3.list_objects_v2(
        Bucket=s3_lake._bucket, Prefix="lake/_eventlake/disjoint/").get("Contents", [])]
    assert sorted(keys) == sorted([f"lake/_eventlake/{manifest_key(DT)}",
                                   f"lake/_eventlake/{named}"])

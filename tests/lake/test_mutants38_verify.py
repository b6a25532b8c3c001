"""What mutation testing found unchecked in `verify`'s pass over one day (mutants38,
docs/mutation-testing.md, `_verify_partition`): a verified file found unreadable when the
digest is gone makes verify examine the whole day again (not crash, not trust the rest
blindly); a refusal resting on every verified file holds (the copy is not read again); a
refused file that is gone leaves the manifest, which keeps its digest; a verified file gone
when there is no digest is dropped without one; a verify that loses its swap deletes no
digest a manifest names. `read_manifest`: a refusal of an older release (no grounds recorded)
leaves the verified files trusted; a refusal whose grounds are not file identities makes the
manifest unreadable (nothing trusted)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eventlake.config import Settings
from eventlake.lake.disjoint import manifest_key, read_manifest, verify
from eventlake.lake.store import Lake
from tests.lake.test_disjoint import DT, base, stream_day, trusted, write


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


def count_reads(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the event files read from now on."""
    reads: list[str] = []
    real = lake.read_file
    monkeypatch.setattr(lake, "read_file", lambda path, *a, **k: reads.append(base(path))
                        or real(path, *a, **k))
    return reads


def verified_day_with_a_copy(lake: Lake) -> Path:
    """A verified day, and a copy of one of its files planted by hand (not examined yet)."""
    paths = stream_day(lake)
    verify(lake, [DT])
    copy = Path(paths[1].replace("-d01", "-copy"))
    shutil.copy(paths[1], copy)
    return copy


def test_a_verified_file_unreadable_now_makes_verify_examine_the_whole_day_again(
        lake: Lake) -> None:
    # given a verified day, and a copy of a verified file planted by hand, refused
    paths = stream_day(lake)
    verify(lake, [DT])
    copy = Path(paths[2]).with_name("zz-copy.parquet")
    shutil.copy(paths[2], copy)
    assert list(verify(lake, [DT]).refused[DT]) == [copy.name]
    # and the day's digest gone (verify must read the verified files)
    digest = read_manifest(lake, DT).digest
    assert digest is not None
    (Path(lake.root) / "_eventlake" / digest).unlink()
    # and a verified file overwritten by garbage keeping its size and modification time
    stat = os.stat(paths[1])
    Path(paths[1]).write_bytes(b"x" * stat.st_size)
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # and a new file
    late = write(lake, range(100, 103), "stream-000900-000999-late")
    # when verify runs
    report = verify(lake, [DT])
    # then it examined every file again: the garbage is refused, the copy refused again by
    # its ids, the readable ones accepted
    assert sorted(report.refused[DT]) == [base(paths[1]), copy.name]
    assert report.refused[DT][base(paths[1])].startswith("unreadable:")
    assert report.refused[DT][copy.name].startswith("shares 5 event_id(s) with verified files")
    readable = sorted(base(p) for p in [*paths[:1], *paths[2:], late])
    assert report.accepted == {DT: readable}
    assert trusted(lake) == readable


def test_a_copy_refused_against_every_verified_file_is_not_read_again(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a day of one stream file and a copy of it planted by hand (named after it)
    [stream] = stream_day(lake, files=1)
    copy = Path(stream).with_name("zz-copy.parquet")
    shutil.copy(stream, copy)
    first = verify(lake, [DT])
    assert list(first.refused[DT]) == [copy.name]  # its refusal rests on the only verified file
    before = lake.read_state(manifest_key(DT))
    reads = count_reads(lake, monkeypatch)
    # when verify runs again with nothing new
    report = verify(lake, [DT])
    # then the refusal still holds: nothing is read, reported or written
    assert report.to_dict() == {"accepted": {}, "refused": {}, "dropped": {}, "skipped": {}}
    assert reads == []
    assert lake.read_state(manifest_key(DT)) == before


def test_a_refused_file_that_is_gone_leaves_the_manifest_which_keeps_its_digest(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a verified day and a copy planted by hand, refused
    copy = verified_day_with_a_copy(lake)
    assert list(verify(lake, [DT]).refused[DT]) == [copy.name]
    before = read_manifest(lake, DT)
    assert before.refusals.keys() and before.digest is not None
    # and the copy deleted by hand
    copy.unlink()
    reads = count_reads(lake, monkeypatch)
    # when verify runs
    verify(lake, [DT])
    # then the manifest drops the refusal, names the same files and the same digest
    after = read_manifest(lake, DT)
    assert after.refused == frozenset()
    assert after.files == before.files and after.digest == before.digest
    assert reads == []
    # and a later file is checked against that digest: only the new file is read
    late = write(lake, range(100, 103), "stream-000900-000999-late")
    assert verify(lake, [DT]).accepted == {DT: [base(late)]}
    assert reads == [base(late)]


def test_a_verified_file_gone_when_the_digest_is_gone_too_is_dropped(lake: Lake) -> None:
    # given a verified day whose digest is gone, and a verified file deleted (compacted away)
    paths = stream_day(lake)
    verify(lake, [DT])
    digest = read_manifest(lake, DT).digest
    assert digest is not None
    (Path(lake.root) / "_eventlake" / digest).unlink()
    Path(paths[0]).unlink()
    # when verify runs, with nothing new to examine
    report = verify(lake, [DT])
    # then the entry is dropped and the rest stay verified, the manifest naming no digest
    assert report.dropped == {DT: 1} and report.skipped == {}
    assert trusted(lake) == sorted(base(p) for p in paths[1:])
    assert read_manifest(lake, DT).digest is None


def test_a_verify_losing_its_swap_deletes_no_digest_a_manifest_names(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a verified day and a copy of a verified file planted by hand
    copy = verified_day_with_a_copy(lake)
    real_swap = lake.swap_state
    calls: list[str] = []

    def rival_writes_first(key: str, data: bytes, *, expected: str | None) -> str:
        calls.append(key)
        if len(calls) == 1:  # another verify refuses the copy too, keeping the digest
            monkeypatch.setattr(lake, "swap_state", real_swap)
            assert list(verify(lake, [DT]).refused[DT]) == [copy.name]
            monkeypatch.setattr(lake, "swap_state", rival_writes_first)
        return real_swap(key, data, expected=expected)

    monkeypatch.setattr(lake, "swap_state", rival_writes_first)
    # when this verify, which refused the copy against the same digest, loses its swap
    verify(lake, [DT])
    # then the digest the standing manifest names is still there
    digest = read_manifest(lake, DT).digest
    assert len(calls) == 1 and digest is not None
    assert (Path(lake.root) / "_eventlake" / digest).exists()


def rewrite_refusals(lake: Lake, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to each refused entry of the day's manifest (a hand edit, an old release)."""
    current = lake.read_state(manifest_key(DT))
    assert current is not None
    data = json.loads(current.data)
    for entry in data["refused"]:
        change(entry)
    lake.write_state(manifest_key(DT), json.dumps(data).encode(), expected=current.version)


def refused_copy_day(lake: Lake) -> list[str]:
    """A verified day of four stream files and a refused copy of one; the four's names."""
    paths = stream_day(lake)
    verify(lake, [DT])
    shutil.copy(paths[1], paths[1].replace("-d01", "-copy"))
    verify(lake, [DT])
    return sorted(base(p) for p in paths)


def test_a_refusal_without_its_grounds_leaves_the_verified_files_trusted(lake: Lake) -> None:
    # given a verified day whose refusal has no `against`, as an older release wrote it
    verified = refused_copy_day(lake)
    rewrite_refusals(lake, lambda entry: entry.pop("against"))
    # then readers still read the verified files bare
    assert trusted(lake) == verified


@pytest.mark.parametrize("against", [[1, 2], "stream-000100-000199-d01.parquet"])
def test_a_refusal_whose_grounds_are_not_file_identities_makes_the_manifest_unreadable(
        lake: Lake, against: Any) -> None:
    # given a verified day whose refusal's `against` was damaged by hand
    refused_copy_day(lake)
    rewrite_refusals(lake, lambda entry: entry.update(against=against))
    # then the manifest is not used: nothing is trusted, every file is de-duplicated
    assert trusted(lake) == []

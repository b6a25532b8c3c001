"""What mutation testing found unchecked in the disjoint-files manifest's writers and clean-up
(mutants39, docs/mutation-testing.md): compaction's verify takes the event_id columns it read
(a planted copy's ids are read once, not again to look for its copies); a digest nobody names
is deleted once it is exactly an hour old ("at least", not "more than"); a digest is stored
zstd-compressed (its size is what makes reading one cheaper than reading the files)."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventlake.config import Settings
from eventlake.lake.compact import compact
from eventlake.lake.disjoint import read_manifest, verify
from eventlake.lake.disjointids import ORPHAN_AGE, delete_orphans, digest_key
from eventlake.lake.store import Lake
from tests.lake.test_disjoint_digest import DT, NOW, base, digests, stream_day, trusted, write


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


def id_reads(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files whose event_id column alone is read from now on (verify's and
    `find_copies`' reads; the merge reads more columns)."""
    reads: list[str] = []
    real = lake.read_file

    def counted(path: str, columns: Any = None, **kwargs: Any) -> pa.Table:
        if list(columns or []) == ["event_id"]:
            reads.append(base(path))
        return real(path, columns, **kwargs)

    monkeypatch.setattr(lake, "read_file", counted)
    return reads


def test_compaction_reads_a_planted_copys_ids_once_to_verify_and_to_find_its_copies(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a day of three large files verified with a digest, and a copy of one planted
    paths = [write(lake, range(k * 200, (k + 1) * 200), f"sweep-{k}") for k in range(3)]
    verify(lake, [DT])
    shutil.copy(paths[1], paths[1].replace("sweep-1", "backfill-copy"))
    size = min(f.size for f in lake.list_files())
    reads = id_reads(lake, monkeypatch)

    # when compaction looks at the day for copies (its verify refuses the copy) and merges
    report = compact(lake, now=NOW, min_files=4, small_file_bytes=size // 2,
                     target_bytes=size + 1)

    # then the copy is merged away, and no file's event_id column was read twice: the
    # search for copies took what verify read
    assert report.duplicates_dropped == 200
    assert "backfill-copy.parquet" in reads
    assert [name for name, n in Counter(reads).items() if n > 1] == []
    assert sorted(trusted(lake)) == sorted(base(f.path) for f in lake.list_files())


def test_a_digest_nobody_names_is_deleted_when_exactly_an_hour_old(lake: Lake) -> None:
    # given a verified day, and a digest a crashed verify left, modified at a whole second
    stream_day(lake)
    verify(lake, [DT])
    named = str(read_manifest(lake, DT).digest)
    orphan = Path(lake.root) / "_eventlake" / digest_key(DT, "crashed")
    orphan.write_bytes(b"a crashed verify's digest")
    left_at = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)
    os.utime(orphan, (left_at.timestamp(), left_at.timestamp()))

    # when the clean-up runs a moment before it is an hour old, then exactly an hour after
    early = delete_orphans(lake, DT, named, now=left_at + ORPHAN_AGE - timedelta(seconds=1))
    assert (early, orphan.exists()) == (0, True)
    on_time = delete_orphans(lake, DT, named, now=left_at + ORPHAN_AGE)

    # then it is deleted at an hour ("at least ORPHAN_AGE old"), and the named one kept
    assert (on_time, orphan.exists()) == (1, False)
    assert digests(lake) == [base(named)]


def test_a_digest_is_stored_zstd_compressed(lake: Lake) -> None:
    # given a day of stream files
    stream_day(lake)

    # when verify records them with a digest of their ids
    verify(lake, [DT])

    # then every column of the digest is zstd-compressed (the module's measured sizes)
    digest = Path(lake.root) / "_eventlake" / str(read_manifest(lake, DT).digest)
    meta = pq.ParquetFile(digest).metadata
    codecs = {meta.row_group(g).column(c).compression
              for g in range(meta.num_row_groups) for c in range(meta.num_columns)}
    assert codecs == {"ZSTD"}


def test_a_clean_up_whose_delete_fails_says_it_deleted_nothing_and_raises_nothing(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a verified day and an old digest nobody names, and a store refusing deletes
    stream_day(lake)
    verify(lake, [DT])
    named = str(read_manifest(lake, DT).digest)
    (Path(lake.root) / "_eventlake" / digest_key(DT, "crashed")).write_bytes(b"old")

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OSError("access denied")

    monkeypatch.setattr(lake, "delete", refused)

    # when the clean-up runs hours later, then it answers 0 deleted (best effort)
    assert delete_orphans(lake, DT, named, now=datetime.now(UTC) + timedelta(hours=2)) == 0
    assert len(digests(lake)) == 2

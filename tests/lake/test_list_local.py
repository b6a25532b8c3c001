"""A local lake is listed with the os module (no pyarrow at start-up): the listing must be what
pyarrow's LocalFileSystem listed, modification times to the microsecond included (manifests
name files by them), and a file vanishing mid-listing must make it list again."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from eventlake.lake import fs as lake_fs
from eventlake.lake.fs import LakeFile
from eventlake.lake.layout import dt_of_dir


def pyarrow_listing(top: Path) -> list[LakeFile]:
    """The listing as LakeFS made it with pyarrow, before the os module did it."""
    local = pafs.LocalFileSystem()
    partitions = {e.path: dt for e in local.get_file_info(pafs.FileSelector(str(top)))
                  if e.type == pafs.FileType.Directory
                  and (dt := dt_of_dir(e.base_name)) is not None}
    files = []
    for info in local.get_file_info(pafs.FileSelector(str(top), recursive=True)):
        parent, _, base = info.path.rpartition("/")
        if (parent in partitions and info.type == pafs.FileType.File
                and base.endswith(".parquet") and not base.startswith((".", "_"))):
            files.append(LakeFile(info.path, partitions[parent], int(info.size), info.mtime))
    return sorted(files, key=lambda f: (f.dt, f.path))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    top = tmp_path / "events"
    for dt in ("2026-01-01", "2026-01-02"):
        (top / f"dt={dt}").mkdir(parents=True)
        for name in ("a.parquet", "b.parquet", ".a.parquet.tmp-1", "_hidden.parquet",
                     "notes.txt"):
            (top / f"dt={dt}" / name).write_bytes(b"x" * len(name))
    (top / "dt=2026-01-01" / "nested").mkdir()
    (top / "dt=2026-01-01" / "nested" / "c.parquet").write_bytes(b"c")
    (top / "dt=bad").mkdir()
    (top / "dt=bad" / "d.parquet").write_bytes(b"d")
    (top / "stray.parquet").write_bytes(b"s")
    os.symlink(top / "dt=2026-01-02" / "a.parquet", top / "dt=2026-01-01" / "link.parquet")
    os.symlink(top / "missing", top / "dt=2026-01-01" / "broken.parquet")
    os.utime(top / "dt=2026-01-02" / "b.parquet", ns=(0, 1_795_998_318_420_518_867))
    return top


def test_the_os_listing_is_what_pyarrow_listed(tree: Path) -> None:
    listed = lake_fs._list_local(str(tree), ".parquet", lambda dt: True)

    assert listed == pyarrow_listing(tree)
    assert [f.modified for f in listed] == [f.modified for f in pyarrow_listing(tree)]
    assert [Path(f.path).name for f in listed] == ["a.parquet", "b.parquet", "link.parquet",
                                                   "a.parquet", "b.parquet"]


def test_partitions_are_filtered_by_dt_and_a_missing_folder_lists_empty(tree: Path) -> None:
    listed = lake_fs._list_local(str(tree), ".parquet", lambda dt: dt == "2026-01-02")

    assert {f.dt for f in listed} == {"2026-01-02"}
    assert lake_fs._list_local(str(tree / "none"), ".parquet", lambda dt: True) == []


def test_a_file_renamed_away_mid_listing_lists_again(tree: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from eventlake.config import Settings
    from eventlake.lake.store import Lake

    lake = Lake(Settings.from_env(table="events", lake_uri=str(tree.parent)))
    real = lake_fs._list_local
    calls = []

    def flaky(*args: object) -> list[LakeFile]:
        calls.append(1)
        if len(calls) == 1:
            raise FileNotFoundError("renamed between readdir and stat")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(lake_fs, "_list_local", flaky)

    assert len(lake.list_files()) == 5
    assert len(calls) == 2

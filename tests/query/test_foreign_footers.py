"""Files eventlake did not write: their footers are checked once, by the verify that names them
in the manifest, not by every view install. Counted as footer opens (a local lake) and as S3
GET requests (the moto server), never by time."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from lake_support import ColdOnly
from moto.s3.responses import S3Response

from eventlake.config import Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.disjoint import verify
from eventlake.lake.store import Lake, LakeFileError
from eventlake.query.views import Engine, connect

DAYS = [date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)]
LONE, SHARED = DAYS[0], DAYS[1]
"""LONE: a day whose only file is foreign; SHARED: a foreign file beside a stream file."""
NOW = datetime(2024, 5, 6, tzinfo=UTC)
FOREIGN = "part-0000.parquet"


def event(n: int, day: date) -> dict[str, Any]:
    return {"event_id": f"{day.isoformat()}-{n:03d}", "event_type": "click",
            "timestamp": datetime(day.year, day.month, day.day, tzinfo=UTC)
            + timedelta(minutes=n), "ingested_at": NOW - timedelta(days=1),
            "source": "shop", "subject": f"user/{n}", "event_payload": json.dumps({"n": n}),
            "content_hash": f"h-{n}"}


def fill(lake: Lake) -> None:
    """LONE: one foreign file; SHARED: a foreign file and a stream file; the third day: a lone
    stream file (never opened: its name says eventlake wrote it)."""
    for day, numbers in ((LONE, range(4)), (SHARED, range(4))):
        lake.write_partition(day.isoformat(), pa.Table.from_pylist(
            [event(n, day) for n in numbers], schema=EVENT_SCHEMA), FOREIGN.removesuffix(
                ".parquet"))
    for day, numbers in ((SHARED, range(4, 8)), (DAYS[2], range(4))):
        lake.write_partition(day.isoformat(), pa.Table.from_pylist(
            [event(n, day) for n in numbers], schema=EVENT_SCHEMA), "stream-000001-000002-d01")


def foreign_path(lake: Lake, day: date) -> str:
    return f"{lake.root}/events/dt={day.isoformat()}/{FOREIGN}"


def count_all(lake: Lake, engine: Engine) -> int:
    con = connect(ColdOnly(lake, NOW), hot=False, now=NOW, engine=engine)
    return int(con.execute("SELECT count(*) FROM events").fetchall()[0][0])


def replace_with_bad_file(path: str, fs: pafs.FileSystem | None = None) -> None:
    """Another tool rewrites `path`: its events, lacking the `source` column (another size)."""
    day = date.fromisoformat(path.split("dt=")[1][:10])
    table = pa.Table.from_pylist([event(n, day) for n in range(4)],
                                 schema=EVENT_SCHEMA).drop_columns(["source"])
    if fs is None:
        pq.write_table(table, path)
    else:
        with fs.open_output_stream(path.removeprefix("s3://")) as sink:
            pq.write_table(table, sink)


# -- a local lake: footer opens ------------------------------------------------------------

class _CountingOpens(pafs.FileSystemHandler):
    """The local filesystem, counting `open_input_file` (what reads a footer) by path."""

    def __init__(self, opens: Counter[str]) -> None:
        self.inner = pafs.LocalFileSystem()
        self.opens = opens

    def open_input_file(self, path: str) -> Any:
        self.opens[path] += 1
        return self.inner.open_input_file(path)

    def open_input_stream(self, path: str) -> Any:
        self.opens[path] += 1
        return self.inner.open_input_stream(path)

    def get_type_name(self) -> str:
        return "counting-local"

    def get_file_info(self, paths: list[str]) -> Any:
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> Any:
        return self.inner.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.inner.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.inner.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise NotImplementedError("not in a test")

    def delete_file(self, path: str) -> None:
        self.inner.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.inner.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.inner.copy_file(src, dest)

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        return self.inner.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        return self.inner.open_append_stream(path, metadata=metadata)

    def normalize_path(self, path: str) -> str:
        return str(self.inner.normalize_path(path))

    def equals(self, other: Any) -> bool:
        return other is self


@pytest.fixture
def opens() -> Counter[str]:
    return Counter()


@pytest.fixture
def lake(tmp_path: Path, opens: Counter[str]) -> Lake:
    lake = Lake(Settings(lake_uri=str(tmp_path / "lake")))
    lake._fs = pafs.PyFileSystem(_CountingOpens(opens))
    fill(lake)
    return lake


def opened_by_connect(lake: Lake, opens: Counter[str]) -> dict[str, int]:
    """Footer opens by eventlake while a connection is made (DuckDB's own reader, which
    does not go through `lake.fs`, reads the files for the query)."""
    opens.clear()
    connect(ColdOnly(lake, NOW), hot=False, now=NOW, engine="duckdb")
    return {Path(p).parent.name: n for p, n in opens.items()}


def test_unverified_foreign_files_are_opened_by_every_connection(
        lake: Lake, opens: Counter[str]) -> None:
    # given a lake with a foreign file on a lone day and one beside a stream file, unverified
    for _ in range(2):
        # when a connection is made, twice: then both foreign footers are opened, each time
        assert opened_by_connect(lake, opens) == {"dt=2024-05-01": 1, "dt=2024-05-02": 1}


def test_on_local_disk_verified_foreign_files_are_still_opened_by_each_connection(
        lake: Lake, opens: Counter[str]) -> None:
    # (a local modification time can be set back: a file replaced keeping name, size and time
    # must still be refused by name; on S3 they are not fetched again, tested below)
    # given the days verified (the sweep and compaction do this): each foreign file read once
    opens.clear()
    report = verify(lake, [d.isoformat() for d in DAYS], now=NOW)
    assert report.accepted == {LONE.isoformat(): [FOREIGN],
                               SHARED.isoformat(): [FOREIGN, "stream-000001-000002-d01.parquet"]}
    assert opens[foreign_path(lake, LONE)] == opens[foreign_path(lake, SHARED)] == 1

    # when connections are made: then each foreign footer is opened, each time
    for _ in range(3):
        assert opened_by_connect(lake, opens) == {"dt=2024-05-01": 1, "dt=2024-05-02": 1}
    assert count_all(lake, "duckdb") == count_all(lake, "arrow") == 16


@pytest.mark.parametrize("day", [LONE, SHARED])
def test_a_verified_foreign_file_replaced_by_a_bad_one_is_checked_again_and_refused(
        lake: Lake, opens: Counter[str], day: date) -> None:
    # given verified days, then another tool rewrites a verified foreign file without a column
    verify(lake, [d.isoformat() for d in DAYS], now=NOW)
    path = foreign_path(lake, day)
    replace_with_bad_file(path)

    # when a connection is made: then that file (another size: another identity) is opened
    # and refused by name, with the column it lacks
    opens.clear()
    with pytest.raises(LakeFileError, match="source") as caught:
        connect(ColdOnly(lake, NOW), hot=False, now=NOW, engine="duckdb")
    assert f"`{path}`" in str(caught.value)
    assert opens[path] == 1

    # and the next verify refuses it by name, so the manifest never names it
    report = verify(lake, [day.isoformat()], now=NOW)
    assert "source" in report.refused[day.isoformat()][FOREIGN]
    assert not report.accepted


def test_a_verified_foreign_file_replaced_keeping_its_size_but_not_its_time_is_checked_again(
        lake: Lake, opens: Counter[str]) -> None:
    verify(lake, [d.isoformat() for d in DAYS], now=NOW)
    path = foreign_path(lake, LONE)
    stat = os.stat(path)
    os.utime(path, (stat.st_atime, stat.st_mtime + 60))  # same bytes, a later time

    assert opened_by_connect(lake, opens)["dt=2024-05-01"] == 1


# -- an S3 lake (moto's server): GET requests -----------------------------------------------

@pytest.fixture
def gets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """GetObject requests the moto server answers, by key (the server runs in this process)."""
    counted: Counter[str] = Counter()
    lock = threading.Lock()
    original = S3Response.get_object

    def get_object(self: S3Response) -> Any:
        with lock:
            counted[self.parse_key_name()] += 1
        return original(self)

    monkeypatch.setattr(S3Response, "get_object", get_object)
    yield counted


def _event_gets(gets: Counter[str]) -> dict[str, int]:
    """GETs of event files (lake state reads aside), by partition."""
    found: Counter[str] = Counter()
    for key, n in gets.items():
        if "/events/" in key:
            found[key.split("/events/")[1].split("/")[0]] += n
    return dict(found)


def test_on_s3_verified_foreign_files_cost_no_get_per_query(
        s3_lake: Lake, gets: Counter[str]) -> None:
    fill(s3_lake)

    # before any verify: each connection GETs both foreign files' footers
    for _ in range(2):
        gets.clear()
        connect(ColdOnly(s3_lake, NOW), hot=False, now=NOW, engine="arrow")
        before = _event_gets(gets)
        assert set(before) == {"dt=2024-05-01", "dt=2024-05-02"} and all(before.values())

    verify(s3_lake, [d.isoformat() for d in DAYS], now=NOW)

    # after it: none, however many connections
    for _ in range(2):
        gets.clear()
        connect(ColdOnly(s3_lake, NOW), hot=False, now=NOW, engine="arrow")
        assert _event_gets(gets) == {}
    assert count_all(s3_lake, "arrow") == 16

    # a verified foreign file replaced by a bad one is GET again and refused by name
    path = foreign_path(s3_lake, SHARED)
    replace_with_bad_file(path, s3_lake.fs)
    gets.clear()
    with pytest.raises(LakeFileError, match="source") as caught:
        connect(ColdOnly(s3_lake, NOW), hot=False, now=NOW, engine="arrow")
    assert f"`{path}`" in str(caught.value)
    assert set(_event_gets(gets)) == {"dt=2024-05-02"}


def test_duckdb_answers_from_the_verified_foreign_files_as_from_the_lake(
        lake: Lake) -> None:
    verify(lake, [d.isoformat() for d in DAYS], now=NOW)
    con = connect(ColdOnly(lake, NOW), hot=False, now=NOW, engine="duckdb")
    got = con.execute("SELECT dt, count(*), count(source) FROM events GROUP BY ALL ORDER BY ALL"
                      ).fetchall()
    assert got == [(d, n, n) for d, n in zip(DAYS, (4, 8, 4), strict=True)]


def _same_size_bad_file(path: str) -> None:
    """Another tool rewrites `path` without the `source` column, padded to its size, its
    modification time set back (`cp -p`, `rsync -t`): the same identity to the manifest."""
    stat = os.stat(path)
    day = date.fromisoformat(path.split("dt=")[1][:10])
    table = pa.Table.from_pylist([event(n, day) for n in range(4)],
                                 schema=EVENT_SCHEMA).drop_columns(["source"])
    scratch = path + ".scratch"
    for pad in range(4 * stat.st_size):
        chars, keys = divmod(pad, 4)
        pq.write_table(table.replace_schema_metadata({"pad": "x" * chars, "k" * (keys + 1): ""}),
                       scratch, compression="zstd", use_dictionary=False,
                       write_statistics=False)
        if os.path.getsize(scratch) == stat.st_size:
            break
    assert os.path.getsize(scratch) == stat.st_size, "no padding gives the original size"
    os.replace(scratch, path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_verified_foreign_file_replaced_keeping_size_and_time_is_not_read_as_nulls(
        lake: Lake) -> None:
    verify(lake, [d.isoformat() for d in DAYS], now=NOW)
    path = foreign_path(lake, LONE)
    _same_size_bad_file(path)
    assert verify(lake, [LONE.isoformat()], now=NOW).accepted == {}  # the same identity

    with pytest.raises(LakeFileError, match="source"):
        con = connect(ColdOnly(lake, NOW), hot=False, now=NOW, engine="duckdb")
        con.execute("SELECT count(source) FROM events").fetchall()

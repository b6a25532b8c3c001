"""`verify` checks each file's footer against the lake's whole schema as it reads its ids, since
readers trust the files a manifest names without opening them (`Lake.check_foreign` skips them):
a file another tool wrote is named only when its columns are the lake's."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventlake.config import Settings
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.compactrecord import file_identity
from eventlake.lake.disjoint import (
    IdCache,
    manifest_key,
    read_manifest,
    verified_files,
    verify,
)
from eventlake.lake.store import Lake

DAY = date(2024, 3, 10)
DT = DAY.isoformat()
NOW = datetime(2024, 3, 12, tzinfo=UTC)
STREAM = "stream-000100-000199-d01.parquet"


def events(numbers: range) -> pa.Table:
    return pa.Table.from_pylist([
        {"event_id": f"e-{n:04d}", "event_type": "order.paid",
         "timestamp": datetime(2024, 3, 10, tzinfo=UTC) + timedelta(seconds=n),
         "ingested_at": datetime(2024, 3, 10, 8, tzinfo=UTC), "source": "shop",
         "subject": f"order/{n}", "event_payload": json.dumps({"n": n}),
         "content_hash": f"hash-{n}"} for n in numbers], schema=EVENT_SCHEMA)


def plant(lake: Lake, table: pa.Table, name: str = "part-0000.parquet") -> str:
    """`table` written by another tool (pyarrow as it is) into partition DAY."""
    folder = Path(lake.root) / "events" / f"dt={DT}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / name)
    return str(folder / name)


def with_stream_file(lake: Lake) -> None:
    lake.write_partition(DT, events(range(100, 105)), STREAM.removesuffix(".parquet"))


def trusted(lake: Lake) -> list[str]:
    return sorted(Path(p).name for p in verified_files(lake, lake.list_files()))


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


@pytest.fixture
def reads(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Files `verify` reads (by base name)."""
    counted: Counter[str] = Counter()
    original = lake.read_file

    def read_file(path: str, columns: Any = None, **options: Any) -> pa.Table:
        counted[Path(path).name] += 1
        return original(path, columns, **options)

    monkeypatch.setattr(lake, "read_file", read_file)
    return counted


BAD = {
    "a column missing": lambda t: t.drop_columns(["source"]),
    "a column of another type": lambda t: t.set_column(
        t.schema.get_field_index("subject"), "subject", pa.array(range(t.num_rows))),
    "timestamps without a zone": lambda t: t.set_column(
        t.schema.get_field_index("ingested_at"), "ingested_at",
        t["ingested_at"].cast(pa.timestamp("us"))),
}


@pytest.mark.parametrize("shared", [False, True], ids=["lone", "beside-a-stream-file"])
@pytest.mark.parametrize("bad", list(BAD))
def test_a_foreign_file_not_of_the_lake_schema_is_refused_by_name(
        lake: Lake, bad: str, shared: bool) -> None:
    # given a file another tool wrote, its event_ids unique but a column not the lake's
    plant(lake, BAD[bad](events(range(5))))
    if shared:
        with_stream_file(lake)

    report = verify(lake, [DT], now=NOW)

    # then it is refused, naming the file's problem, and never named by the manifest
    reason = report.refused[DT]["part-0000.parquet"]
    assert reason.startswith("unreadable:") and "schema is not the lake's" in reason
    assert trusted(lake) == ([STREAM] if shared else [])
    assert report.accepted == ({DT: [STREAM]} if shared else {})


def test_a_refused_foreign_file_is_not_read_again_while_it_stays(
        lake: Lake, reads: Counter[str]) -> None:
    plant(lake, events(range(5)).drop_columns(["content_hash"]))
    with_stream_file(lake)
    verify(lake, [DT], now=NOW)
    assert reads["part-0000.parquet"] == 1

    assert verify(lake, [DT], now=NOW).refused == {}
    assert reads["part-0000.parquet"] == 1


def test_a_foreign_file_of_castable_types_is_accepted(lake: Lake) -> None:
    # given the lake's columns in another order, as large strings, dictionaries and ns times
    table = events(range(5))
    table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp",
                             table["timestamp"].cast(pa.timestamp("ns", "Europe/Paris")))
    table = table.set_column(table.schema.get_field_index("event_payload"), "event_payload",
                             table["event_payload"].cast(pa.large_string()))
    table = table.set_column(table.schema.get_field_index("event_type"), "event_type",
                             table["event_type"].dictionary_encode())
    plant(lake, table.select(list(reversed(table.column_names))))

    assert verify(lake, [DT], now=NOW).accepted == {DT: ["part-0000.parquet"]}
    assert trusted(lake) == ["part-0000.parquet"]


def test_ids_another_caller_read_for_a_few_columns_are_not_taken_for_a_foreign_file(
        lake: Lake, reads: Counter[str]) -> None:
    # given ids compaction read already (event_id only: the footer checked for that column)
    bad = plant(lake, events(range(5)).drop_columns(["source"]))
    with_stream_file(lake)
    cache = IdCache()
    for f in lake.list_files():
        cache.put(f, lake.read_file(f.path, ["event_id"])["event_id"].combine_chunks())
    reads.clear()

    report = verify(lake, [DT], now=NOW, ids=cache)

    # then verify reads the foreign file again, checks its footer whole and refuses it; the
    # stream file's ids are taken as they are (eventlake wrote it: the lake's schema)
    assert dict(reads) == {Path(bad).name: 1}
    assert "source" in report.refused[DT]["part-0000.parquet"]
    assert report.accepted == {DT: [STREAM]}


def rewrite_as_an_older_release(lake: Lake) -> None:
    """The manifest as a release whose verify read only event_id wrote it (no marker)."""
    current = lake.read_state(manifest_key(DT))
    assert current is not None
    data = json.loads(current.data)
    assert data.pop("schema_checked") is True
    lake.swap_state(manifest_key(DT), json.dumps(data).encode(), expected=current.version)


@pytest.mark.parametrize("good", [True, False])
def test_foreign_files_an_older_release_verified_are_examined_again(
        lake: Lake, reads: Counter[str], good: bool) -> None:
    # given a foreign file and a stream file an older release's verify named
    path = plant(lake, events(range(5)))
    with_stream_file(lake)
    verify(lake, [DT], now=NOW)
    if not good:  # what an older verify accepted: it read the event_id column only
        pq.write_table(events(range(5)).drop_columns(["source"]), path)
        verify(lake, [DT], now=NOW)  # (this release refuses it)
        current = lake.read_state(manifest_key(DT))
        assert current is not None
        data = json.loads(current.data)
        data["files"] += data.pop("refused")
        lake.swap_state(manifest_key(DT), json.dumps(data).encode(), expected=current.version)
    rewrite_as_an_older_release(lake)

    # then readers trust only the stream file (they check the other's footer and de-duplicate)
    assert read_manifest(lake, DT).digest is None  # it names a file no longer trusted
    assert trusted(lake) == [STREAM]

    # and verify reads the foreign file again, footer checked, the stream file's ids too
    reads.clear()
    report = verify(lake, [DT], now=NOW)
    assert reads["part-0000.parquet"] == 1
    if good:
        assert report.accepted == {DT: ["part-0000.parquet"]}
        assert trusted(lake) == ["part-0000.parquet", STREAM]
    else:
        assert "source" in report.refused[DT]["part-0000.parquet"]
        assert trusted(lake) == [STREAM]
    assert read_manifest(lake, DT).digest is not None


def test_an_older_manifest_of_eventlake_files_only_is_trusted_as_it_is(
        lake: Lake, reads: Counter[str]) -> None:
    lake.write_partition(DT, events(range(5)), "stream-000000-000099-d00")
    with_stream_file(lake)
    verify(lake, [DT], now=NOW)
    rewrite_as_an_older_release(lake)
    reads.clear()

    assert len(trusted(lake)) == 2 and read_manifest(lake, DT).digest is not None
    assert verify(lake, [DT], now=NOW).to_dict()["accepted"] == {}
    assert not reads


def test_an_older_release_winning_the_swap_race_cannot_get_a_foreign_file_trusted(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # review29: given a verified stream file, then a foreign file lacking a column planted
    with_stream_file(lake)
    lake.write_partition(DT, events(range(200, 203)), "stream-000200-000299-d01")
    verify(lake, [DT], now=NOW)
    plant(lake, events(range(5)).drop_columns(["source"]))
    original = lake.swap_state
    raced: list[str] = []

    def swap_state(key: str, data: bytes, *, expected: str | None) -> Any:
        if not raced:  # an older release's verify (event_id only, no marker) swaps first
            raced.append(key)
            current = lake.read_state(key)
            assert current is not None
            old = json.loads(current.data)
            old.pop("schema_checked")
            old["files"] += [{"name": "part-0000.parquet", "size": f.size, "modified": None,
                              "identity": file_identity(f)}
                             for f in lake.list_files() if f.path.endswith("part-0000.parquet")]
            original(key, json.dumps(old).encode(), expected=current.version)
        return original(key, data, expected=expected)

    monkeypatch.setattr(lake, "swap_state", swap_state)

    # when this release's verify loses its swap to it and decides again
    report = verify(lake, [DT], now=NOW)

    # then the foreign file is refused by name and no reader trusts it
    assert raced and "source" in report.refused[DT]["part-0000.parquet"]
    assert "part-0000.parquet" not in trusted(lake)
    assert read_manifest(lake, DT).digest is not None

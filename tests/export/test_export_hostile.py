"""Export under attack (review of issue 11): an overwrite that fails at the last step, a
destination that is a symlink or the lake itself, payload paths that run through lists."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from export_support import SALT, SELECTION, START, expected, row, shop_lake

from eventlake import Settings
from eventlake.api import EventLake
from eventlake.errors import ConfigError
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.export import ExportError


@pytest.fixture
def shop(mocked_aws: None, tmp_path: Path) -> EventLake:
    return shop_lake(tmp_path)


def test_a_failed_rename_of_a_file_over_a_folder_keeps_the_folder(
        shop: EventLake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out" / "parts"
    shop.export(SELECTION, out, partition_by="dt")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    replace = os.replace

    def fail_into_place(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst) == out and ".tmp-" in Path(src).name:
            raise OSError("disk full")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_into_place)
    with pytest.raises(OSError, match="disk full"):
        shop.export(SELECTION, out, overwrite=True)  # one file over the folder
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["parts"]


@pytest.mark.parametrize("partition_by", [None, "dt"])
def test_overwrite_of_a_symlink_to_a_folder_replaces_the_link_not_the_folder(
        shop: EventLake, tmp_path: Path, partition_by: str | None) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep me")
    out = tmp_path / "link"
    out.symlink_to(elsewhere, target_is_directory=True)

    shop.export(SELECTION, out, partition_by=partition_by, overwrite=True)

    assert not out.is_symlink()
    assert (elsewhere / "keep.txt").read_text() == "keep me"
    assert pq.read_table(out).num_rows == len(expected(shop))


@pytest.mark.parametrize("where", ["lake", "lake/events", "lake/events/dt=2024-05-01/x.parquet",
                                   "."])
def test_an_export_onto_or_into_the_lakes_events_is_refused(
        shop: EventLake, tmp_path: Path, where: str) -> None:
    before = sorted(p for p in (tmp_path / "lake").rglob("*"))
    out = tmp_path / where
    with pytest.raises(ConfigError, match="lake"):
        shop.export(SELECTION, out, partition_by="dt" if where != "." else None,
                    overwrite=True)
    assert sorted(p for p in (tmp_path / "lake").rglob("*")) == before
    assert len(expected(shop)) == 6


def test_an_export_beside_the_events_inside_the_lake_root_is_allowed(
        shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "lake" / "exports" / "day.parquet"
    shop.export(SELECTION, out)
    assert pq.read_table(out).num_rows == len(expected(shop))


def list_lake(tmp_path: Path, payloads: list[object]) -> EventLake:
    """A lake holding only events e-020... of `payloads`."""
    lake = EventLake(Settings.from_env(table="events-test", lake_uri=str(tmp_path / "lake")))
    lake.cold.create_marker(table=lake.settings.table)
    rows = [row(n, "order.placed", {}) for n, _ in enumerate(payloads, 20)]
    for r, p in zip(rows, payloads, strict=True):
        r["event_payload"] = json.dumps(p)
        r["timestamp"] = START
    lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "sweep-b")
    return lake


@pytest.mark.parametrize("action", ["redact", "hash"])
@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "duckdb"])
def test_a_path_through_a_list_fails_naming_the_event_rather_than_ship_the_field(
        mocked_aws: None, tmp_path: Path, action: str, fmt: str) -> None:
    lake = list_lake(tmp_path, [{"items": [{"email": "a@x.com"}, {"email": "b@x.com"}]}])
    out = tmp_path / f"x.{fmt}"
    rules = {"redact": ["items.email"]} if action == "redact" else {"hash_": ["items.email"]}
    with pytest.raises(ExportError, match=r"e-020.*`items.email`.*list at `items`"):
        lake.export(SELECTION, out, format=fmt, salt=SALT, **rules)  # type: ignore[arg-type]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["lake"]


def test_a_payload_that_is_a_list_fails_a_redaction_naming_the_event(
        mocked_aws: None, tmp_path: Path) -> None:
    lake = list_lake(tmp_path, [[{"email": "a@x.com"}]])
    with pytest.raises(ExportError, match=r"e-020.*`email`.*list at the payload's root"):
        lake.export(SELECTION, tmp_path / "x.parquet", redact=["email"])


def test_a_list_beside_the_path_is_no_obstacle(mocked_aws: None, tmp_path: Path) -> None:
    lake = list_lake(tmp_path, [{"items": [1, 2], "customer": {"email": "a@x.com"}}])
    out = tmp_path / "x.parquet"
    lake.export(SELECTION, out, redact=["customer.email"])
    got = {r["event_id"]: json.loads(r["event_payload"]) for r in pq.read_table(out).to_pylist()}
    assert got["e-020"] == {"items": [1, 2], "customer": {}}


@pytest.mark.parametrize(("out", "refused"), [
    ("s3://bucket/lake/events/dt=2024-05-01/x.parquet", True),
    ("s3://bucket/lake/events", True),
    ("s3://bucket/lake", True),
    ("s3://bucket/lake-2/x.parquet", False),  # a neighbour sharing the prefix `lake`
    ("s3://bucket/lake/exports/x.parquet", False),
    ("s3://other/lake/events/x.parquet", False),
])
def test_an_s3_export_onto_the_s3_lakes_events_is_refused(
        mocked_aws: None, out: str, refused: bool) -> None:
    lake = EventLake(Settings.from_env(table="events-test", lake_uri="s3://bucket/lake"))
    with pytest.raises(ConfigError) as raised:
        lake.export(SELECTION, out, partition_by="dt", overwrite=True)
    # refused before anything is read; the others fail later, on the missing bucket
    assert ("is the lake's" in str(raised.value)) == refused


@pytest.mark.parametrize("partition_by", [None, "dt"])
def test_an_s3_overwrite_leaves_the_keys_of_neighbours_sharing_its_prefix(
        shop: EventLake, partition_by: str | None) -> None:
    s3 = shop.clients.s3
    s3.create_bucket(Bucket="exports")
    neighbours = ["out-2", "out-2/x.parquet", "out.parquet", "outx/_SUCCESS", "ou"]
    for key in neighbours:
        s3.put_object(Bucket="exports", Key=key, Body=b"neighbour")
    shop.export(SELECTION, "s3://exports/out", partition_by="dt")

    shop.export(SELECTION, "s3://exports/out", partition_by=partition_by, overwrite=True)

    left = {o["Key"] for o in s3.list_objects_v2(Bucket="exports")["Contents"]}
    assert set(neighbours) <= left
    assert all(s3.get_object(Bucket="exports", Key=k)["Body"].read() == b"neighbour"
               for k in neighbours)
    assert ("out" in left) == (partition_by is None)


# A payload written as a DynamoDB map by another producer keeps its numbers' digits in the lake
# (codec: DynamoDB numbers carry 38); one a foreign writer stored as text may carry whitespace
# and line breaks between its tokens, or a NaN only DuckDB's lenient parser takes.
EXACT_PAYLOADS = ['{"amount":1.2345678901234567890123,"big":123456789012345678901234567890,'
                  '"price":100.1,"tiny":1E-130}',
                  '{ "a" : [1.10,\r\n 2] ,\n"b": "x\\ny"}',
                  '{"n":NaN}', "not json"]


def test_jsonl_holds_each_payload_with_the_numbers_the_lake_holds(mocked_aws: None,
                                                                  tmp_path: Path) -> None:
    # given events whose payload text DuckDB's JSON writer would not give back as stored
    lake = EventLake(Settings.from_env(table="events-test", lake_uri=str(tmp_path / "lake")))
    lake.cold.create_marker(table=lake.settings.table)
    rows = [{**row(n, "t", {}), "event_payload": p} for n, p in enumerate(EXACT_PAYLOADS, 1)]
    lake.cold.write(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), "sweep-a")
    out = tmp_path / "day.jsonl"
    # when exported as JSON lines
    report = lake.export(SELECTION, out, format="jsonl")
    # then each line is one event; a JSON payload is the object with the lake's exact numbers
    # (parsed as text on both sides), anything else a string
    lines = out.read_text("utf-8").splitlines()
    assert report.rows == len(lines) == len(EXACT_PAYLOADS)
    got = [json.loads(line, parse_float=str, parse_int=str) for line in lines]
    assert [g["event_payload"] for g in got] == [
        {"amount": "1.2345678901234567890123", "big": "123456789012345678901234567890",
         "price": "100.1", "tiny": "1E-130"},
        {"a": ["1.10", "2"], "b": "x\ny"}, '{"n":NaN}', "not json"]
    assert [g["event_id"] for g in got] == [r["event_id"] for r in rows]
    assert got[0]["timestamp"] == rows[0]["timestamp"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- a run killed outright (SIGKILL) cannot remove its temporary: the next one does ----------

def dead_pid() -> int:
    """The id of a process that has ended (a child run and reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def killed_leftover(shop: EventLake, dest: Path, kind: str, pid: int, host: str | None = None
                    ) -> Path:
    """What an export to `dest` killed mid-write leaves: its `.tmp-` (or, during an overwrite,
    the `.old-` destination moved aside), named for `host` (this one) and `pid`."""
    from eventlake.export import run

    leftover = dest.parent / f".{dest.name}.{kind}-{host or run._HOST}-{pid}-0123456789ab"
    shop.export(SELECTION, leftover, partition_by="dt")  # a whole copy of the events
    return leftover


def rows_under(folder: Path) -> int:
    """What a plain reader of `folder/**/*.parquet` counts (hidden folders included)."""
    import duckdb

    glob = str(folder / "**" / "*.parquet")
    return int(duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall()[0][0])


def test_a_killed_exports_temporary_is_removed_by_the_next_export_to_it(
        shop: EventLake, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "bi" / "events"
    out.parent.mkdir()
    leftover = killed_leftover(shop, out, "tmp", dead_pid())
    assert rows_under(tmp_path / "bi") == len(expected(shop))  # a BI tool counts the copy

    with caplog.at_level("WARNING", logger="eventlake.export.run"):
        shop.export(SELECTION, out, partition_by="dt")

    assert not leftover.exists()
    assert rows_under(tmp_path / "bi") == len(expected(shop))  # the export's rows, once
    assert f"removed `{leftover}`, left by an export killed on this host" in caplog.text


def test_a_running_exports_or_another_hosts_temporary_is_left_alone(
        shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "bi" / "events"
    out.parent.mkdir()
    running = killed_leftover(shop, out, "tmp", os.getppid())  # this test's parent: alive
    elsewhere = killed_leftover(shop, out, "tmp", dead_pid(), host="otherhost")

    shop.export(SELECTION, out, partition_by="dt")

    assert running.exists() and elsewhere.exists()


def test_a_destination_a_killed_overwrite_moved_aside_is_put_back_not_deleted(
        shop: EventLake, tmp_path: Path) -> None:
    out = tmp_path / "bi" / "events"
    out.parent.mkdir()
    pid = dead_pid()  # killed between moving the old export aside and renaming the new one in
    aside = killed_leftover(shop, out, "old", pid)
    half = killed_leftover(shop, out, "tmp", pid)

    with pytest.raises(ConfigError, match="exists: choose another --out, or overwrite it"):
        shop.export(SELECTION, out, partition_by="dt")

    assert out.is_dir() and not aside.exists() and not half.exists()
    assert pq.read_table(out).num_rows == len(expected(shop))  # the previous export, whole
    shop.export(SELECTION, out, partition_by="dt", overwrite=True)
    assert rows_under(tmp_path / "bi") == len(expected(shop))


def test_a_users_file_whose_name_starts_like_a_temporary_is_not_removed(
        shop: EventLake, tmp_path: Path) -> None:
    """Review24: `.a.tmp-<host>-<pid>-` is also the start of other names (the temporary of a
    destination `a.tmp-<host>-<pid>-x`, a user's file): only an exact temporary name is one."""
    from eventlake.export import run

    out = tmp_path / "bi" / "events"
    out.parent.mkdir()
    pid = dead_pid()
    notes = out.parent / f".events.tmp-{run._HOST}-{pid}-notes.txt"
    notes.write_text("mine")
    other = (out.parent / f".events.tmp-{run._HOST}-{pid}-x.tmp-{run._HOST}-{os.getpid()}"
                           "-0123456789ab")
    other.write_text("a live export's, to `.events.tmp-...-x`")

    shop.export(SELECTION, out, partition_by="dt")

    assert notes.read_text() == "mine" and other.exists()


def test_a_temporary_of_another_pid_namespace_with_the_same_hostname_is_left_alone(
        shop: EventLake, tmp_path: Path) -> None:
    """Review24: containers with one hostname (host networking, `--hostname`) share the folder
    but not their pids: a pid not running here may be a live export there."""
    import re
    import socket

    from eventlake.export import run

    out = tmp_path / "bi" / "events"
    out.parent.mkdir()
    bare = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40] or "host"
    assert bare != run._HOST  # the pid namespace is part of the name
    there = killed_leftover(shop, out, "tmp", dead_pid(), host=bare)

    shop.export(SELECTION, out, partition_by="dt")

    assert there.exists()


def test_hosts_whose_names_share_a_long_prefix_are_told_apart() -> None:
    from eventlake.export import run

    first = run._host_token("eventlake-batch-worker-production-cluster-a-01", "pid:[1]")
    second = run._host_token("eventlake-batch-worker-production-cluster-a-02", "pid:[1]")
    assert first != second and first.isalnum() and second.isalnum()
    assert run._host_token("web-1", "pid:[1]") != run._host_token("web1", "pid:[1]")

"""review34: the recursive S3 listing of every partition (`Lake.list_files()` without bounds)
against the bounded one, on odd keys: nested folders, temp and foreign files, folder marker
objects, spaces and unicode, a lake at the bucket root, and past one 1,000-key page."""

from __future__ import annotations

from datetime import date

import boto3
import pytest

from eventlake import EventLake, Settings

pytestmark = pytest.mark.integration

ODD = [
    "events/dt=2026-01-01/a.parquet",
    "events/dt=2026-01-01/sub/x.parquet",          # a folder below a partition: not its file
    "events/deeper/dt=2026-01-02/y.parquet",       # a dt= folder nested deeper: not a partition
    "events/dt=2026-01-03/with space.parquet",
    "events/dt=2026-01-03/unicodé ✓.parquet",
    "events/dt=2026-01-04/",                       # an empty folder's marker object
    "events/dt=2026-01-01/.a.parquet.tmp-1",
    "events/dt=2026-01-01/.hidden.parquet",
    "events/dt=2026-01-01/_temp.parquet",
    "events/dt=2026-01-01/notes.txt",
    "events/dt=2026-01-05",                        # an object named like a partition
    "events/dt=2026-1-6/z.parquet",                # not a date
    "events/dt=2026-02-30/z.parquet",              # not a day
    "events/a.parquet",                            # beside the partitions
    "other/dt=2026-01-01/o.parquet",               # outside events/
    "eventsx/dt=2026-01-01/o.parquet",             # a sibling sharing the prefix
    "events/dt=2026-01-07/dt=2026-01-08/w.parquet",  # a partition folder inside a partition
]
LISTED = {("2026-01-01", "a.parquet"), ("2026-01-03", "with space.parquet"),
          ("2026-01-03", "unicodé ✓.parquet")}


def plant(bucket: str, prefix: str, keys: list[str]) -> None:
    s3 = boto3.client("s3")
    for key in keys:
        s3.put_object(Bucket=bucket, Key=prefix + key, Body=b"x")


def listed(lake: EventLake, **bounds: object) -> set[tuple[str, str]]:
    return {(f.dt, f.path.rpartition("/")[2]) for f in lake.cold.list_files(**bounds)}


@pytest.mark.parametrize("prefix", ["", "lake/", "deep/er/lake/"])
def test_odd_keys_list_the_same_unbounded_and_bounded(bucket: str, prefix: str) -> None:
    root = f"s3://{bucket}/{prefix}".rstrip("/")
    lake = EventLake(Settings.from_env(table="events-test", lake_uri=root))
    plant(bucket, prefix, ODD)
    assert listed(lake) == LISTED
    assert listed(lake, start=date(2026, 1, 1), end=date(2026, 12, 31)) == LISTED
    assert listed(lake, dts=["2026-01-03"]) == {x for x in LISTED if x[0] == "2026-01-03"}
    for f in lake.cold.list_files():
        assert f.path.startswith(root + "/events/dt=") and f.size == 1


def test_every_partition_is_listed_past_one_page_of_keys(bucket: str) -> None:
    # given 1,052 objects over three partitions, ordered so that a partition straddles
    # ListObjectsV2's 1,000-key pages, and junk after them
    lake = EventLake(Settings.from_env(table="events-test", lake_uri=f"s3://{bucket}"))
    keys = [f"events/dt=2026-03-0{d}/f{i:04d}.parquet" for d, n in ((1, 500), (2, 450), (3, 100))
            for i in range(n)] + ["events/dt=2026-03-03/zz.tmp", "events/dt=2026-03-04/"]
    s3 = boto3.client("s3")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))
    # when every partition is listed at once, then bounded
    everything = lake.cold.list_files()
    # then no file is cut at a page's end or read twice
    assert len(everything) == 1_050 == len({f.path for f in everything})
    assert [f.dt for f in everything].count("2026-03-03") == 100  # across the page's end
    assert lake.cold.list_files(dts=["2026-03-03"]) == [
        f for f in everything if f.dt == "2026-03-03"]


def test_files_named_with_spaces_and_unicode_are_read_on_s3(bucket: str) -> None:
    # given lake files moved by hand to names with a space, unicode and a percent sign
    from tests.query.test_s3_requests import rows

    lake = EventLake(Settings.from_env(table="events-test", lake_uri=f"s3://{bucket}/lake"))
    lake.cold.create_marker(table="events-test")
    s3 = boto3.client("s3")
    for n, name in enumerate(("plain.parquet", "with space.parquet", "unicodé ✓.parquet",
                              "100%.parquet")):
        (written,) = lake.cold.write(rows(5 * n, 5, date(2024, 5, 1)), f"part-{n}")
        key = written.path.split("/", 3)[3]
        s3.copy_object(Bucket=bucket, Key=f"{key.rpartition('/')[0]}/{name}",
                       CopySource={"Bucket": bucket, "Key": key})
        s3.delete_object(Bucket=bucket, Key=key)
    # when queried (twice: the second through the kept fragments), then every file is read
    for _ in range(2):
        got = lake.sql("SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM events",
                       hot=False).to_pylist()
        assert got == [{"n": 20, "ids": 20}]
    assert sorted(f.path.rpartition("/")[2] for f in lake.cold.list_files()) == [
        "100%.parquet", "plain.parquet", "unicodé ✓.parquet", "with space.parquet"]

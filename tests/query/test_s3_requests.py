"""The S3 requests a query makes (counted on the moto server, whoever sends them: pyarrow's
S3 client does not go through botocore): one listing per call, each file's footer read once
per lake object while the listing shows the same object (query/fragments.py), and a file
that vanished or changed still never read from a stale footer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any
from urllib.parse import unquote

import duckdb
import pytest
from lake_support import day_rows

from eventlake import EventLake, Settings
from eventlake.local.stack import MotoServer
from eventlake.query import fragments, views

pytestmark = pytest.mark.integration

DAYS = [date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 3)]
COUNT = "SELECT dt, count(*) AS n, count(DISTINCT event_id) AS ids FROM events GROUP BY dt"


rows = day_rows


class Requests:
    """The S3 requests of one bucket the moto server answered: (method, key, Range)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.seen: list[tuple[str, str, str | None]] = []

    def take(self) -> list[tuple[str, str, str | None]]:
        taken, self.seen = self.seen, []
        return taken

    def summary(self) -> tuple[int, Counter[str]]:
        """(LIST requests, GETs per `.parquet` key) since the last call; nothing else of the
        bucket's events may have been asked (no HEAD of a listed file, no other verb)."""
        lists, gets = 0, Counter[str]()
        for method, key, _ in self.take():
            if method == "GET" and not key:
                lists += 1
            elif key.endswith(".parquet"):
                assert method == "GET", f"{method} {key}: a listed file is never asked for more"
                gets[key] += 1
        return lists, gets


@contextmanager
def recorded(server: MotoServer, bucket: str) -> Iterator[Requests]:
    inner = server._server.app
    requests = Requests(bucket)

    def record(environ: dict[str, Any], start_response: Any) -> Any:
        path = unquote(environ.get("PATH_INFO", ""))
        name, _, key = path.lstrip("/").partition("/")
        if name == bucket:
            requests.seen.append((environ["REQUEST_METHOD"], key, environ.get("HTTP_RANGE")))
        return inner(environ, start_response)

    server._server.app = record
    try:
        yield requests
    finally:
        server._server.app = inner


@pytest.fixture
def requests(moto_server: MotoServer, bucket: str) -> Iterator[Requests]:
    with recorded(moto_server, bucket) as seen:
        yield seen


@pytest.fixture
def el(bucket: str) -> EventLake:
    """Three days of two files each (not verified: read through the de-duplicating window)
    and one lone file, on the moto server's S3."""
    lake = EventLake(Settings.from_env(table="events-test", lake_uri=f"s3://{bucket}/lake"))
    lake.cold.create_marker(table="events-test")
    for day in DAYS[:2]:
        lake.cold.write(rows(0, 6, day), "sweep-a")
        lake.cold.write(rows(4, 6, day), "sweep-b")  # copies of 4 and 5
    lake.cold.write(rows(0, 5, DAYS[2]), "compacted-0")
    return lake


def counts(lake: EventLake) -> dict[str, tuple[int, int]]:
    got = lake.sql(COUNT, hot=False).to_pylist()
    return {r["dt"].isoformat(): (r["n"], r["ids"]) for r in got}


EXPECTED = {DAYS[0].isoformat(): (10, 10), DAYS[1].isoformat(): (10, 10),
            DAYS[2].isoformat(): (5, 5)}


def test_a_warm_call_over_unchanged_files_makes_one_listing_and_one_get_a_file(
        el: EventLake, requests: Requests) -> None:
    requests.take()
    assert counts(el) == EXPECTED
    lists, first = requests.summary()
    assert lists == 1  # one recursive listing of events/, no folder listing first
    assert len(first) == 5 and max(first.values()) <= 2  # a footer and the column chunks

    assert counts(el) == EXPECTED  # the kept connection: nothing changed
    lists, again = requests.summary()
    assert lists == 1
    assert again == Counter(dict.fromkeys(first, 1))  # column chunks only: no footer


def test_a_new_connection_after_a_new_file_reads_only_the_new_files_footer(
        el: EventLake, requests: Requests) -> None:
    assert counts(el) == EXPECTED
    el.cold.write(rows(8, 4, DAYS[0]), "sweep-c")  # 10 and 11 are new
    requests.take()

    assert counts(el) == EXPECTED | {DAYS[0].isoformat(): (12, 12)}
    _, gets = requests.summary()
    (new,) = [key for key in gets if "sweep-c" in key]
    assert gets[new] == 2  # its footer, then its column chunks
    assert all(n == 1 for key, n in gets.items() if key != new)

    con = views.connect(el, hot=False)  # a fresh connection of the same lake object
    try:
        assert con.sql("SELECT count(DISTINCT event_id) FROM events").fetchall() == [(27,)]
    finally:
        con.close()
    _, gets = requests.summary()
    assert set(gets.values()) == {1} and len(gets) == 6


def test_footers_are_kept_per_lake_object(el: EventLake, bucket: str,
                                          requests: Requests) -> None:
    assert counts(el) == EXPECTED
    other = EventLake(Settings.from_env(table="events-test", lake_uri=f"s3://{bucket}/lake"))
    requests.take()

    assert counts(other) == EXPECTED
    _, gets = requests.summary()
    assert set(gets.values()) == {2}  # another Lake reads every footer itself


def test_a_file_rewritten_under_its_name_is_read_with_its_new_footer(
        el: EventLake, requests: Requests) -> None:
    assert counts(el) == EXPECTED
    # Lake files are never rewritten in place; one that is (a hand-made copy, another size and
    # LastModified) must not be read through the footer of the bytes it replaced
    (path,) = [f.path for f in el.cold.list_files() if "compacted-0" in f.path]
    el.cold.write(rows(0, 9, DAYS[2]), "compacted-0")
    requests.take()

    assert counts(el) == EXPECTED | {DAYS[2].isoformat(): (9, 9)}
    _, gets = requests.summary()
    assert gets[path.split("/", 3)[3]] == 2  # its footer read again


def test_a_file_vanishing_under_a_kept_footer_fails_the_query_and_run_sql_lists_again(
        el: EventLake) -> None:
    con = views.connect(el, hot=False)
    try:
        assert con.sql("SELECT count(*) FROM events").fetchall() == [(25,)]  # footers kept
        gone = [f.path for f in el.cold.list_files(DAYS[0], DAYS[0])]
        el.cold.write(rows(0, 10, DAYS[0]), "compacted-1")  # compaction's swap
        el.cold.delete(gone)
        with pytest.raises(duckdb.Error) as failure:
            con.sql("SELECT max(event_payload) FROM events").fetchall()
        assert views.file_vanished_in_query(failure.value)  # its error names no file
    finally:
        con.close()
    # a fresh connection of the same lake object: the listing no longer has them
    got = views.run_sql(el, COUNT, hot=False).to_pylist()
    assert {r["dt"].isoformat(): (r["n"], r["ids"]) for r in got} == EXPECTED


def test_run_sql_lists_again_when_a_file_vanishes_after_its_listing(
        el: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    assert counts(el) == EXPECTED  # every footer kept
    real = views.take_snapshot
    swapped: list[bool] = []

    def then_compacted(lake: Any, **kwargs: Any) -> views.Snapshot:
        snapshot = real(lake, **kwargs)
        if not swapped:
            swapped.append(True)
            gone = [f.path for f in snapshot.files if f.dt == DAYS[1].isoformat()]
            el.cold.write(rows(0, 10, DAYS[1]), "compacted-1")
            el.cold.delete(gone)
        return snapshot

    monkeypatch.setattr(views, "take_snapshot", then_compacted)
    got = views.run_sql(el, "SELECT count(*) AS n, max(event_payload) AS p FROM events",
                        hot=False)
    assert swapped and got.to_pylist() == [{"n": 25, "p": '{"n": 9}'}]


def test_the_kept_fragments_follow_the_listing(el: EventLake) -> None:
    files = el.cold.list_files()
    first = fragments.fragments(el.cold, files)
    assert fragments.fragments(el.cold, files) == first  # the same objects, by path
    fewer = fragments.fragments(el.cold, files[1:])
    assert set(fewer) == {f.path for f in files[1:]}
    again = fragments.fragments(el.cold, files)  # a dropped path comes back as a new one
    assert again[files[0].path] is not first[files[0].path]
    assert all(again[f.path] is first[f.path] for f in files[1:])


def test_the_kept_fragments_are_capped(el: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fragments, "KEPT_FRAGMENTS_LIMIT", 2)
    files = el.cold.list_files()
    first = fragments.fragments(el.cold, files)
    again = fragments.fragments(el.cold, files)
    # the newest partitions' are kept (queries look at recent days): files are listed by dt
    assert [again[f.path] is first[f.path] for f in files] == [False, False, False, True, True]


def test_listing_every_partition_is_one_request_and_the_same_files_as_a_bounded_one(
        el: EventLake, bucket: str, requests: Requests) -> None:
    s3 = el.clients.s3
    for key in ("lake/events/dt=2024-05-01/nested/x.parquet", "lake/events/not-a-dt/y.parquet",
                "lake/events/dt=2024-05-02/.hidden.parquet", "lake/events/z.parquet",
                "lake/events/dt=2024-05-02/notes.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    requests.take()

    every = el.cold.list_files()
    assert requests.summary() == (1, Counter())
    bounded = el.cold.list_files(DAYS[0], DAYS[-1])
    assert [(f.path, f.dt, f.size) for f in every] == [(f.path, f.dt, f.size) for f in bounded]
    assert len(every) == 5


def test_listing_a_lake_whose_bucket_is_gone_still_says_so(moto_server: MotoServer,
                                                          server_env: str) -> None:
    from eventlake.errors import LakeNotFoundError

    lake = EventLake(Settings.from_env(table="events-test",
                                       lake_uri="s3://no-such-bucket-s3scan/lake"))
    with pytest.raises(LakeNotFoundError, match="no-such-bucket-s3scan"):
        lake.cold.list_files()

"""review34: the fragments kept per S3 lake (query/fragments.py) under many threads, with
files added and compacted away meanwhile, and the memory the kept footers hold."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from eventlake import EventLake
from tests.query.test_s3_requests import COUNT, DAYS, EXPECTED, counts, el, rows

pytestmark = pytest.mark.integration
__all__ = ["el"]  # the fixture, shared


def test_many_threads_share_the_kept_fragments_and_each_answers_a_whole_snapshot(
        el: EventLake) -> None:
    # given the lake's states as a writer moves it on: a new file on day 0, then day 1
    # compacted into one file (written, then its two files deleted)
    d0 = DAYS[0].isoformat()
    states = [EXPECTED, EXPECTED | {d0: (12, 12)}]
    stop = threading.Event()
    answers: list[dict[str, tuple[int, int]]] = []

    def reader() -> None:
        while not stop.is_set():
            answers.append(counts(el))  # EventLake.sql: a warm connection per thread

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(reader) for _ in range(5)]
        try:
            while len(answers) < 10:
                stop.wait(0.05)
            el.cold.write(rows(8, 4, DAYS[0]), "sweep-c")
            seen = len(answers)
            while len(answers) < seen + 10:
                stop.wait(0.05)
            gone = [f.path for f in el.cold.list_files(DAYS[1], DAYS[1])]
            el.cold.write(rows(0, 10, DAYS[1]), "compacted-1")
            el.cold.delete(gone)
            seen = len(answers)
            while len(answers) < seen + 10:
                stop.wait(0.05)
        finally:
            stop.set()
        for future in futures:
            future.result()  # no reader failed (a vanished file is listed again)
    # then every answer is one of the lake's states (compaction changes no count)
    assert answers and all(a in states for a in answers), [a for a in answers if a not in states]
    assert answers[-1] == states[-1]
    assert el.sql(COUNT, hot=False).num_rows == 3


MEASURE = r"""
import json, os, sys
from datetime import UTC, datetime, timedelta
import pyarrow as pa, pyarrow.dataset as ds, pyarrow.fs as pafs
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.store import _write_parquet
from eventlake.query.fragments import bounds
from eventlake.query.views import cold_schema

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

start = datetime(2024, 5, 1, tzinfo=UTC)
table = pa.Table.from_pylist([
    {"event_id": f"e{i:06d}", "event_type": "order", "source": "shop",
     "timestamp": start + timedelta(seconds=i), "ingested_at": start, "subject": None,
     "event_payload": json.dumps({"n": i}), "content_hash": f"h{i}"} for i in range(1000)],
    schema=EVENT_SCHEMA)
path = sys.argv[1]
with pa.OSFile(path, "wb") as sink:
    _write_parquet(table, sink)
size, fs, parquet = os.path.getsize(path), pafs.LocalFileSystem(), ds.ParquetFileFormat()
n = int(sys.argv[2])
ds.FileSystemDataset([parquet.make_fragment(path, filesystem=fs, file_size=size)],
                     cold_schema(), parquet, fs).to_table(columns=["event_type"])  # warm up
before = rss()
kept = [parquet.make_fragment(path, filesystem=fs, partition_expression=bounds("2024-05-01"),
                              file_size=size) for _ in range(n)]
ds.FileSystemDataset(kept, cold_schema(), parquet, fs).to_table(columns=["event_type"])
print((rss() - before) / n)
"""


def test_the_kept_footers_of_a_lake_fit_in_a_bounded_memory(tmp_path: Path) -> None:
    # given the memory one fragment holds once a scan read its footer, as the kept ones do
    # (measured in a fresh process: a worker's freed heap would hide it)
    import os
    import subprocess
    import sys

    import eventlake
    from eventlake.query.fragments import KEPT_FRAGMENTS_LIMIT

    root = str(Path(eventlake.__file__).parents[1])  # this checkout's eventlake
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path / "f.parquet"), "1000"],
                         capture_output=True, text=True, check=True, timeout=120, env=env)
    per_fragment = float(out.stdout.strip())
    assert per_fragment > 4 * 1024  # the measurement saw the footers (~24-35 KiB here)
    # then the most a lake keeps stays within a small part of a worker's or Lambda's memory
    assert KEPT_FRAGMENTS_LIMIT * per_fragment <= 128 * 2**20, (
        f"{KEPT_FRAGMENTS_LIMIT:,} kept fragments x {per_fragment / 1024:.0f} KiB = "
        f"{KEPT_FRAGMENTS_LIMIT * per_fragment / 2**20:,.0f} MiB")


def test_a_dropped_lake_drops_its_kept_fragments(bucket: str) -> None:
    import gc
    import weakref

    from eventlake import Settings
    from eventlake.query import fragments

    # given a lake queried once (a warm connection, and its fragments kept)
    lake = EventLake(Settings.from_env(table="events-test", lake_uri=f"s3://{bucket}/lake"))
    lake.cold.create_marker(table="events-test")
    lake.cold.write(rows(0, 5, DAYS[0]), "compacted-0")
    assert lake.sql("SELECT count(*) AS n FROM events", hot=False).to_pylist() == [{"n": 5}]
    cold = weakref.ref(lake.cold)
    assert cold() in fragments._kept
    # when it is dropped, then nothing holds its Lake (not its fragments, nor the warm
    # connection's datasets), and the kept fragments go with it
    del lake
    gc.collect()
    assert cold() is None


def _fragments_in_child(lake: EventLake, send: Any) -> None:
    from eventlake.query import fragments

    made = fragments.fragments(lake.cold, lake.cold.list_files())
    send.send(sorted(id(f) for f in made.values()))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork only")
def test_a_forked_child_makes_its_own_fragments_though_a_thread_held_the_lock(
        el: EventLake) -> None:
    # given the lake's fragments kept, and another thread inside `fragments` (holding the
    # lake's lock) at the moment the process forks
    import multiprocessing

    from eventlake.query import fragments

    files = el.cold.list_files()
    parent = sorted(id(f) for f in fragments.fragments(el.cold, files).values())
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with fragments._kept[el.cold].lock:
            holding.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait()
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_fragments_in_child, args=(el, send))
    try:
        child.start()
        # when the child asks for the lake's fragments, then it gets its own (the parent's
        # lock, held by a thread the child does not have, does not hang it)
        got = receive.recv() if receive.poll(60) else None
    finally:
        release.set()
        holder.join()
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert got is not None, "the child hung on the lock a parent's thread held at the fork"
    assert len(got) == len(parent) and not set(got) & set(parent)

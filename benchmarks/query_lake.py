"""The `events` view on a lake of 10 million events over 365 days, against DuckDB's bare
`read_parquet` over the same files.

    (a) an aggregate over everything: `events` (compacted lake) vs bare read_parquet  (<= 1.5x)
    (b) a one-day query: files and bytes DuckDB reads, against the whole lake          (<= 2 %)
    (c) the same aggregate on the lake as the stream path leaves it (24 small files a day)
        vs after compaction                                                            (>= 5x)
    (d) that fragmented lake once its files are verified disjoint (lake/disjoint.py) vs bare
        read_parquet over the same small files                                        (<= 1.5x)
        and vs the view without manifests (every multi-file partition de-duplicated)

The data set is generated once (by DuckDB itself: 10M rows in seconds) and cached under
`.bench-cache/query-lake-v1/`; delete that folder to rebuild it. (d) verifies a hard-linked
copy of the small-file lake (`small-verified/`), so the manifests never touch `small/`.
Files and bytes read come from DuckDB's own profiler (`Total Files Read`, `io.total_bytes_read`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from benchmarks.common import median
from eventlake import EventLake, Settings
from eventlake.lake.disjoint import verify
from eventlake.lake.store import Lake
from eventlake.query.table import aligned

EVENTS = 10_000_000
DAYS = 365
SMALL_FILES_PER_DAY = 24
ROUNDS = 5
CACHE = (Path(os.environ.get("EVENTLAKE_BENCH_CACHE", ".bench-cache")) / "query-lake-v1").resolve()
AGGREGATE = ("SELECT event_type, count(*) AS n, count(DISTINCT subject) AS subjects, "
             "min(timestamp) AS first, max(timestamp) AS last FROM {src} GROUP BY 1 ORDER BY 1")
ONE_DAY = "SELECT event_type, count(*) AS n FROM events WHERE dt = DATE '2025-07-01' GROUP BY 1"


def build(root: Path) -> None:
    """The compacted lake (one file per day) and the same rows as 24 small files a day."""
    compacted, small = root / "compacted" / "events", root / "small" / "events"
    if (root / "done").exists():
        return
    print(f"generating {EVENTS:,} events over {DAYS} days in {root} (once) ...", flush=True)
    compacted.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    con = duckdb.connect()
    step = DAYS * 86400 / EVENTS
    con.execute(f"""
        COPY (
          SELECT printf('%016x-%08d', hash(i), i) AS event_id,
                 ['page_viewed','product_added_to_cart','checkout_started','order_placed',
                  'payment_failed'][1 + (hash(i * 7) % 5)::INT] AS event_type,
                 TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_microseconds((i * {step} * 1e6)::BIGINT)
                   AS timestamp,
                 TIMESTAMPTZ '2025-01-01 00:00:02+00' + to_microseconds((i * {step} * 1e6)::BIGINT)
                   AS ingested_at,
                 'shop.web' AS source,
                 'user-' || (hash(i * 13) % 50000)::VARCHAR AS subject,
                 '{{"session":"s-' || (i % 100000)::VARCHAR || '","cart_total":'
                   || ((i % 9000) / 100.0)::VARCHAR || '}}' AS event_payload,
                 md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS content_hash,
                 CAST(TIMESTAMPTZ '2025-01-01 00:00:00+00'
                      + to_microseconds((i * {step} * 1e6)::BIGINT) AS DATE) AS dt
          FROM range({EVENTS}) t(i)
          ORDER BY dt, event_type, timestamp
        ) TO '{compacted}' (FORMAT parquet, PARTITION_BY (dt), COMPRESSION zstd,
                            FILENAME_PATTERN 'compacted-{{i}}')""")
    for day_dir in sorted(compacted.iterdir()):
        data = pq.read_table(next(day_dir.glob("*.parquet")))
        out = small / day_dir.name
        out.mkdir(parents=True, exist_ok=True)
        size = -(-data.num_rows // SMALL_FILES_PER_DAY)
        for k in range(SMALL_FILES_PER_DAY):
            piece = data.slice(k * size, size)
            if piece.num_rows:
                pq.write_table(piece, out / f"stream-{k:02d}.parquet", compression="zstd")
    (root / "done").write_text(json.dumps({"events": EVENTS, "days": DAYS}))
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)


def verified_copy(root: Path) -> tuple[Path, float, float]:
    """`small/` hard-linked into `small-verified/`, every partition verified: the copy, the
    seconds the first verify took, and a second one that finds nothing new."""
    copy = root / "small-verified"
    if not (copy / "done").exists():
        shutil.rmtree(copy, ignore_errors=True)
        subprocess.run(["cp", "-al", str(root / "small"), str(copy)], check=True)
    lake = Lake(Settings(lake_uri=str(copy)))
    dts = sorted({f.dt for f in lake.list_files()})
    started = time.perf_counter()
    report = verify(lake, dts)
    first = time.perf_counter() - started
    assert not report.refused and not report.skipped, report.to_dict()
    started = time.perf_counter()
    verify(lake, dts)
    again = time.perf_counter() - started
    (copy / "done").write_text("verified")
    return copy, first, again


def spread(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}"


def lake_view(root: Path) -> duckdb.DuckDBPyConnection:
    lake = EventLake(Settings.from_env(lake_uri=str(root), table="bench-no-table"))
    con: duckdb.DuckDBPyConnection = lake.connect(hot=False)
    return con


def timed(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    rows = con.execute(sql).fetchall()
    return time.perf_counter() - started, rows


def profile(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[int, int]:
    """(files read, bytes read) for `sql`, from DuckDB's profiler."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    con.execute("PRAGMA enable_profiling='json'")
    con.execute(f"PRAGMA profiling_output='{out}'")
    con.execute(sql).fetchall()
    con.execute("PRAGMA disable_profiling")
    report = json.loads(Path(out).read_text())
    os.unlink(out)
    files = 0

    def walk(node: dict[str, Any]) -> None:
        nonlocal files
        files += int(node.get("extra_info", {}).get("Total Files Read", 0) or 0)
        for child in node.get("children", []) + node.get("operator", []):
            walk(child)

    walk(report)
    return files, int(report.get("io", {}).get("total_bytes_read", 0))


def run() -> dict[str, float]:
    build(CACHE)
    compacted, small = CACHE / "compacted", CACHE / "small"
    bare_src = f"read_parquet('{compacted}/events/*/*.parquet', hive_partitioning=true)"
    view = lake_view(compacted)
    view_small = lake_view(small)
    verified_root, verify_s, reverify_s = verified_copy(CACHE)
    view_verified = lake_view(verified_root)
    bare = duckdb.connect()
    bare_small_src = f"read_parquet('{small}/events/*/*.parquet', hive_partitioning=true)"

    # the same answer everywhere before any time counts
    expected = bare.execute(AGGREGATE.format(src=bare_src)).fetchall()
    assert view.execute(AGGREGATE.format(src="events")).fetchall() == expected
    assert view_small.execute(AGGREGATE.format(src="events")).fetchall() == expected
    assert view_verified.execute(AGGREGATE.format(src="events")).fetchall() == expected
    assert bare.execute(AGGREGATE.format(src=bare_small_src)).fetchall() == expected
    assert sum(r[1] for r in expected) == EVENTS

    times: dict[str, list[float]] = {"bare": [], "events": [], "small": [], "bare_small": [],
                                     "verified": []}
    for _ in range(ROUNDS):
        times["bare"].append(timed(bare, AGGREGATE.format(src=bare_src))[0])
        times["events"].append(timed(view, AGGREGATE.format(src="events"))[0])
        times["small"].append(timed(view_small, AGGREGATE.format(src="events"))[0])
        times["bare_small"].append(timed(bare, AGGREGATE.format(src=bare_small_src))[0])
        times["verified"].append(timed(view_verified, AGGREGATE.format(src="events"))[0])
    bare_s, events_s, small_s, bare_small_s, verified_s = (
        median(times[k]) for k in ("bare", "events", "small", "bare_small", "verified"))

    lake_files = list((compacted / "events").glob("*/*.parquet"))
    lake_bytes = sum(f.stat().st_size for f in lake_files)
    day_files, day_bytes = profile(view, ONE_DAY)

    print(f"\n## query: {EVENTS:,} events over {DAYS} days (median of {ROUNDS}; answers checked "
          "equal)")
    print("\n".join(aligned(["", "seconds", "min-max", "vs bare"], [
        ["(a) bare read_parquet, compacted lake", f"{bare_s:.3f}", spread(times["bare"]),
         "1.00x"],
        ["(a) `events` view, compacted lake", f"{events_s:.3f}", spread(times["events"]),
         f"{events_s / bare_s:.2f}x"],
        [f"(c) `events` view, {SMALL_FILES_PER_DAY} small files/day", f"{small_s:.3f}",
         spread(times["small"]), f"{small_s / bare_s:.2f}x"],
        ["(d) bare read_parquet, small files", f"{bare_small_s:.3f}",
         spread(times["bare_small"]), f"{bare_small_s / bare_s:.2f}x"],
        ["(d) `events` view, small files verified", f"{verified_s:.3f}",
         spread(times["verified"]), f"{verified_s / bare_s:.2f}x"],
    ], [False, True, True, True])))
    share = 100 * day_bytes / lake_bytes
    print(f"(a) `events` / bare read_parquet: {events_s / bare_s:.2f}x (target <= 1.5x)")
    print(f"(b) one day through `events`: {day_files} of {len(lake_files)} files, "
          f"{day_bytes / 1e6:.2f} MB of {lake_bytes / 1e6:.1f} MB = {share:.2f} % "
          "(target <= 2 %)")
    print(f"(c) compacted vs small files: {small_s / events_s:.1f}x faster (target >= 5x)")
    print(f"(d) small files verified / bare read_parquet over them: "
          f"{verified_s / bare_small_s:.2f}x (target <= 1.5x); without manifests "
          f"{small_s / bare_small_s:.2f}x; verifying all {DAYS} days took {verify_s:.1f} s "
          f"once, {reverify_s:.2f} s again with nothing new")
    return {"query_small_verified_vs_bare": verified_s / bare_small_s,
            "query_small_unverified_vs_bare": small_s / bare_small_s,
            "query_events_vs_bare": events_s / bare_s, "query_one_day_bytes_pct": share,
            "query_compacted_speedup": small_s / events_s}


if __name__ == "__main__":
    run()

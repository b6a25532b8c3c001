"""Peak memory of one sweep over 50,000 and 200,000 events, against a read-it-all baseline.

The sweep (`eventlake.archive.sweep.sweep`: lease, watermark, anti-join, chunked writes, TTL guard)
runs against a local lake (on /dev/shm when the machine has it) and a *stand-in* hot store:
`GeneratedHotStore` below. It is not moto: moto answers each index Query in O(items in the
table) and holds every item in this process, so measuring through it would measure moto. The
stand-in duck-types the one method the sweep and its TTL guard call on `HotStore`,
`read_index_pages(since, until)` (plus `read_ingested`, `agree` and `settings`), and
GENERATES the items lazily, a page of 1,000 at a time, never holding them all: realistic
events (payloads of about 0.5 KB) run through `parse_event` and `HotStore.to_item`, ingested
over one day, with event timestamps up to three days older, so each run writes several `dt`
partitions.

Each (mode, size) runs in a fresh subprocess (`python -m benchmarks.sweep_memory --child N
--mode sweep|baseline`, printing JSON), so peaks never leak from one run into the next:

    peak RSS    ru_maxrss after the run minus the RSS right before it (after imports and a
                100-event warm-up, reported apart as "startup"); the kernel's peak is reset
                just before, through /proc/self/clear_refs, where that is allowed
    arrow peak  pyarrow's default memory pool, max_memory()
    time        wall seconds, of which generating the items (the stand-in's own cost, the
                same for both modes); events/s leaves that generation out

Baseline (the naive way, measured at the same sizes in the same run): materialise every item
into one list, decode them all into one Arrow table, write it. Both modes' lakes are read back
(the event_id column only) and must hold exactly the N generated event_ids, the same set.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.common import reset_peak_rss
from eventlake.archive.sweep import sweep
from eventlake.archive.writer import DEFAULT_CHUNK_ROWS
from eventlake.codec import RowBuilder
from eventlake.config import Settings
from eventlake.events.model import parse_event
from eventlake.hot.store import HotStore, Item
from eventlake.lake.store import Lake
from eventlake.query.table import aligned

SIZES = (50_000, 200_000)
MODES = ("baseline", "sweep")
PAGE_ITEMS = 1_000
WARMUP_EVENTS = 100
DAY_US = 86_400 * 1_000_000
NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
MB = 2**20


class GeneratedHotStore:
    """A stand-in for HotStore: `count` items made on demand, page by page, never all at once.

    Item i was ingested at `start + i * step` (one day, oldest first, ending an hour before
    NOW) and timestamped up to three days before that. Only the read side exists.
    """

    def __init__(self, settings: Settings, count: int, prefix: str = "evt") -> None:
        self.settings = settings
        self.count = count
        self.prefix = prefix
        self.start = NOW - timedelta(hours=25)
        self.step_us = DAY_US // count
        self.generate_seconds = 0.0
        self.generated = 0
        # An item-only HotStore (no table, nothing recorded on it) makes the items and
        # answers what the sweep asks about the table's settings and the shards to read.
        self._store = HotStore(settings, None, recorded={})  # type: ignore[arg-type]
        self._to_item = self._store.to_item
        self.table = self._store.table
        self.table_settings = self._store.table_settings
        self.clients = None  # the sweep's metrics (EVENTLAKE_METRICS) are off here
        self.read_at_least = self._store.read_at_least
        self.shards_to_read = self._store.shards_to_read

    @property
    def read_floor(self) -> int | None:
        return self._store.read_floor

    def require_table(self) -> None:
        """No table to look up: the items are generated."""

    def agree(self, settings: Settings, *, fresh: bool = False) -> Settings:
        """The settings as recorded (nothing: no table), never re-read (`fresh` ignored)."""
        return self._store.agree(settings)

    def now(self) -> datetime:
        return NOW

    def ingested_at(self, i: int) -> datetime:
        return self.start + timedelta(microseconds=i * self.step_us)

    def _position(self, at: datetime) -> int:
        """The first i ingested at or after `at` (clamped to [0, count])."""
        offset = (at - self.start) // timedelta(microseconds=1)
        return min(self.count, max(0, math.ceil(offset / self.step_us)))

    def read_ingested_pages(self, since: datetime, until: datetime) -> Iterator[list[Item]]:
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("read_ingested needs timezone-aware datetimes (UTC)")
        first, end = self._position(since), self._position(until)
        for page_start in range(first, end, PAGE_ITEMS):
            started = time.perf_counter()
            page = [self.item(i) for i in range(page_start, min(page_start + PAGE_ITEMS, end))]
            self.generate_seconds += time.perf_counter() - started
            self.generated += len(page)
            yield page

    def read_ingested(self, since: datetime, until: datetime) -> Iterator[Item]:
        for page in self.read_ingested_pages(since, until):
            yield from page

    # The generated entries are whole items (as an index projecting ALL gives them): the
    # sweep's read path passes them on and fetches nothing.
    read_index_pages = read_ingested_pages

    def fetch(self, event_ids: Sequence[str]) -> Any:
        raise AssertionError(f"nothing to fetch: the entries are whole ({len(event_ids)} asked)")

    def event_id(self, i: int) -> str:
        # uuid-looking and unordered, like real producers' ids (not the ingestion order)
        return f"{self.prefix}-{uuid.UUID(int=(i * 0x9E3779B97F4A7C15F39CC0605CEDC835) % 2**128)}"

    def item(self, i: int) -> Item:
        ingested = self.ingested_at(i)
        raw = {
            "event_id": self.event_id(i),
            "event_type": ("page_viewed", "cart_updated", "order_placed")[i % 3],
            "timestamp": (ingested - timedelta(seconds=(i * 37) % (3 * 86400))).isoformat(),
            "source": "shop.web", "subject": f"user-{i % 997:04d}",
            "event_payload": {
                "session": f"s-{i % 5000:05d}", "device": ("ios", "android", "web")[i % 3],
                "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) "
                              "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
                "page": {"path": f"/products/{i % 400}", "referrer": "https://example.com/ü",
                         "title": "Trail socks (3 pairs) — größe M"},
                "cart": [{"sku": f"sku-{j}", "qty": j + 1, "unit_price": f"{9.5 + j:.2f}"}
                         for j in range(3)],
                "flags": {"beta": i % 2 == 0, "ab_bucket": i % 7}, "note": None,
            },
        }
        return self._to_item(parse_event(raw, now=NOW), ingested)


def naive(lake: Lake, hot: GeneratedHotStore) -> None:
    """The baseline: every item in one list, one table of them all, one write."""
    since, until = NOW - timedelta(days=31), NOW
    items = list(hot.read_ingested(since, until))
    builder = RowBuilder()
    for item in items:
        builder.add_image(item)
    lake.write(builder.to_table(), "naive")


# --- the child: one (mode, size) in a fresh process --------------------------------------------

def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _settings(root: Path) -> Settings:
    return Settings.from_env({}, lake_uri=str(root))  # defaults, whatever the environment


def _run(mode: str, lake: Lake, hot: GeneratedHotStore, settings: Settings) -> None:
    if mode == "sweep":
        lake.create_marker(table=settings.table)  # `eventlake init` leaves it; the sweep checks
        report = sweep(lake, hot, settings, settle_seconds=0, now=NOW)  # type: ignore[arg-type]
        counts = report.counts
        if (counts.read, counts.archived) != (hot.count, hot.count) or not report.ttl.ok:
            raise SystemExit(f"sweep of {hot.count:,}: {report.to_dict()}")
    else:
        naive(lake, hot)


def child(count: int, mode: str) -> dict[str, Any]:
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="eventlake-bench-sweepmem-",
                                 dir=shm if shm.is_dir() else None))
    try:
        # Warm up (lazy imports, thread pools, the allocator's first arenas) on another lake.
        warm = _settings(work / "warmup")
        _run(mode, Lake(warm), GeneratedHotStore(warm, WARMUP_EVENTS, "warm"), warm)
        settings = _settings(work / "lake")
        lake = Lake(settings)
        hot = GeneratedHotStore(settings, count)
        gc.collect()
        pool = pa.default_memory_pool()
        reset = reset_peak_rss()
        rss_before, arrow_before = _rss(), pool.bytes_allocated()
        max_rss_before = _max_rss()
        started = time.perf_counter()
        _run(mode, lake, hot, settings)
        seconds = time.perf_counter() - started
        peak = _max_rss()
        arrow_peak = pool.max_memory()
        if hot.generated != count:
            raise SystemExit(f"{mode}: generated {hot.generated:,} items, expected {count:,}")
        ids = lake.read(columns=["event_id"])["event_id"]
        distinct = pc.count_distinct(ids).as_py()
        if distinct != count or len(ids) != count:
            raise SystemExit(f"{mode}: the lake holds {len(ids):,} rows, {distinct:,} distinct "
                             f"event_ids; expected exactly {count:,}")
        digest = hashlib.sha256("\n".join(sorted(ids.to_pylist())).encode()).hexdigest()
        dts = len({f.dt for f in lake.list_files()})
        return {"mode": mode, "events": count, "startup_rss": rss_before,
                "peak_reset": reset, "peak_before": max_rss_before,
                "peak_rss_delta": peak - rss_before, "arrow_before": arrow_before,
                "arrow_peak": arrow_peak, "seconds": seconds,
                "generate_seconds": hot.generate_seconds, "ids_sha256": digest, "dts": dts}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the parent: every (mode, size) in its own process, then the table ------------------------

def _spawn(count: int, mode: str) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "benchmarks.sweep_memory", "--child",
                           str(count), "--mode", mode], cwd=root, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"child {mode} {count:,} failed ({done.returncode}):\n"
                           f"{done.stdout}{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run() -> dict[str, float]:
    started = time.perf_counter()
    results = {(mode, n): _spawn(n, mode) for n in SIZES for mode in MODES}
    for n in SIZES:
        digests = {results[mode, n]["ids_sha256"] for mode in MODES}
        assert len(digests) == 1, f"{n:,} events: the modes wrote different event_ids"
    small, large = SIZES[0], SIZES[-1]
    any_result = results[MODES[0], small]
    print(f"\n## sweep memory: {small:,} and {large:,} events, each run in a fresh process "
          f"({time.perf_counter() - started:.0f} s; lake on "
          f"{'/dev/shm' if Path('/dev/shm').is_dir() else 'the temp dir'}, "
          f"{any_result['dts']} dt partitions; both modes checked to write exactly the N "
          "generated event_ids)")
    print(f"the sweep archives in chunks of {DEFAULT_CHUNK_ROWS:,} items "
          "(archive.writer.DEFAULT_CHUNK_ROWS): its peak is about two chunks' (one written while "
          "the next is read), whatever the event count")
    header = ["mode", "events", "peak RSS Δ MB", "arrow peak MB", "startup RSS MB", "s",
              "of which generating s", "events/s (excl. generating)"]
    rows: list[list[str]] = []
    for mode in MODES:
        for n in SIZES:
            r = results[mode, n]
            work = r["seconds"] - r["generate_seconds"]
            rows.append([mode, f"{n:,}", f"{r['peak_rss_delta'] / MB:,.0f}",
                         f"{r['arrow_peak'] / MB:,.0f}", f"{r['startup_rss'] / MB:,.0f}",
                         f"{r['seconds']:.1f}", f"{r['generate_seconds']:.1f}",
                         f"{n / work:,.0f}"])
    print("\n".join(aligned(header, rows, [False] + [True] * (len(header) - 1))))
    if not all(r["peak_reset"] for r in results.values()):
        print("(peak RSS could not be reset before the run: Δ is against the startup peak)")

    def growth(mode: str, key: str) -> float:
        return float(results[mode, large][key] / max(results[mode, small][key], 1))

    factor = large // small
    print(f"for {factor}x the events: sweep peak RSS grew "
          f"{growth('sweep', 'peak_rss_delta'):.2f}x (arrow "
          f"{growth('sweep', 'arrow_peak'):.2f}x), baseline grew "
          f"{growth('baseline', 'peak_rss_delta'):.2f}x (arrow "
          f"{growth('baseline', 'arrow_peak'):.2f}x)")
    tag = f"{small // 1000}k_to_{large // 1000}k"
    sweep_large = results["sweep", large]
    return {
        f"sweep_memory_growth_{tag}": growth("sweep", "peak_rss_delta"),
        f"baseline_memory_growth_{tag}": growth("baseline", "peak_rss_delta"),
        f"sweep_peak_rss_mb_{large // 1000}k": sweep_large["peak_rss_delta"] / MB,
        f"baseline_peak_rss_mb_{large // 1000}k":
            results["baseline", large]["peak_rss_delta"] / MB,
        f"sweep_events_per_s_{large // 1000}k":
            large / (sweep_large["seconds"] - sweep_large["generate_seconds"]),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep_memory")
    parser.add_argument("--child", type=int, metavar="N", help="measure one run of N events")
    parser.add_argument("--mode", choices=MODES, default="sweep")
    args = parser.parse_args(argv)
    if args.child is None:
        run()
    else:
        print(json.dumps(child(args.child, args.mode)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

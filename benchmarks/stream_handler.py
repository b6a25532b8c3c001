"""The stream handler on one 10,000-record Lambda batch, against two baselines, at two payload
sizes (~95 B and ~1.8 KB of canonical JSON per event).

- seed-style: how the seed archived a batch: boto3's TypeDeserializer on every attribute of
  every record, a JSON round-trip of the payload, an Arrow table from a list of dicts, one
  zstd Parquet write per date partition.
- bare loop + the same write: a plain loop reading the eight attributes into column lists, one
  `pa.array` per column, the timestamps cast, and the lake's own Parquet write
  (`store._write_parquet`: zstd, statistics, dictionaries, sorting columns) of each date
  partition sorted like the lake's. No checks, no file names from content, no listing, no
  fsync: the floor a handler with guarantees is measured against.

Candidate: `eventlake.handlers.stream.handler` on the same event into a local lake. All three
outputs are read back and checked equal, row for row, before timing counts. Rounds are
interleaved (seed, bare, handler, seed, ...); ratios are medians of per-round ratios, printed
with their quartiles and the machine's load average (timings on a shared machine are noisy).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.common import interleaved, median, without_index_keys
from eventlake.config import Settings
from eventlake.events.model import parse_event
from eventlake.events.schema import EVENT_SCHEMA, SORT_KEYS, UTC_MICROS
from eventlake.handlers import stream
from eventlake.hot.store import HotStore
from eventlake.lake.store import Lake, _write_parquet
from eventlake.query.table import aligned

RECORDS = 10_000
ROUNDS = 21
SIZES = ("small", "large")
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/events/stream/2026-01-01T00:00:00.000"


def payload(i: int, size: str) -> dict[str, Any]:
    """An event payload: "small" is ~95 B of canonical JSON, "large" ~1.8 KB."""
    if size == "small":
        return {"session": f"s-{i % 5000:05d}", "device": ("ios", "android", "web")[i % 3],
                "path": f"/products/{i % 400}", "ab": i % 7, "beta": i % 2 == 0,
                "ref": f"r-{i % 1000:04d}"}
    return {
        "session": f"s-{i % 5000:05d}", "device": ("ios", "android", "web")[i % 3],
        "page": {"path": f"/products/{i % 400}", "referrer": "https://example.com/ü",
                 "title": "Trail socks (3 pairs) — größe M"},
        "cart": [{"sku": f"sku-{(i + j) % 900:03d}", "qty": (i + j) % 5 + 1,
                  "name": "Trail socks (3 pairs) — größe M",
                  "unit_price": f"{9.5 + (i + j) % 40:.2f}"} for j in range(18)],
        "flags": {"beta": i % 2 == 0, "ab_bucket": i % 7}, "note": None,
    }


def make_event(n: int = RECORDS, size: str = "small") -> dict[str, Any]:
    """A Lambda DynamoDB Streams event of `n` eventlake INSERTs (over 3 days: 4 partitions)."""
    now = datetime.now(UTC).replace(microsecond=0)
    store = HotStore(Settings.from_env(), None, recorded={})  # type: ignore[arg-type]  # to_item
    records = []
    for i in range(n):
        raw = {
            "event_id": f"bench-{i:08d}",
            "event_type": ("page_viewed", "cart_updated", "order_placed")[i % 3],
            "timestamp": (now - timedelta(seconds=(i * 37) % (3 * 86400))).isoformat(),
            "source": "shop.web", "subject": f"user-{i % 997:04d}",
            "event_payload": payload(i, size),
        }
        # without the index keys s and k: the seed-style baseline deserializes every
        # attribute, so two more would slow it and flatter the ratio (they cost the handler
        # nothing: it reads its attributes by name)
        item = without_index_keys(store.to_item(parse_event(raw, now=now), now))
        records.append({
            "eventID": f"{i:032x}", "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "eventSourceARN": ARN,
            "dynamodb": {"ApproximateCreationDateTime": int(now.timestamp()),
                         "Keys": {"event_id": item["event_id"]}, "NewImage": item,
                         "SequenceNumber": str(400000000000000000000 + i * 3),
                         "SizeBytes": len(json.dumps(item)),
                         "StreamViewType": "NEW_AND_OLD_IMAGES"},
        })
    return {"Records": records}


def baseline(event: dict[str, Any], root: Path) -> None:
    """The seed's way: per-attribute TypeDeserializer, JSON round-trip, from_pylist, write."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    rows = []
    for record in event["Records"]:
        if record["eventName"] != "INSERT":
            continue
        image = {k: deserializer.deserialize(v) for k, v in record["dynamodb"]["NewImage"].items()}
        payload = json.loads(image["event_payload"])
        rows.append({
            "event_id": image["event_id"], "event_type": image["event_type"],
            "timestamp": datetime.fromisoformat(image["timestamp"]),
            "ingested_at": datetime.fromisoformat(image["ingested_at"]),
            "source": image.get("source"), "subject": image.get("subject"),
            "event_payload": json.dumps(payload, sort_keys=True, separators=(",", ":"),
                                        ensure_ascii=False),
            "content_hash": image["content_hash"],
        })
    data = pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)
    dts = pc.strftime(data.column("timestamp"), format="%Y-%m-%d")
    for dt in pc.unique(dts).to_pylist():
        part = data.filter(pc.equal(dts, dt)).sort_by(SORT_KEYS)
        folder = root / "events" / f"dt={dt}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, folder / "baseline.parquet", compression="zstd")


def bare(event: dict[str, Any], root: Path) -> None:
    """A bare attribute loop + the lake's own Parquet write: no checks, no names, no fsync."""
    ids, types, times, ingested, sources, subjects, payloads, hashes = (
        [], [], [], [], [], [], [], [])  # type: tuple[list[Any], ...]
    for record in event["Records"]:
        if record["eventName"] != "INSERT":
            continue
        image = record["dynamodb"]["NewImage"]
        ids.append(image["event_id"]["S"])
        types.append(image["event_type"]["S"])
        times.append(image["timestamp"]["S"])
        ingested.append(image["ingested_at"]["S"])
        source, subject = image.get("source"), image.get("subject")
        sources.append(None if source is None else source["S"])
        subjects.append(None if subject is None else subject["S"])
        payloads.append(image["event_payload"]["S"])
        hashes.append(image["content_hash"]["S"])
    text = pa.string()
    data = pa.Table.from_arrays(
        [pa.array(ids, text), pa.array(types, text), pa.array(times, text).cast(UTC_MICROS),
         pa.array(ingested, text).cast(UTC_MICROS), pa.array(sources, text),
         pa.array(subjects, text), pa.array(payloads, text), pa.array(hashes, text)],
        schema=EVENT_SCHEMA)
    days = pc.cast(data["timestamp"], pa.date32())
    for day in pc.unique(days).to_pylist():
        part = data.filter(pc.equal(days, day)).sort_by(SORT_KEYS)
        folder = root / "events" / f"dt={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        with pa.OSFile(str(folder / "bare.parquet"), "wb") as sink:
            _write_parquet(part, sink)


def candidate(event: dict[str, Any], lake: Lake) -> None:
    stream.reset(lake)
    response = stream.handler(event)
    assert response == {"batchItemFailures": []}, response


def read_back(root: Path) -> pa.Table:
    parts = [pq.read_table(p) for p in sorted((root / "events").glob("*/*.parquet"))]
    return pa.concat_tables(parts).select(EVENT_SCHEMA.names).sort_by(
        [("event_id", "ascending")])


def measure(size: str, work: Path) -> dict[str, list[float]]:
    """Check the three outputs equal, then time interleaved rounds (seconds per batch)."""
    event = make_event(size=size)
    roots = {name: work / size / name for name in ("seed", "bare", "handler")}
    lake = Lake(Settings.from_env(lake_uri=str(roots["handler"])))
    baseline(event, roots["seed"])
    bare(event, roots["bare"])
    candidate(event, lake)
    expected = read_back(roots["seed"])
    assert expected.num_rows == RECORDS
    for name in ("bare", "handler"):
        assert read_back(roots[name]).equals(expected), f"{name} output differs from the seed's"

    def fresh(write: Any, root: Path) -> Any:
        def run() -> None:
            shutil.rmtree(root, ignore_errors=True)
            write(event, root)
        return run

    return interleaved({"seed": fresh(baseline, roots["seed"]),
                        "bare": fresh(bare, roots["bare"]),
                        # A retried batch rewrites its own files: the lake stays one batch big.
                        "handler": lambda: candidate(event, lake)}, ROUNDS)


def _spread(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4)
    return f"{q[0] * 1000:.1f}-{q[2] * 1000:.1f}"


def _ratio_spread(ratios: list[float]) -> str:
    q = statistics.quantiles(ratios, n=4)
    return f"{q[0]:.2f}-{q[2]:.2f}"


def _load() -> str:
    """The machine's 1-minute load average: on a shared machine, read the ratios with it."""
    try:
        return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    except OSError:  # pragma: no cover - no load average on this platform
        return "unknown"


def run() -> dict[str, float]:
    # Memory-backed when the machine has it: every side then pays for encoding and writing,
    # not for the disk's flush latency (eventlake fsyncs each file; the baselines do not).
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="eventlake-bench-stream-",
                                 dir=shm if shm.is_dir() else None))
    results: dict[str, float] = {}
    try:
        for size in SIZES:
            times = measure(size, work)
            payload_bytes = statistics.mean(
                len(json.dumps(payload(i, size), separators=(",", ":"), ensure_ascii=False)
                    .encode()) for i in range(100))
            per_round = list(zip(times["seed"], times["bare"], times["handler"], strict=True))
            speedups = [s / h for s, _, h in per_round]
            over_bares = [h / b for _, b, h in per_round]
            bare_speedups = [s / b for s, b, _ in per_round]
            speedup, over_bare = median(speedups), median(over_bares)
            print(f"\n## stream handler, {size} payloads (~{payload_bytes:,.0f} B): one Lambda "
                  f"batch of {RECORDS:,} INSERT records (median of {ROUNDS} interleaved rounds; "
                  "outputs checked equal)")
            print("\n".join(aligned(
                ["", "records/s", "ms/batch", "quartiles ms", "range ms"],
                [[label, f"{RECORDS / median(times[key]):,.0f}",
                  f"{median(times[key]) * 1000:.1f}", _spread(times[key]),
                  f"{min(times[key]) * 1000:.1f}-{max(times[key]) * 1000:.1f}"]
                 for key, label in (("seed", "seed-style baseline"),
                                    ("bare", "bare loop + same write"),
                                    ("handler", "eventlake handler"))],
                [False, True, True, True, True])))
            print(f"speed-up over seed-style: {speedup:.2f}x (target >= 5x; quartiles "
                  f"{_ratio_spread(speedups)}); handler / bare loop + write: {over_bare:.2f}x "
                  f"(target <= 1.3x; quartiles {_ratio_spread(over_bares)}); per-round medians")
            print(f"(the bare loop + write itself: {median(bare_speedups):.2f}x the seed-style, "
                  f"quartiles {_ratio_spread(bare_speedups)}; load average {_load()})")
            results[f"stream_handler_speedup_{size}"] = speedup
            results[f"stream_handler_over_bare_{size}"] = over_bare
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    run()

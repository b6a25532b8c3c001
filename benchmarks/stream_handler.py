"""The stream handler on one 10,000-record Lambda batch, against a seed-style baseline.

Baseline (how the seed archived a batch): boto3's TypeDeserializer on every attribute of every
record, a JSON round-trip of the payload, an Arrow table from a list of dicts, one zstd Parquet
write per date partition. Candidate: `eventlake.handlers.stream.handler` on the same event into
a local lake. Both outputs are read back and checked equal, row for row, before timing counts.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.common import interleaved, median
from eventlake.config import Settings
from eventlake.events.model import parse_event
from eventlake.events.schema import EVENT_SCHEMA, SORT_KEYS
from eventlake.handlers import stream
from eventlake.hot.store import HotStore
from eventlake.lake.store import Lake
from eventlake.query.table import aligned

RECORDS = 10_000
ROUNDS = 21
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/events/stream/2026-01-01T00:00:00.000"


def make_event(n: int = RECORDS) -> dict[str, Any]:
    """A Lambda DynamoDB Streams event of `n` eventlake INSERTs (payloads ~0.5 KB, 3 days)."""
    now = datetime.now(UTC).replace(microsecond=0)
    store = HotStore(Settings.from_env(), None, recorded={})  # type: ignore[arg-type]  # to_item
    records = []
    for i in range(n):
        raw = {
            "event_id": f"bench-{i:08d}",
            "event_type": ("page_viewed", "cart_updated", "order_placed")[i % 3],
            "timestamp": (now - timedelta(seconds=(i * 37) % (3 * 86400))).isoformat(),
            "source": "shop.web", "subject": f"user-{i % 997:04d}",
            "event_payload": {
                "session": f"s-{i % 5000:05d}", "device": ("ios", "android", "web")[i % 3],
                "page": {"path": f"/products/{i % 400}", "referrer": "https://example.com/ü",
                         "title": "Trail socks (3 pairs) — größe M"},
                "cart": [{"sku": f"sku-{j}", "qty": j + 1, "unit_price": f"{9.5 + j:.2f}"}
                         for j in range(3)],
                "flags": {"beta": i % 2 == 0, "ab_bucket": i % 7}, "note": None,
            },
        }
        item = store.to_item(parse_event(raw, now=now), now)
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


def candidate(event: dict[str, Any], lake: Lake) -> None:
    stream.reset(lake)
    response = stream.handler(event)
    assert response == {"batchItemFailures": []}, response


def read_back(root: Path) -> pa.Table:
    parts = [pq.read_table(p) for p in sorted((root / "events").glob("*/*.parquet"))]
    return pa.concat_tables(parts).select(EVENT_SCHEMA.names).sort_by(
        [("event_id", "ascending")])


def run() -> dict[str, float]:
    event = make_event()
    # Memory-backed when the machine has it: both sides then pay for encoding and writing,
    # not for the disk's flush latency (eventlake fsyncs each file; the baseline does not).
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="eventlake-bench-stream-",
                                 dir=shm if shm.is_dir() else None))
    try:
        base_root, cand_root = work / "baseline", work / "candidate"
        lake = Lake(Settings.from_env(lake_uri=str(cand_root)))
        baseline(event, base_root)
        candidate(event, lake)
        expected, got = read_back(base_root), read_back(cand_root)
        assert got.num_rows == expected.num_rows == RECORDS
        assert got.equals(expected), "handler output differs from the baseline's"

        def fresh_baseline() -> None:
            shutil.rmtree(base_root, ignore_errors=True)
            baseline(event, base_root)

        times = interleaved({"baseline": fresh_baseline,
                             "handler": lambda: candidate(event, lake)}, ROUNDS)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base, cand = median(times["baseline"]), median(times["handler"])
    # Each round runs both back to back: the median of per-round ratios cancels slow drifts
    # in machine load that the ratio of medians would not.
    ratio = median([b / c for b, c in zip(times["baseline"], times["handler"], strict=True)])
    print(f"\n## stream handler: one Lambda batch of {RECORDS:,} INSERT records "
          f"(median of {ROUNDS} interleaved rounds; outputs checked equal; lake in {work})")
    print("\n".join(aligned(
        ["", "records/s", "ms/batch"],
        [["seed-style baseline", f"{RECORDS / base:,.0f}", f"{base * 1000:.0f}"],
         ["eventlake handler", f"{RECORDS / cand:,.0f}", f"{cand * 1000:.0f}"]],
        [False, True, True])))
    print(f"speed-up: {ratio:.1f}x (median of per-round ratios; target >= 5x)")
    return {"stream_handler_speedup": ratio}


if __name__ == "__main__":
    run()

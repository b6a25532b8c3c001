"""Inputs the peer benchmarks share: Lambda stream events of eventlake items, and lakes written
the way eventlake writes them (the stream handler, 24 batches a day; then `EventLake.compact`).

Lakes are built through the public entry points, so a change to how the handler or compaction
writes (names, manifests, layout) shows up here without edits. They are cached under
`.bench-cache/peers-v1/` (delete it to rebuild).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import without_index_keys
from eventlake.config import Settings
from eventlake.events.model import parse_event
from eventlake.hot.store import HotStore

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/events/stream/2026-01-01T00:00:00.000"
TYPES = ("page_viewed", "cart_updated", "order_placed", "checkout_started", "payment_failed")
CACHE = (Path(os.environ.get("EVENTLAKE_BENCH_CACHE", ".bench-cache")) / "peers-v1").resolve()
FIRST_DAY = date(2026, 1, 1)
"""Lakes start here (a fixed day: a cached lake stays valid)."""


def _payload(i: int, size: str) -> dict[str, Any]:
    """~90 B (`small`) or ~1.9 KB (`large`) of JSON; `cart_total` is what the JSON query reads."""
    small = {"session": f"s-{i % 5000:05d}", "device": ("ios", "android", "web")[i % 3],
             "cart_total": round((i % 9000) / 100, 2), "path": f"/products/{i % 400}",
             "ab": i % 7}
    if size == "small":
        return small
    return small | {
        "page": {"referrer": "https://example.com/ü",
                 "title": "Trail socks (3 pairs) — größe M"},
        "cart": [{"sku": f"sku-{j:04d}", "qty": j + 1, "unit_price": f"{9.5 + j:.2f}",
                  "name": f"Merino hiking sock, colour {j}"} for j in range(20)],
        "flags": {"beta": i % 2 == 0, "ab_bucket": i % 7}, "note": None,
    }


def stream_event(first: int, n: int, *, size: str = "small", start: datetime | None = None,
                 span_seconds: int = 3 * 86400) -> dict[str, Any]:
    """A Lambda DynamoDB Streams event of `n` eventlake INSERTs, ids `first`..`first + n - 1`,
    timestamps spread over `span_seconds` from `start` (3 days ending now by default)."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = start or now - timedelta(seconds=span_seconds)
    store = HotStore(Settings.from_env(), None, recorded={})  # type: ignore[arg-type]  # to_item
    records = []
    for k in range(n):
        i = first + k
        at = start + timedelta(microseconds=(k * span_seconds * 1_000_000) // max(n, 1))
        raw = {"event_id": f"ev-{i:010d}", "event_type": TYPES[(i * 7) % len(TYPES)],
               "timestamp": at.isoformat(), "source": "shop.web",
               "subject": f"user-{(i * 13) % 50_000}", "event_payload": _payload(i, size)}
        # without the index keys s and k (stream_handler.py: the baselines would pay for
        # them, the handler would not)
        item = without_index_keys(store.to_item(parse_event(raw, now=now),
                                                at + timedelta(seconds=2)))
        records.append({
            "eventID": f"{i:032x}", "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "eventSourceARN": ARN,
            "dynamodb": {"ApproximateCreationDateTime": int(at.timestamp()) + 2,
                         "Keys": {"event_id": item["event_id"]}, "NewImage": item,
                         "SequenceNumber": str(400000000000000000000 + i * 3),
                         "SizeBytes": len(json.dumps(item)),
                         "StreamViewType": "NEW_AND_OLD_IMAGES"},
        })
    return {"Records": records}


def payload_bytes(event: dict[str, Any]) -> float:
    """The mean size of the events' JSON payloads, in bytes (UTF-8)."""
    sizes = [len(r["dynamodb"]["NewImage"]["event_payload"]["S"].encode())
             for r in event["Records"]]
    return sum(sizes) / len(sizes)


def settings(root: str, **overrides: Any) -> Settings:
    return Settings.from_env(lake_uri=root, table="bench-no-table", **overrides)


def build_lakes(name: str, events: int, days: int, batches_per_day: int = 24) -> Path:
    """`<cache>/<name>/stream` (as the stream handler leaves it, its files verified disjoint as
    the sweep verifies them) and `.../compacted` (after
    `EventLake.compact`), `events` events over `days` days from FIRST_DAY; built once."""
    from eventlake import EventLake
    from eventlake.handlers import stream
    from eventlake.lake.disjoint import verify
    from eventlake.lake.store import Lake

    root = CACHE / name
    done = root / "done.json"
    spec = {"events": events, "days": days, "batches_per_day": batches_per_day, "verified": True}
    if done.exists() and json.loads(done.read_text()) == spec:
        return root
    shutil.rmtree(root, ignore_errors=True)
    print(f"building {name}: {events:,} events over {days} days through the stream handler "
          f"(once, cached in {root}) ...", flush=True)
    began = time.perf_counter()
    lake = Lake(settings(str(root / "stream")))
    lake.create_marker(table="bench-no-table")
    stream.reset(lake)
    per_batch = -(-events // (days * batches_per_day))
    i = 0
    for d in range(days):
        for b in range(batches_per_day):
            n = min(per_batch, events - i)
            if n <= 0:
                break
            start = datetime.combine(FIRST_DAY + timedelta(days=d), datetime.min.time(), UTC)
            span = 86400 // batches_per_day
            event = stream_event(i, n, start=start + timedelta(seconds=b * span),
                                 span_seconds=span)
            response = stream.handler(event)
            if response != {"batchItemFailures": []}:
                raise RuntimeError(f"stream handler failed while building {name}: {response}")
            i += n
    stream.reset(None)
    # what the sweep (every 15 min) leaves: each day's stream files verified disjoint, so the
    # `events` view reads them bare (lake/disjoint.py); plain readers see the same files
    verify(lake, [(FIRST_DAY + timedelta(days=d)).isoformat() for d in range(days)])
    shutil.copytree(root / "stream", root / "compacted")
    EventLake(settings(str(root / "compacted"))).compact()
    done.write_text(json.dumps(spec))
    print(f"  built in {time.perf_counter() - began:.0f} s", flush=True)
    return root


def week(days: int) -> tuple[str, str]:
    """The one-week window the week queries read: the lake's middle week."""
    first = FIRST_DAY + timedelta(days=max(0, days // 2 - 3))
    return first.isoformat(), (first + timedelta(days=6)).isoformat()

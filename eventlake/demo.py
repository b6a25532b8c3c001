"""`eventlake demo`: the whole job on the embedded local stack, narrated step by step.

Starts moto's server on loopback, points every client at it through AWS_ENDPOINT_URL, and runs
the same library calls a deployment runs: provision, ingest (with retries, conflicts and bad
events mixed in), read back by ingestion window, status.
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

EVENT_TYPES = ("page_viewed", "product_added_to_cart", "checkout_started", "order_placed",
               "payment_failed")
PRODUCTS = (("sku-1001", "Café au lait mug", Decimal("12.50")),
            ("sku-1002", "Über-soft hoodie", Decimal("54.99")),
            ("sku-1003", "東京 tote bag", Decimal("19.90")),
            ("sku-1004", "Trail socks (3 pairs)", Decimal("14.00")))


def sample_events(n: int, *, seed: int = 7, now: datetime | None = None) -> list[dict[str, Any]]:
    """`n` realistic shop events over the last three days (some arrive late), deterministic."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    events = []
    for i in range(n):
        kind = rng.choices(EVENT_TYPES, weights=(60, 20, 10, 8, 2))[0]
        sku, name, price = rng.choice(PRODUCTS)
        ts = now - timedelta(seconds=rng.uniform(0, 3 * 86400))
        payload: dict[str, Any] = {"session": f"s-{rng.randrange(10_000):05d}",
                                   "device": rng.choice(("ios", "android", "web"))}
        if kind != "page_viewed":
            payload["cart"] = [{"sku": sku, "name": name, "unit_price": price,
                                "qty": rng.randint(1, 3)}]
        if kind == "order_placed":
            payload["total"] = sum((line["unit_price"] * line["qty"] for line in payload["cart"]),
                                   Decimal(0))
        events.append({
            "event_id": f"demo-{seed}-{i:07d}",
            "event_type": kind,
            "timestamp": ts.isoformat(timespec="microseconds"),
            "event_payload": payload,
            "source": "shop.web",
            "subject": f"user-{rng.randrange(500):04d}",
        })
    return events


def run_demo(*, events: int = 2000, keep: str | None = None) -> int:
    from eventlake.api import EventLake
    from eventlake.config import Settings
    from eventlake.hot import count_outcomes
    from eventlake.local import local_stack

    def step(title: str) -> None:
        print(f"\n== {title}")

    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="eventlake-demo-"))
    started = time.perf_counter()
    with local_stack() as stack:
        print(f"local stack: moto server at {stack.endpoint_url} (AWS_ENDPOINT_URL)")
        settings = Settings.from_env(table="eventlake-demo",
                                     lake_uri=str(workdir / "lake"))
        lake = EventLake(settings)

        step("init: provision the table (stream, TTL, ingestion-time index)")
        for change in lake.init() or ["nothing to change"]:
            print(f"  {change}")
        print(f"  again: {lake.init() or 'nothing to change'}")

        step(f"put: {events:,} shop events through put_many (conditional writes)")
        batch = sample_events(events)
        t0 = time.perf_counter()
        results = lake.put_many(batch)
        elapsed = time.perf_counter() - t0
        print(f"  {_counts(count_outcomes(results))} in {elapsed:.1f} s "
              f"({len(batch) / elapsed:,.0f} events/s)")

        step("retry the first 100 (a producer that timed out and sent again)")
        print(f"  {_counts(count_outcomes(lake.put_many(batch[:100])))}")

        step("a changed payload under a stored id, and two broken events")
        tampered = {**batch[0], "event_payload": {"tampered": True}}
        broken = [{"event_type": "order_placed", "timestamp": "yesterday"},
                  {"event_id": "x-1", "event_type": "", "event_payload": {}}]
        for result in lake.put_many([tampered, *broken]):
            print(f"  #{result.position} {result.outcome.value}: {result.message}")

        step("read back everything ingested in the last hour (index queries, no scan)")
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        ids = {item["event_id"]["S"]
               for item in lake.hot.read_ingested(now - timedelta(hours=1), now
                                                  + timedelta(seconds=1))}
        print(f"  {len(ids):,} distinct events in {time.perf_counter() - t0:.1f} s; "
              f"each sent event stored once: {ids == {e['event_id'] for e in batch}}")

        step("status")
        from eventlake.cli import _print_status

        _print_status(lake.status())
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s; lake dir {workdir}")
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "nothing"

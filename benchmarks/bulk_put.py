"""`put_many` of a batch of events against moto's HTTP server, against a serial producer.

Baseline (what a producer without eventlake writes): one conditional PutItem per event, one
after another, the items exactly as eventlake stores them. Candidate: `EventLake.put_many` on
the same events (EVENTLAKE_PUT_CONCURRENCY writers). Each round writes into two fresh tables;
both tables are read back and checked to hold the same ids and content hashes before any time
counts. moto's server runs in a process of its own (in this process it would share the GIL
with the writers); it is still the bottleneck, so the figures measure moto as much as
eventlake: the ratio, not the absolute rate, is the point.
"""

from __future__ import annotations

import uuid
from typing import Any

from benchmarks.common import median
from eventlake import EventLake, Outcome, Settings
from eventlake.events.model import parse_event
from eventlake.query.table import aligned

EVENTS = 2_000
ROUNDS = 3


def batch(n: int = EVENTS) -> list[dict[str, Any]]:
    """Meter readings without ids (ids derived from content), ~120 B payloads."""
    return [{"event_type": "meter.reading", "source": f"meter/{i % 97}",
             "timestamp": f"2026-11-29T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
             "event_payload": {"meter": i % 97, "kwh": f"{i * 0.125:.3f}", "seq": i}}
            for i in range(n)]


def fresh(endpoint: str) -> EventLake:
    lake = EventLake(Settings.from_env(table=f"bulk-{uuid.uuid4().hex[:12]}",
                                       endpoint_url=endpoint, lake_uri="/tmp/unused-lake"))
    lake.hot.provision()
    return lake


def serial(lake: EventLake, raws: list[dict[str, Any]]) -> None:
    ddb = lake.clients.dynamodb
    for raw in raws:
        item = lake.hot.to_item(parse_event(raw), lake.hot.now())
        ddb.put_item(TableName=lake.settings.table, Item=item,
                     ConditionExpression="attribute_not_exists(event_id)")


def stored(lake: EventLake) -> set[tuple[str, str]]:
    ddb = lake.clients.dynamodb
    pages = ddb.get_paginator("scan").paginate(TableName=lake.settings.table)
    return {(i["event_id"]["S"], i["content_hash"]["S"]) for p in pages for i in p["Items"]}


def run() -> dict[str, float]:
    import os
    import time

    for key, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(key, value)
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as probe:  # a free port for moto's server process
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):  # up in well under a second
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    raws = batch()
    times: dict[str, list[float]] = {"serial PutItem": [], "put_many": []}
    try:
        for _ in range(ROUNDS):
            base, cand = fresh(endpoint), fresh(endpoint)
            started = time.perf_counter()
            serial(base, raws)
            times["serial PutItem"].append(time.perf_counter() - started)
            started = time.perf_counter()
            results = cand.put_many(raws)
            times["put_many"].append(time.perf_counter() - started)
            assert {r.outcome for r in results} == {Outcome.CREATED}
            assert stored(base) == stored(cand), "put_many stored other items than the baseline"
    finally:
        server.terminate()
        server.wait(timeout=10)
    ratio = median([b / c for b, c in zip(times["serial PutItem"], times["put_many"],
                                           strict=True)])
    print(f"\n## bulk put: {EVENTS:,} events into moto's HTTP server (median of {ROUNDS} "
          "interleaved rounds; stored items checked equal; moto in its own process)")
    rows = [[name, f"{EVENTS / median(t):,.0f}"] for name, t in times.items()]
    print("\n".join(aligned(["", "events/s"], rows, [False, True])))
    print(f"speed-up: {ratio:.1f}x (median of per-round ratios)")
    return {"bulk_put_speedup": ratio}


if __name__ == "__main__":
    run()

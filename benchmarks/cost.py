"""`python -m benchmarks cost` (`make bench-cost`): what a million events cost on AWS, from a
counted run of the whole path on moto, next to DynamoDB -> Kinesis Data Streams -> Firehose.

The run: `EventLake.put_many` N events; the stream handler on the table's stream
(`eventlake.local.poller.StreamPoller`, Lambda's batch size 100); a sweep (`EventLake.archive`)
over the same events, and a second sweep right after (nothing new: what every scheduled sweep
requests anyway, and the re-read of events still in its look-back window);
`EventLake.compact`; three queries through `EventLake.sql` (both tiers). DynamoDB calls are
counted by a botocore `after-call` hook and priced in request units from the items sent and
returned (benchmarks/cost_units.py: moto's ConsumedCapacity is a constant); S3 requests are
counted on the moto server (pyarrow's S3 client bypasses botocore); Lambda GB-seconds come from
the handler's measured time at `--lambda-memory`.

Prices: published us-east-1 on-demand list prices (constants below, with their pages and the
date they were taken). Counts scale linearly to a million events; per-sweep and per-hour costs
are spread over `--events-per-day`.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.cost_units import Index, Tally, s3_request_kind
from benchmarks.peers.harness import markdown

PRICES_DATE = "2026-11-29"
"""When the prices below were last read from the pages named next to them."""
DYNAMODB = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
S3 = "https://aws.amazon.com/s3/pricing/"
LAMBDA = "https://aws.amazon.com/lambda/pricing/"
KINESIS = "https://aws.amazon.com/kinesis/data-streams/pricing/"
FIREHOSE = "https://aws.amazon.com/firehose/pricing/"
PRICE = {  # us-east-1, on-demand, USD
    "ddb_wru": 0.625 / 1e6,          # per write request unit (Standard table class) [DYNAMODB]
    "ddb_rru": 0.125 / 1e6,          # per read request unit [DYNAMODB]
    "ddb_storage_gb_month": 0.25,    # after the first 25 GB [DYNAMODB]
    "ddb_streams_read": 0.0,         # GetRecords by a Lambda trigger: free [DYNAMODB]
    "ddb_kds_cdc_unit": 0.10 / 1e6,  # Kinesis Data Streams for DynamoDB, per 1 KB change [DYNAMODB]
    "s3_put": 0.005 / 1000,          # PUT, COPY, POST, LIST, S3 Standard [S3]
    "s3_get": 0.0004 / 1000,         # GET, SELECT and all other requests [S3]
    "s3_storage_gb_month": 0.023,    # first 50 TB [S3]
    "lambda_gb_s": 0.0000133334,     # Arm (Graviton), as infra/template.yaml deploys [LAMBDA]
    "lambda_request": 0.20 / 1e6,    # [LAMBDA]
    "kds_in_gb": 0.08,               # on-demand data in, records rounded up to 1 KB [KINESIS]
    "kds_out_gb": 0.04,              # on-demand data retrieval [KINESIS]
    "kds_stream_hour": 0.04,         # on-demand, per stream [KINESIS]
    "firehose_in_gb": 0.029,         # first 500 TB/month, records rounded up to 5 KB [FIREHOSE]
    "firehose_convert_gb": 0.018,    # JSON -> Parquet, per GB ingested (5 KB steps) [FIREHOSE]
}
GB = 1024 ** 3
STORAGE_OVERHEAD_BYTES = 100
"""DynamoDB bills each item's bytes plus 100 bytes of overhead, and the same for each of its
entries in a secondary index [DYNAMODB; the developer guide's "Item sizes and formats"]."""
SQL = ("SELECT event_type, count(*) FROM events GROUP BY 1",
       "SELECT count(*) FROM events WHERE timestamp > now() - INTERVAL 1 HOUR",
       "SELECT avg(CAST(json_extract_string(event_payload, '$.cart_total') AS DOUBLE)) FROM events")
QUERIES = len(SQL)


# --- the counted run ----------------------------------------------------------------------------

class CountingS3:
    """WSGI middleware: S3 requests by how S3 bills them, for the current phase."""

    def __init__(self, app: Any, tally: Tally, phase: list[str]) -> None:
        self.app, self.tally, self.phase = app, tally, phase

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if "/s3/aws4_request" in (environ.get("HTTP_AUTHORIZATION") or ""):
            kind = s3_request_kind(environ.get("REQUEST_METHOD", ""),
                                   environ.get("QUERY_STRING", ""))
            self.tally.count_s3(f"{self.phase[0]}: {kind}")
        return self.app(environ, start_response)


@contextmanager
def counted_stack(tally: Tally, phase: list[str]) -> Iterator[str]:
    """eventlake's local stack (moto + atomic S3 writes) behind an S3 request counter."""
    import os

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from eventlake.local.stack import FAKE_CREDENTIALS, AtomicS3Writes

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = CountingS3(AtomicS3Writes(DomainDispatcherApplication(create_backend_app)), tally,
                     phase)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION",
                                            *FAKE_CREDENTIALS)}
    os.environ.update(FAKE_CREDENTIALS, AWS_ENDPOINT_URL=url, AWS_DEFAULT_REGION="us-east-1")
    try:
        yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.shutdown()
        thread.join()
        server.server_close()


def hook(client: Any, tally: Tally, phase: list[str]) -> None:
    """Count every call of `client` into `tally` under the current phase: botocore hands
    `before-parameter-build` and `after-call` the same request context."""
    def keep(params: Any, context: Any, **_: Any) -> None:
        context["eventlake_cost_params"] = dict(params)

    def count(parsed: Any, model: Any, context: Any, **_: Any) -> None:
        tally.on_dynamodb_call(phase[0], model.name, context.get("eventlake_cost_params", {}),
                               parsed)

    client.meta.events.register("before-parameter-build.*.*", keep)
    client.meta.events.register("after-call.*.*", count)


def make_events(n: int, payload_bytes: int, now: datetime) -> list[dict[str, Any]]:
    filler = "x" * max(0, payload_bytes - 60)
    return [{"event_id": f"cost-{i:08d}", "event_type": ("page_viewed", "order_placed")[i % 2],
             "timestamp": (now - timedelta(seconds=i % 3600)).isoformat(), "source": "shop.web",
             "subject": f"user-{i % 1000}",
             "event_payload": {"session": f"s-{i % 5000:05d}", "cart_total": i % 90,
                               "pad": filler}} for i in range(n)]


@dataclass
class Run:
    tally: Tally
    events: int
    item_bytes: float
    lake_bytes: int
    index_bytes: float = 0.0
    """Mean bytes of an item's entries in the table's indexes (keys + projected), summed."""
    peer_item_bytes: float = 0.0
    """Mean bytes of an item without eventlake's index attributes (`INDEX_ATTRIBUTES`): what
    the peer's table stores."""


INDEX_ATTRIBUTES = ("ingest_shard", "ingest_key", "s", "k")
"""The attributes eventlake's items carry for its ingestion-time index (hot/index.py)."""


def counted_run(events: int, payload_bytes: int) -> Run:
    from eventlake import EventLake
    from eventlake.handlers import stream
    from eventlake.local.poller import StreamPoller

    tally = Tally()
    phase = ["init"]
    with counted_stack(tally, phase):
        lake = EventLake.from_env(table="cost-events", lake_uri="s3://cost-lake/lake")
        for client in (lake.clients.dynamodb, lake.clients.dynamodbstreams, lake.clients.s3):
            hook(client, tally, phase)
        lake.init()
        desc = lake.clients.dynamodb.describe_table(TableName="cost-events")["Table"]
        tally.table_keys = tuple(k["AttributeName"] for k in desc["KeySchema"])
        tally.indexes = [Index(i["IndexName"], tuple(k["AttributeName"] for k in i["KeySchema"]),
                               None if i["Projection"]["ProjectionType"] == "ALL" else
                               frozenset(i["Projection"].get("NonKeyAttributes", [])))
                         for i in desc.get("GlobalSecondaryIndexes", [])]
        now = datetime.now(UTC)
        phase[0] = "ingest"
        results = lake.put_many(make_events(events, payload_bytes, now))
        bad = [r for r in results if r.outcome.value != "created"]
        assert not bad, f"{len(bad)} events not created, e.g. {bad[:3]}"

        phase[0] = "stream"
        stream.reset(lake.cold)

        def timed_handler(event: dict[str, Any], context: Any) -> Any:
            started = time.perf_counter()
            try:
                return stream.handler(event, context)
            finally:
                tally.lambda_seconds += time.perf_counter() - started
                tally.lambda_invocations += 1

        poller = StreamPoller(lake.clients, "cost-events", timed_handler, batch_size=100)
        stats = poller.poll_once()
        assert stats.records == events, f"stream delivered {stats.records} of {events}"
        stream.reset(None)

        phase[0] = "sweep (loaded)"
        lake.archive(settle_seconds=0)
        phase[0] = "sweep (again)"
        lake.archive(settle_seconds=0)
        phase[0] = "compact"
        lake.compact()
        phase[0] = "queries"
        for sql in SQL[:QUERIES]:
            lake.sql(sql)
        total = lake.sql("SELECT count(*) AS n FROM events").to_pylist()[0]["n"]
        assert total == events, f"the lake and table answer {total} events, expected {events}"
        items = lake.clients.dynamodb.scan(TableName="cost-events", Limit=50)["Items"]
        from benchmarks.cost_units import item_size

        item_bytes = sum(item_size(i) for i in items) / max(1, len(items))
        index_bytes = sum(entry for i in items for index in tally.indexes
                          if (entry := tally.entry_bytes(index, i)) is not None
                          ) / max(1, len(items))
        peer_item_bytes = sum(item_size({n: v for n, v in i.items()
                                         if n not in INDEX_ATTRIBUTES}) for i in items
                              ) / max(1, len(items))
        lake_bytes = sum(f.size for f in lake.cold.list_files())
    return Run(tally, events, item_bytes, lake_bytes, index_bytes, peer_item_bytes)


# --- pricing ------------------------------------------------------------------------------------

def phase_of(key: str) -> str:
    return key.split(":", 1)[0]


class Bill:
    """Priced rows (component, counted quantity, USD) and their running total."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.total = 0.0

    def add(self, name: str, quantity: str, usd: float) -> None:
        self.total += usd
        self.rows.append([name, quantity, f"${usd:,.4f}"])


def price_run(run: Run, args: argparse.Namespace) -> tuple[list[list[str]], float]:
    """Rows (component, counted quantity per million events, USD per million) and the total."""
    t, scale = run.tally, 1e6 / run.events
    sweeps_per_million = (86400 / (args.sweep_interval * 60)) / (args.events_per_day / 1e6)
    bill = Bill()
    add = bill.add

    def per_million(counter: Counter[str], phase: str, *, less_fixed: bool = False) -> float:
        """Per million events; `less_fixed`: less what a sweep over nothing new requests from
        S3 anyway (lake state), which is priced per scheduled sweep below."""
        counted = sum(v for k, v in counter.items() if phase_of(k) == phase)
        if less_fixed:
            counted -= sum(v for k, v in counter.items() if phase_of(k) == "sweep (again)")
        return max(0.0, counted) * scale

    s3_puts = Counter({k: v for k, v in t.s3.items() if k.endswith(("PUT", "LIST"))})
    s3_gets = Counter({k: v for k, v in t.s3.items() if k.endswith("GET")})
    for phase in ("ingest", "stream", "sweep (loaded)", "sweep (again)", "compact"):
        wru, rru = per_million(t.wru, phase), per_million(t.rru, phase)
        label = ("sweep again (re-reads the already-archived events in its look-back)"
                 if phase == "sweep (again)" else phase)
        if wru:
            add(f"DynamoDB writes, {label}", f"{wru:,.0f} WRU", wru * PRICE["ddb_wru"])
        if rru:
            add(f"DynamoDB reads, {label}", f"{rru:,.0f} RRU", rru * PRICE["ddb_rru"])
        if phase == "sweep (again)":
            continue  # its S3 requests are the fixed cost of every sweep: below
        puts = per_million(s3_puts, phase, less_fixed=phase == "sweep (loaded)")
        gets = per_million(s3_gets, phase, less_fixed=phase == "sweep (loaded)")
        if puts:
            add(f"S3 PUT/LIST, {phase}", f"{puts:,.0f} requests", puts * PRICE["s3_put"])
        if gets:
            add(f"S3 GET, {phase}", f"{gets:,.0f} requests", gets * PRICE["s3_get"])
    again = "sweep (again)"
    fixed_put = sum(v for k, v in s3_puts.items() if phase_of(k) == again) * sweeps_per_million
    fixed_get = sum(v for k, v in s3_gets.items() if phase_of(k) == again) * sweeps_per_million
    add(f"scheduled sweeps ({sweeps_per_million:,.1f} per million events), S3 lake state",
        f"{fixed_put:,.0f} PUT/LIST + {fixed_get:,.0f} GET",
        fixed_put * PRICE["s3_put"] + fixed_get * PRICE["s3_get"])
    gb_s = t.lambda_seconds * scale * args.lambda_memory / 1024
    invocations = t.lambda_invocations * scale
    add(f"Lambda (stream handler, {args.lambda_memory} MB, Arm)",
        f"{gb_s:,.1f} GB-s, {invocations:,.0f} invocations",
        gb_s * PRICE["lambda_gb_s"] + invocations * PRICE["lambda_request"])
    add("DynamoDB Streams reads (by Lambda)", f"{t.stream_records * scale:,.0f} records", 0.0)
    # Each item, and each index entry, is billed its bytes plus 100 bytes of overhead; an
    # index entry holds the keys and what the index projects, not the whole item.
    entries = 1 + len(t.indexes)
    ddb_gb = 1e6 * (run.item_bytes + run.index_bytes + STORAGE_OVERHEAD_BYTES * entries) / GB
    add(f"DynamoDB storage ({args.retention_days} days retention, table + index entries, "
        f"{STORAGE_OVERHEAD_BYTES} B overhead each)",
        f"{ddb_gb:,.2f} GB for {args.retention_days / 30:.2f} months",
        ddb_gb * args.retention_days / 30 * PRICE["ddb_storage_gb_month"])
    s3_gb = run.lake_bytes * scale / GB
    add("S3 storage (compacted Parquet), per month kept", f"{s3_gb:,.3f} GB",
        s3_gb * PRICE["s3_storage_gb_month"])
    return bill.rows, bill.total


def price_peer(run: Run, args: argparse.Namespace) -> tuple[list[list[str]], float]:
    """The same events through DynamoDB -> Kinesis Data Streams -> Firehose (Parquet), volumes
    from the same counts: the ingest writes without eventlake's index, one change record per
    event the size of the stream records counted, a stream open all day."""
    t, scale = run.tally, 1e6 / run.events
    table_wru = sum(v for k, v in t.wru.items() if k == "ingest: table") * scale
    record = t.stream_bytes / max(1, t.stream_records)
    kib, five_kib = math.ceil(record / 1024), math.ceil(record / 5120) * 5
    bill = Bill()
    add = bill.add

    add("DynamoDB writes, ingest (table only)", f"{table_wru:,.0f} WRU",
        table_wru * PRICE["ddb_wru"])
    add("Kinesis Data Streams for DynamoDB (change data capture units, 1 KB each)",
        f"{1e6 * kib:,.0f} CDC units", 1e6 * kib * PRICE["ddb_kds_cdc_unit"])
    gb_in = 1e6 * kib * 1024 / GB
    add("Kinesis Data Streams on-demand, data in (1 KB steps)", f"{gb_in:,.2f} GB",
        gb_in * PRICE["kds_in_gb"])
    add("Kinesis Data Streams on-demand, read by Firehose", f"{gb_in:,.2f} GB",
        gb_in * PRICE["kds_out_gb"])
    hours = 24 / (args.events_per_day / 1e6)
    add("Kinesis Data Streams on-demand, stream hours", f"{hours:,.1f} h",
        hours * PRICE["kds_stream_hour"])
    fh_gb = 1e6 * five_kib * 1024 / GB
    add("Firehose ingestion (5 KB steps)", f"{fh_gb:,.2f} GB", fh_gb * PRICE["firehose_in_gb"])
    add("Firehose format conversion to Parquet (5 KB steps)", f"{fh_gb:,.2f} GB",
        fh_gb * PRICE["firehose_convert_gb"])
    ddb_gb = 1e6 * ((run.peer_item_bytes or run.item_bytes) + STORAGE_OVERHEAD_BYTES) / GB
    add(f"DynamoDB storage ({args.retention_days} days retention, table only, items without "
        f"eventlake's index attributes, {STORAGE_OVERHEAD_BYTES} B overhead)",
        f"{ddb_gb:,.2f} GB", ddb_gb * args.retention_days / 30 * PRICE["ddb_storage_gb_month"])
    s3_gb = run.lake_bytes * scale / GB
    add("S3 storage (taken equal to eventlake's compacted Parquet), per month kept",
        f"{s3_gb:,.3f} GB", s3_gb * PRICE["s3_storage_gb_month"])
    return bill.rows, bill.total


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=2000, help="events in the counted run (2000)")
    p.add_argument("--event-size", type=int, default=500,
                   help="bytes of JSON payload per event (500)")
    p.add_argument("--retention-days", type=int, default=7, help="hot-table retention (7)")
    p.add_argument("--sweep-interval", type=float, default=15.0,
                   help="minutes between scheduled sweeps (15)")
    p.add_argument("--events-per-day", type=float, default=1e6,
                   help="rate that spreads per-sweep and per-hour costs (1,000,000)")
    p.add_argument("--lambda-memory", type=int, default=1024, help="stream Lambda MB (1024)")
    return p.parse_args(argv)


def report(run: Run, args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    ours, ours_total = price_run(run, args)
    peer, peer_total = price_peer(run, args)
    t = run.tally
    query_s3 = Counter({k.split(": ")[1]: v for k, v in t.s3.items() if phase_of(k) == "queries"})
    query_rru = sum(v for k, v in t.rru.items() if phase_of(k) == "queries")
    calls = ", ".join(f"{k} {v}" for k, v in sorted(t.calls.items()))
    s3 = ", ".join(f"{k} {v}" for k, v in sorted(t.s3.items()))
    text = (
        f"### Cost per million events (us-east-1 on-demand list prices of {PRICES_DATE}; "
        f"counted run of {run.events:,} events on moto, ~{args.event_size} B payloads, "
        f"items ~{run.item_bytes:,.0f} B, sweep every {args.sweep_interval:g} min, "
        f"{args.events_per_day:,.0f} events/day)\n\n"
        + markdown(["eventlake", "per million events", "USD"],
                   [*ours, ["**total**", "", f"**${ours_total:,.4f}**"]])
        + "\n\n"
        + markdown(["DynamoDB -> Kinesis Data Streams -> Firehose (Parquet)",
                    "per million events", "USD"],
                   [*peer, ["**total**", "", f"**${peer_total:,.4f}**"]])
        + f"\n\nQueries (not in the totals: they scale with use, not with events): the "
        f"{QUERIES + 1} `EventLake.sql` calls over both tiers of this run made "
        f"{', '.join(f'{v} {k}' for k, v in sorted(query_s3.items()))} S3 requests and read "
        f"{query_rru:,.1f} RRU.\n\nCounted calls: {calls}.\n\n"
        f"S3 requests seen by the server: {s3}.\n\n"
        f"Prices: DynamoDB {DYNAMODB}; S3 {S3}; Lambda {LAMBDA}; Kinesis Data Streams "
        f"{KINESIS}; Firehose {FIREHOSE}. Not counted on either side: data transfer, "
        "CloudWatch logs, the Glue table Firehose's conversion needs, a transform Lambda to "
        "flatten DynamoDB's change records.")
    return text, {"cost_eventlake_usd_per_million": ours_total,
                  "cost_kinesis_firehose_usd_per_million": peer_total}


def run(argv: list[str] | None = None) -> dict[str, float]:
    args = parse(argv if argv is not None else [])
    started = time.perf_counter()
    counted = counted_run(args.events, args.event_size)
    text, results = report(counted, args)
    print(f"\n## cost ({time.perf_counter() - started:.0f} s)\n\n{text}")
    return results


if __name__ == "__main__":
    run(sys.argv[1:])

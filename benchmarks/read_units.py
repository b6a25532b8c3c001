"""DynamoDB read request units per 1,000 events: a sweep and an `events` query, with the
ingestion-time index projecting ALL attributes (before issue 12) and keys only, the sort key
packing what the readers decide by (after: eventlake/hot/index.py); what of it is paid per
sweep run and what per event; the RRU of an event's whole life in the table; and the floor.

    before   a table as `eventlake init` created it until issue 12: index `by_ingested_at`,
             projection ALL, and the sweep's read path before issue 12: the TTL guard queries
             [watermark - skew, now] again after the window read (`_REUSE_WINDOW_READ` off).
             Today's readers on it otherwise read exactly what the old ones read: the same
             Queries, whole items in every entry, nothing fetched (`index.is_whole`). The
             expiry check predates issue 12 (41a0738, "Clock skew"): it read its band through
             the same index, whole items (`read_ingested_pages`), as today's check does on it.
    after    a table as `eventlake init` creates it now: `by_ingested_at_v3`, keys only (`s`,
             and `k`, 53 bytes packing ingested_at, timestamp, expires_at, content_hash);
             whole items fetched (BatchGetItem) only for what the lake lacks; the window read
             runs on to `now` and the TTL guard judges its entries instead of querying that
             range again (archive/sweep.py). Its items carry `s` and `k` (68 more bytes);
             the before table's do not, as before.

Scenario (moto, in process; the same events in both tables), at each volume of VOLUMES:
a watermark 20 minutes before NOW, the events ingested over the next 15 minutes, payloads of
~100 B, ~1 KB (near the real data sets': GitHub Archive events have a median of ~930 B) and
~2 KB; the lake either holds them all (archived: the stream path wrote them, the normal case)
or none (unarchived: the stream path is down, the sweep is the safety net).

    query         `SELECT count(*) FROM events` at NOW (the hot window holds every event)
    sweep         `eventlake archive` at NOW: expiry check (the first: no checkpoint yet, so
                  its band reaches back retention + TTL lateness), window, writes, TTL guard
                  (archive.sweep.sweep and query.views.connect are called with NOW: the reads
                  of `eventlake archive` and `lake.sql`, on a fixed clock)
    next sweep    15 minutes later: the window's look-back (EVENTLAKE_CLOCK_SKEW_SECONDS)
                  reads again the events ingested in the last 10 minutes before the watermark
    expiry sweep  at NOW2 = start + 15 min + retention - ttl_safety_hours, with the watermark
                  and the expiry checkpoint where the sweeps between would have left them: the
                  expiry band [start, start + 15 min) holds exactly these events

Fixed and per-event cost: the units at two volumes give a line per call, the fixed cost of one
run (empty Queries are charged 0.5 each) and the cost per 1,000 more events. An event's whole
life is the per-1,000 cost of the three sweeps, plus that of each `events` query run while it
is in the hot window. After the first sweep both lakes hold every event, so the later sweeps
are measured on the archived lake only. The floor: the index entries the after-sweep read, by
part, and what the same entries would read per 1,000 events in the layouts before
(read_floor.py).

Read units come from the items each call returned, by DynamoDB's sizing rules
(eventlake/hot/capacity.py), counted by a botocore hook on every Query, Scan, GetItem and
BatchGetItem; moto's own ConsumedCapacity is a constant 1.0. Outputs are checked equal (the
query's count, every sweep's counts and the lake's ids) before any unit is printed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

VOLUMES = (1_000, 2_000)
"""Events per run; the first is the volume of the first table (its figures predate the others).
A line through two volumes is exact for costs linear in the volume; what is not (each Query
page rounded up to 4 KB: < 0.5 RRU per non-empty Query) moves a per-1,000 figure by under 1 RRU
(one standard deviation) at this spread. moto spends ~1 ms per item it returns (its response
serializer): 1,000 and 5,000 events took ~2.5 min of CPU a payload size, these ~45 s (~130 s
for the three sizes, on a loaded machine)."""
EVENTS = VOLUMES[0]
PAYLOADS = {"~100 B": 1, "~1 KB": 12, "~2 KB": 24}
"""Payload label -> how many ~85-byte blocks it holds."""
NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
"""The sweep's `now`: a fixed noon, so every window of the scenario stays inside one day and
both volumes make the same Queries."""
INTERVAL = timedelta(minutes=15)
"""The sweep interval; the events are ingested over one."""
CALLS = ("query", "sweep", "next sweep", "expiry sweep")
LATER = ("next sweep", "expiry sweep")
"""Calls measured on the archived lake only (after the first sweep both lakes are alike)."""


class ReadMeter:
    """Read units of every read call made by one boto3 DynamoDB client; `entries` keeps the
    items Queries returned while `keep` is set. The readers call from their thread pools: the
    tallies are updated under a lock (`+=` on a dict entry can lose an update otherwise)."""

    def __init__(self, client: Any) -> None:
        self._lock = threading.Lock()
        self.units: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.keep = False
        self.entries: list[dict[str, Any]] = []
        events = client.meta.events
        for op in ("Query", "Scan", "GetItem", "BatchGetItem"):
            events.register(f"before-parameter-build.dynamodb.{op}", self._before)
            events.register(f"after-call.dynamodb.{op}", self._after)

    def reset(self) -> None:
        self.units.clear()
        self.calls.clear()

    @property
    def total(self) -> float:
        return sum(self.units.values())

    def _before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["eventlake_params"] = dict(params)

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any],
               **_: Any) -> None:
        with self._lock:
            self._tally(context.get("eventlake_params", {}), parsed, model.name)

    def _tally(self, params: dict[str, Any], parsed: dict[str, Any], op: str) -> None:
        from eventlake.hot.capacity import batch_get_units, item_size, query_units

        self.calls[op] += 1
        if op in ("Query", "Scan"):
            self.units[op] += query_units(parsed.get("Items", []),
                                          consistent=bool(params.get("ConsistentRead")))
            if self.keep and op == "Query":
                self.entries.extend(parsed.get("Items", []))
        elif op == "GetItem":
            item = parsed.get("Item")
            units = max(1, -(-item_size(item) // 4096)) if item else 1
            self.units[op] += units if params.get("ConsistentRead") else units / 2
        else:
            for table, request in params.get("RequestItems", {}).items():
                got = parsed.get("Responses", {}).get(table, [])
                left = len(parsed.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
                missing = len(request["Keys"]) - len(got) - left
                self.units[op] += batch_get_units(got, missing,
                                                  consistent=bool(request.get("ConsistentRead")))


def legacy_table(lake: Any) -> None:
    """The table `eventlake init` created before issue 12 (its CreateTable, verbatim but for
    the tags helper)."""
    from eventlake.hot.index import LEGACY_INDEX_NAME
    from eventlake.hot.tablesettings import tags_for

    ddb = lake.clients.dynamodb
    ddb.create_table(
        TableName=lake.settings.table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                              for a in ("event_id", "ingest_shard", "ingest_key")],
        KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{
            "IndexName": LEGACY_INDEX_NAME,
            "KeySchema": [{"AttributeName": "ingest_shard", "KeyType": "HASH"},
                          {"AttributeName": "ingest_key", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        Tags=[{"Key": "app", "Value": "eventlake"}, *tags_for(lake.settings)])


def events(count: int, blocks: int, start: datetime) -> list[tuple[Any, datetime]]:
    from eventlake.events.model import parse_event

    step = INTERVAL / count
    out = []
    for i in range(count):
        ingested = start + step * i
        raw = {"event_id": f"ev-{uuid.UUID(int=i * 0x9E3779B97F4A7C15 % 2**128)}",
               "event_type": ("page_viewed", "cart_updated", "order_placed")[i % 3],
               "timestamp": (ingested - timedelta(seconds=i % 50)).isoformat(),
               "source": "shop.web", "subject": f"user-{i % 997:04d}",
               "event_payload": {"lines": [{"sku": f"sku-{i % 400}-{j}", "qty": j + 1,
                                            "note": "gift wrap, leave at the door"}
                                           for j in range(blocks)]}}
        out.append((parse_event(raw, now=ingested), ingested))
    return out


def open_lake(kind: str, table: str, lake_dir: Path, *, create: bool) -> tuple[Any, ReadMeter]:
    """A lake on `table` (`kind`: before/after), creating the table when `create`."""
    from eventlake import EventLake, Settings

    lake_dir.mkdir()
    lake = EventLake(Settings.from_env(table=table, lake_uri=str(lake_dir)))
    if kind == "after":
        lake.init()  # on an existing table: nothing to change
    else:
        if create:
            legacy_table(lake)
        lake.cold.create_marker(table=table)  # not init: it would migrate the old index
    return lake, ReadMeter(lake.clients.dynamodb)


def fill(lake: Any, count: int, blocks: int, *, keys: bool) -> list[Any]:
    """`count` events in the table, ingested over [NOW - 20 min, NOW - 5 min); their items,
    without the index keys `s` and `k` unless `keys` (the before table's writer had none)."""
    start = NOW - timedelta(minutes=20)
    items = [lake.hot.to_item(event, at) for event, at in events(count, blocks, start)]
    if not keys:
        items = [{n: v for n, v in item.items() if n not in ("s", "k")} for item in items]
    ddb = lake.clients.dynamodb
    for i in range(0, len(items), 25):
        ddb.batch_write_item(RequestItems={lake.settings.table: [
            {"PutRequest": {"Item": item}} for item in items[i:i + 25]]})
    return items


def life(lake: Any, meter: ReadMeter, kind: str, calls: tuple[str, ...]
         ) -> tuple[dict[str, tuple[float, int]], dict[str, Any]]:
    """Run `calls` in order on `lake`: call -> (read units, Query calls), call -> output."""
    from eventlake.archive import sweep as sweep_module
    from eventlake.lake.watermark import (
        EXPIRY_CHECK_KEY,
        WATERMARK_KEY,
        advance_watermark,
        read_watermark,
    )
    from eventlake.query.views import connect

    settings = lake.hot.table_settings()
    start = NOW - timedelta(minutes=20)
    later = (start + INTERVAL + timedelta(seconds=settings.retention_seconds)
             - timedelta(hours=settings.ttl_safety_hours))  # NOW2: band_end = start + 15 min

    def query() -> Any:
        con = connect(lake, now=NOW)
        try:
            return con.sql("SELECT count(*) FROM events").fetchall()
        finally:
            con.close()

    def sweep(now: datetime) -> Any:
        sweep_module._REUSE_WINDOW_READ = kind == "after"
        try:
            report = sweep_module.sweep(lake.cold, lake.hot, lake.settings, now=now,
                                        settle_seconds=0)
        finally:
            sweep_module._REUSE_WINDOW_READ = True
        assert report.expiry is not None  # every sweep runs the expiry check
        c, e = report.counts, report.expiry.counts
        return (c.read, c.archived, c.already, e.read, e.archived, e.already,
                report.ttl.unarchived, report.ttl.at_risk)

    def expiry_sweep() -> Any:
        # where the sweeps every INTERVAL until `later` would have left the marks (each
        # over its own events, which these tables do not hold)
        for key, to in ((WATERMARK_KEY, later - INTERVAL), (EXPIRY_CHECK_KEY, start)):
            advance_watermark(lake.cold, to, expected=read_watermark(lake.cold, key),
                              run_id="rru-between", key=key)
        meter.reset()  # reading the marks is no DynamoDB read; start clean anyway
        return sweep(later)

    run = {"query": query, "sweep": lambda: sweep(NOW),
           "next sweep": lambda: sweep(NOW + INTERVAL), "expiry sweep": expiry_sweep}
    units: dict[str, tuple[float, int]] = {}
    outputs: dict[str, Any] = {}
    for call in calls:
        meter.reset()
        meter.keep = kind == "after" and call == "sweep"
        outputs[call] = run[call]()
        meter.keep = False
        units[call] = (meter.total, meter.calls.get("Query", 0))
    outputs["ids"] = sorted(lake.cold.read(columns=["event_id"])["event_id"].to_pylist())
    return units, outputs


def measure(blocks: int, count: int, root: Path
            ) -> tuple[dict[tuple[str, str], dict[str, tuple[float, int]]], list[Any], float]:
    """(state, kind) -> call -> (read units, Query calls) at `count` events of `blocks`, the
    index entries the after-sweep read on the archived lake, and how many times the sweeps
    read each event (window, look-back, expiry check)."""
    from eventlake.archive.writer import archive_items
    from eventlake.lake.watermark import advance_watermark

    units: dict[tuple[str, str], dict[str, tuple[float, int]]] = {}
    outputs: dict[tuple[str, str], dict[str, Any]] = {}
    entries: list[Any] = []
    for kind in ("before", "after"):
        table = f"rru-{kind}-{blocks}-{count}"
        items: list[Any] = []
        for state in ("archived", "unarchived"):
            lake, meter = open_lake(kind, table, root / f"{table}-{state}", create=not items)
            items = items or fill(lake, count, blocks, keys=kind == "after")
            advance_watermark(lake.cold, NOW - timedelta(minutes=20), expected=None,
                              run_id="bench", now=NOW)
            if state == "archived":
                archive_items(lake.cold, items, name="stream-000-999", source="stream")
            calls = CALLS if state == "archived" else tuple(c for c in CALLS if c not in LATER)
            units[state, kind], outputs[state, kind] = life(lake, meter, kind, calls)
            if kind == "after" and state == "archived":
                entries = meter.entries
    for state in ("archived", "unarchived"):
        before, after = outputs[state, "before"], outputs[state, "after"]
        if before != after:
            diff = {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}
            raise AssertionError(f"{state}, {count} events: outputs differ (before, after): "
                                 f"{ {k: v for k, v in diff.items() if k != 'ids'} }")
        if after["query"] != [(count,)] or len(after["ids"]) != count:
            raise AssertionError(f"expected {count} events, got {after['query']}, "
                                 f"{len(after['ids'])} in the lake")
    archived = outputs["archived", "after"]
    # every event read by the expiry check, none of them unarchived by then
    if archived["expiry sweep"][3:6] != (count, 0, count):
        raise AssertionError(f"the expiry sweep read {archived['expiry sweep']}, "
                             f"not all {count} events, archived")
    reads = (archived["sweep"][0] + archived["next sweep"][0] + archived["expiry sweep"][3])
    return units, entries, reads / count


def line(points: dict[int, float]) -> tuple[float, float]:
    """(fixed per run, per 1,000 events) through the first and last volume's units."""
    (x0, y0), (x1, y1) = ((v, points[v]) for v in (VOLUMES[0], VOLUMES[-1]))
    slope = (y1 - y0) / (x1 - x0)
    return y0 - slope * x0, slope * 1000


def ratio(before: float, after: float) -> str:
    return f"{before / after:,.1f}x" if after else "inf"


Key = tuple[str, str, str, str]
"""(payload, state, call, kind)."""


@dataclass
class Measured:
    """What a run measured: units per key and volume, the Query calls at EVENTS, the index
    entries the after-sweep read, and how many times the sweeps read each event."""

    units: dict[Key, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    queries: dict[Key, int] = field(default_factory=dict)
    entries: list[Any] = field(default_factory=list)
    reads: float = 0.0

    def per_1000(self, key: Key) -> float:
        """Units per 1,000 events at EVENTS (the first table)."""
        return self.units[key][EVENTS] * 1000 / EVENTS

    def queries_of(self, label: str, state: str, call: str) -> str:
        return (f"{self.queries[label, state, call, 'before']} / "
                f"{self.queries[label, state, call, 'after']}")

    def lines(self) -> dict[Key, tuple[float, float]]:
        return {key: line(points) for key, points in self.units.items()}


def collect() -> Measured:
    from moto import mock_aws

    out = Measured()
    root = Path(tempfile.mkdtemp(prefix="eventlake-rru-"))
    try:
        with mock_aws():
            for label, blocks in PAYLOADS.items():
                for count in VOLUMES:
                    measured, entries, out.reads = measure(blocks, count, root)
                    out.entries = out.entries or entries
                    for (state, kind), by_call in measured.items():
                        for call, (rru, queries) in by_call.items():
                            out.units[label, state, call, kind][count] = rru
                            if count == EVENTS:
                                out.queries[label, state, call, kind] = queries
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def print_table(header: list[str], rows: list[list[str]], left: int) -> None:
    """`rows` under `header`, the first `left` columns left-aligned, the others right."""
    from eventlake.query.table import aligned

    for text in aligned(header, rows, [i >= left for i in range(len(header))]):
        print(text)


def per_call(m: Measured, summary: dict[str, float]) -> None:
    rows: list[list[str]] = []
    for label in PAYLOADS:
        for state in ("archived", "unarchived"):
            for call in ("query", "sweep"):
                b, a = (m.per_1000((label, state, call, k)) for k in ("before", "after"))
                rows.append([label, state, call, f"{b:,.1f}", f"{a:,.1f}", ratio(b, a),
                             m.queries_of(label, state, call) if call == "sweep" else ""])
                summary[f"rru_{call}_{state}_{label.strip('~ ')}_before"] = b
                summary[f"rru_{call}_{state}_{label.strip('~ ')}_after"] = a
    print_table(["payload", "events", "call", "RRU before (ALL)", "RRU after (keys only)",
                 "before/after", "sweep Queries b / a"], rows, 3)
    print("(before/after > 1: the projected index reads less; < 1: it reads more. Unarchived "
          "events are fetched whole by BatchGetItem, which rounds each item up to 4 KB)")


def fixed_and_marginal(m: Measured, lines: dict[Key, tuple[float, float]]) -> None:
    rows = []
    for label in PAYLOADS:
        for state in ("archived", "unarchived"):
            for call in CALLS:
                if state == "unarchived" and call in LATER:
                    continue
                (fb, sb), (fa, sa) = (lines[label, state, call, k] for k in ("before", "after"))
                rows.append([label, state, call, f"{fb:,.1f}", f"{fa:,.1f}", ratio(fb, fa),
                             f"{sb:,.1f}", f"{sa:,.1f}", ratio(sb, sa),
                             m.queries_of(label, state, call)])
    print(f"\n### fixed cost per run and cost per 1,000 more events (a line through "
          f"{VOLUMES[0]:,} and {VOLUMES[-1]:,} events ingested over the same 15 minutes)")
    print_table(["payload", "events", "call", "fixed before", "fixed after", "b/a",
                 "per 1,000 before", "per 1,000 after", "b/a", "Queries b / a"], rows, 3)
    print("(fixed: RRU of one run whatever the volume, mostly Queries of empty (day, shard) "
          "ranges at the 0.5 minimum; the first sweep's expiry check has no checkpoint yet and "
          "reads back retention + TTL lateness. Next/expiry sweeps: archived lake only)")


def lifetime(lines: dict[Key, tuple[float, float]], summary: dict[str, float]
             ) -> dict[str, float]:
    """Print the lifetime table; returns payload -> the before path's archived lifetime."""
    def slopes(label: str, state: str, kind: str, calls: tuple[str, ...]) -> float:
        return sum(lines[label, "archived" if c in LATER else state, c, kind][1]
                   for c in calls)

    rows = []
    before_life = {}
    for label in PAYLOADS:
        for state in ("archived", "unarchived"):
            life_b, life_a = (slopes(label, state, k, ("sweep", *LATER))
                              for k in ("before", "after"))
            q_b, q_a = (slopes(label, state, k, ("query",)) for k in ("before", "after"))
            rows.append([label, state, f"{life_b:,.1f}", f"{life_a:,.1f}", ratio(life_b, life_a),
                         f"{q_b:,.1f}", f"{q_a:,.1f}", f"{life_b + q_b:,.1f}",
                         f"{life_a + q_a:,.1f}", ratio(life_b + q_b, life_a + q_a)])
            key = f"rru_life_{state}_{label.strip('~ ')}"
            summary[f"{key}_before"], summary[f"{key}_after"] = life_b, life_a
            if state == "archived":
                before_life[label] = life_b
    print("\n### an event's whole life: RRU per 1,000 events (the per-1,000 cost of every "
          "sweep that reads them, and of each `events` query while they are hot)")
    print_table(["payload", "events", "3 sweeps before", "after", "b/a", "+ each query before",
                 "after", "with 1 query before", "after", "b/a"], rows, 2)
    print("(3 sweeps: the one that archives them (and, before, its guard's re-read of the last "
          "10 minutes), the next one's look-back over the last 10 minutes before the watermark "
          "(a third of these events), and the expiry check ttl_safety_hours before TTL. The "
          "fixed costs of the table above are paid per run, whatever the volume)")
    return before_life


def run() -> dict[str, float]:
    from benchmarks.read_floor import floor

    for key, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(key, value)
    print(f"\n## read_units: DynamoDB read request units per 1,000 events ({EVENTS:,} events; "
          "by DynamoDB's sizing rules, from the items each call returned)")
    m = collect()
    summary: dict[str, float] = {}
    per_call(m, summary)
    lines = m.lines()
    fixed_and_marginal(m, lines)
    before_life = lifetime(lines, summary)
    sweep_before = {label: lines[label, "archived", "sweep", "before"][1] for label in PAYLOADS}
    parts, rows, floor_summary = floor(m.entries, m.reads, before_life, sweep_before)
    summary.update(floor_summary)
    print(f"\n### the floor: the {len(m.entries):,} index entries the after-sweep read "
          "(mean bytes by DynamoDB's sizing rules, attribute names included)")
    print_table(["part", "bytes"], parts, 1)
    print()
    print_table(["RRU per 1,000 events, index entries", "per read",
                 f"life ({m.reads:.2f} reads)"], rows, 1)
    print("(a read of a keys-only index costs its keys: the table key and the index keys; "
          "DESIGN.md's keys repeat the event id, this index's do not. Each read of an event's "
          "life pays it once; the fixed per-run costs come on top)")
    return summary


if __name__ == "__main__":
    run()

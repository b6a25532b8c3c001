"""`eventlake demo`: the whole job on the embedded local stack, narrated step by step.

Starts moto's server on loopback, points every client at it through AWS_ENDPOINT_URL, and runs
the code a deployment runs: provision, ingest (put_many and the ingest Lambda, with retries,
conflicts and bad events mixed in), read back by ingestion window, archive through the table's
stream and the stream Lambda into Parquet, sweep, reconcile, query, TTL, compaction, replay,
export, status. The lake and the outputs stay in a folder (`./demo-lake` by default) and the demo
ends with the commands to query, replay and export it next; `--temp` puts the lake on moto's S3
instead (gone with the demo). What it prints comes from the reports it got (`demo_story`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from eventlake.api import EventLake
    from eventlake.replay.batch import Batch

EVENT_TYPES = ("page_viewed", "product_added_to_cart", "checkout_started", "order_placed",
               "payment_failed")
PRODUCTS = (("sku-1001", "Café au lait mug", Decimal("12.50")),
            ("sku-1002", "Über-soft hoodie", Decimal("54.99")),
            ("sku-1003", "東京 tote bag", Decimal("19.90")),
            ("sku-1004", "Trail socks (3 pairs)", Decimal("14.00")))
_PREFECT_WAIT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


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


def cmd_demo(args: argparse.Namespace) -> int:
    given = [flag for flag, value in (("--table", getattr(args, "table", None)),
                                      ("--lake-uri", getattr(args, "lake_uri", None))) if value]
    if given:
        from eventlake.errors import ConfigError

        raise ConfigError(
            f"`eventlake demo` takes no {' or '.join(given)}: it makes its own table on an "
            "embedded local stack, gone when it ends; --keep DIR chooses where the lake stays "
            "(default ./demo-lake), --temp keeps nothing")
    return run_demo(events=args.events, keep=None if args.temp else args.keep)


def run_demo(*, events: int = 2000, keep: str | None = None) -> int:
    """Run the demo; `keep` writes the lake and the outputs to that local folder (kept; a folder
    an earlier demo made is emptied first), else the lake goes to moto's S3."""
    from eventlake.api import EventLake
    from eventlake.cli.demo_story import (
        StreamReports,
        archive_line,
        next_commands,
        prepare_folder,
        ttl_lines,
    )
    from eventlake.cli.status import print_status
    from eventlake.config import Settings, redact_url
    from eventlake.handlers import ingest, stream
    from eventlake.hot.results import count_outcomes
    from eventlake.lake.store import Lake
    from eventlake.local.stack import StreamPoller, expire_ttl, local_stack

    def step(title: str) -> None:
        print(f"\n== {title}")

    started = time.perf_counter()
    kept = prepare_folder(Path(keep).resolve()) if keep else None
    lake_uri = str(kept / "lake") if kept else "s3://eventlake-demo/lake"
    # The flows configure themselves from the environment, as on a Prefect worker.
    env = {"EVENTLAKE_TABLE": "eventlake-demo", "EVENTLAKE_LAKE_URI": lake_uri}
    if "PREFECT_SERVER_ANALYTICS_ENABLED" not in os.environ:
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    if _PREFECT_WAIT not in os.environ:
        # Prefect waits 20 s for its temporary server; on a busy 2-core machine it took longer
        # and the demo died at the sweep step ("Timed out while attempting to connect to
        # ephemeral Prefect API server"). The variable reaches a process that imports Prefect
        # later (`eventlake demo`); `_prefect_wait` sets the setting itself at the sweep step
        # for a process that imported Prefect before (a notebook, a test), as it does a
        # wait the user set.
        env[_PREFECT_WAIT] = "120"
    with local_stack() as stack, _scoped(env), _level_kept(logging.getLogger("eventlake")):
        print(f"local stack: moto server at {redact_url(stack.endpoint_url)} "
              "(AWS_ENDPOINT_URL)")
        settings = Settings.from_env()
        lake = EventLake(settings)

        step("init: provision the table (stream, TTL, ingestion-time index) and the lake")
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

        retried = batch[:100]
        step(f"retry the first {len(retried)} through the ingest Lambda (API Gateway HTTP API "
             "event)")
        ingest.reset(lake)
        reply = ingest.handler(_apigw_request(retried), None)
        print(f"  HTTP {reply['statusCode']}: {_counts(json.loads(reply['body'])['counts'])}")

        step("a changed payload under a stored id, and two broken events")
        tampered = {**batch[0], "event_payload": {"tampered": True}}
        broken = [{"event_type": "order_placed", "timestamp": "yesterday"},
                  {"event_id": "x-1", "event_type": "", "event_payload": {}}]
        for result in lake.put_many([tampered, *broken]):
            print(f"  {result.outcome.value}: {result.message}")

        step("read back everything ingested in the last hour (index queries, no scan)")
        now = datetime.now(UTC)
        read = [item["event_id"]["S"]
                for item in lake.hot.read_ingested(now - timedelta(hours=1),
                                                   now + timedelta(seconds=1))]
        ids = set(read)
        print(f"  {len(read):,} items read, {len(ids):,} distinct; each sent event stored "
              f"once: {len(read) == len(ids) and ids == {e['event_id'] for e in batch}}")

        step("archive: the table's stream -> the stream Lambda -> Parquet "
             "(local event source mapping)")
        cold = Lake(settings)
        stream.reset(cold)
        t0 = time.perf_counter()
        poller = StreamPoller(lake.clients, settings.table, stream.handler, batch_size=1000)
        with StreamReports() as first:
            poller.poll_once()
        positions = poller.positions
        print(f"  {archive_line(first.total())}; {time.perf_counter() - t0:.1f} s")

        step(f"the lake at {lake_uri}")
        files = cold.list_files()
        for f in files:
            print(f"  {f.path.removeprefix(lake_uri.rstrip('/') + '/')}  "
                  f"{f.size / 1024:,.1f} KiB")
        archived = cold.read(columns=["event_id"]).column("event_id").to_pylist()
        print(f"  {len(files)} file(s), {len(archived):,} rows; every stored event archived "
              f"once: {sorted(archived) == sorted(ids)}")

        step("sweep: the archive flow on Prefect's engine (catches what the stream missed)")
        late = [{"event_id": f"late-{i}", "event_type": "page_viewed",
                 "timestamp": (now - timedelta(days=5, minutes=i)).isoformat(),
                 "event_payload": {"note": "arrived 5 days late, stream Lambda was down"}}
                for i in range(25)]
        lake.put_many(late)  # ingested now; the stream path is not polled for these
        from flows.archive import archive

        with _prefect_wait(os.environ.get(_PREFECT_WAIT)):
            swept = archive(settle_seconds=0)
        logging.getLogger("eventlake").setLevel(logging.WARNING)  # Prefect routed INFO to stdout
        print(f"  swept {swept['counts']['read']:,} events ingested since the watermark: "
              f"{swept['counts']['archived']:,} archived, {swept['counts']['already']:,} already "
              f"in the lake; watermark {swept['watermark_after']}")

        step("reconcile: every hot event older than the watermark is in the lake, same hash")
        today = datetime.now(UTC).date()
        rec = lake.reconcile(start=today, end=today)
        print(f"  hot {rec.hot:,}, in the lake {rec.cold:,}: lost {rec.lost}, "
              f"different {rec.different}")

        step("query: one SQL view over hot and cold (DuckDB; S3 read through pyarrow, offline)")
        fresh = [{"event_id": f"hot-{i}", "event_type": "order_placed", "subject": "user-0001",
                  "event_payload": {"total": Decimal("19.90")}} for i in range(3)]
        lake.put_many(fresh)  # after the watermark: answered from DynamoDB until swept
        from eventlake.query.views import load_sql

        per_day = lake.sql(load_sql("events_per_type_per_day"))
        print(f"  events_per_type_per_day.sql ({per_day.num_rows} rows, last 6 shown):")
        _print_table(per_day.slice(max(0, per_day.num_rows - 6)))
        tiers = lake.sql("SELECT (SELECT count(*) FROM events_cold) AS cold, "
                         "(SELECT count(*) FROM events_hot) AS hot, "
                         "(SELECT count(*) FROM events) AS events, "
                         "(SELECT count(DISTINCT event_id) FROM events) AS distinct_ids")
        print("  each event once across the tiers (hot rows already archived are dropped):")
        _print_table(tiers)
        print("  arrival_lag_percentiles.sql (the late events show up):")
        _print_table(lake.sql(load_sql("arrival_lag_percentiles")))

        step("TTL: a month later DynamoDB has expired every event (emulated: moto never does)")
        expired = expire_ttl(lake.clients, settings.table,
                             now=now + timedelta(
                                 days=lake.hot.table_settings().retention_days + 1))
        rows_before = cold.read(columns=["event_id"]).num_rows
        with StreamReports() as after_ttl:
            StreamPoller(lake.clients, settings.table, stream.handler, batch_size=1000,
                         positions=positions).poll_once()
        for line in ttl_lines(len(expired), after_ttl.total(), rows_before,
                              cold.read(columns=["event_id"]).num_rows):
            print(f"  {line}")

        step("compact: merge each day's small files into one, duplicates dropped")
        report = lake.compact(min_files=2)
        print(f"  {report.files_in} files -> {report.files_out} "
              f"({len(report.partitions)} partitions, {report.duplicates_dropped} duplicates "
              "dropped)")

        step("replay: the last 7 days in (timestamp, event_id) order to a JSONL file, "
             "interrupted, then resumed")
        folder = kept or Path(tempfile.mkdtemp(prefix="eventlake-"))
        _replay_interrupted(lake, folder, now)

        step("export: the same week to a DuckDB file for BI tools, opened as one would")
        _export_for_bi(lake, folder, now)

        step("the verdict: the lake against everything ever accepted")
        final = cold.read(columns=["event_id"]).column("event_id").to_pylist()
        accepted = ids | {e["event_id"] for e in late} | {e["event_id"] for e in fresh}
        print(f"  accepted {len(accepted):,}, in the lake {len(final):,} rows: "
              f"lost {len(accepted - set(final))}, doubled {len(final) - len(set(final))}")

        step("status")
        print_status(lake.status())
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s")
    if kept:
        step(f"next: the lake stays in {kept / 'lake'}; in a new shell, from this folder, try")
        for line in next_commands(kept / "lake", datetime.now(UTC).date()):
            print(f"  {line}")
    return 0


@contextmanager
def _scoped(env: dict[str, str]) -> Iterator[None]:
    """`env` set in os.environ while inside; each variable back as it was on the way out, also
    when a step raised (the demo also runs in-process: EventLake's users, the tests)."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _prefect_wait(seconds: str | None) -> Iterator[None]:
    """Prefect's own setting for its temporary server's start-up wait at `seconds` while inside
    (the variable's value: the demo's 120 or the user's own). Prefect reads its variables when
    it is first imported, so a variable set after that, in a notebook or a test, is not seen:
    this sets the setting. A value that is not whole seconds is left to Prefect to judge."""
    if seconds is None or not seconds.strip().isdigit():
        yield
        return
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as WAIT
    from prefect.settings import temporary_settings

    with temporary_settings(updates={WAIT: int(seconds)}):
        yield


@contextmanager
def _level_kept(logger: logging.Logger) -> Iterator[None]:
    """`logger`'s level back as it was on the way out (the demo quietens it after Prefect)."""
    level = logger.level
    try:
        yield
    finally:
        logger.setLevel(level)


class _Crash(Exception):
    """The demo's stand-in for a killed process."""


def _export_for_bi(lake: EventLake, folder: Path, now: datetime) -> None:
    """Export a week to `folder`/bi.duckdb, then open the file as a BI tool would (alone, read
    only) and print what it holds: its views and one typed view's columns and totals."""
    import duckdb

    from eventlake.replay.select import Selection

    out = folder / "bi.duckdb"
    report = lake.export(Selection(now - timedelta(days=7), now + timedelta(minutes=1)), out,
                         format="duckdb", overwrite=True)
    print(f"  {report.summary()}")
    con = duckdb.connect(str(out), read_only=True)
    try:
        views = [name for (name,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name"
        ).fetchall()]
        typed = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'ev_order_placed' AND column_name NOT IN "
            "('event_id', 'event_type', 'timestamp', 'dt', 'source', 'subject', 'ingested_at') "
            "ORDER BY ordinal_position").fetchall()
        orders, total = con.execute(
            "SELECT count(*), round(sum(total), 2) FROM ev_order_placed").fetchall()[0]
    finally:
        con.close()
    print(f"  views in the file: {', '.join(views)}")
    print(f"  ev_order_placed's payload columns: "
          f"{', '.join(f'{c} {t}' for c, t in typed)}; {orders:,} orders, sum(total) {total}")


def _replay_interrupted(lake: EventLake, folder: Path, now: datetime) -> None:
    """Replay a week to `folder`/replay.jsonl, stop it in its third batch (written, not yet
    checkpointed), run it again with the same checkpoint, and compare the file with `events`."""
    from eventlake.replay.select import Selection
    from eventlake.replay.targets import JsonlTarget

    class CrashInThirdBatch(JsonlTarget):
        sent = 0

        def send(self, batch: Batch) -> int | None:
            offset = super().send(batch)
            self.sent += 1
            if self.sent == 3:
                raise _Crash  # the batch is in the file; the checkpoint does not know it
            return offset

    selection = Selection(now - timedelta(days=7), now + timedelta(minutes=1))
    out, checkpoint = folder / "replay.jsonl", folder / "replay.checkpoint.json"
    checkpoint.unlink(missing_ok=True)
    count = lake.sql("SELECT count(*) FROM events WHERE timestamp >= $start AND timestamp < $end",
                     {"start": selection.from_ts, "end": selection.to_ts}).column(0)[0].as_py()
    size = max(1, -(-int(count) // 8))  # about 8 batches, so the crash in the third is mid-way
    target = CrashInThirdBatch(out)
    crashed = False
    try:
        lake.replay(selection, target, batch_size=size, checkpoint=checkpoint)
    except _Crash:
        crashed = True
    lines = out.read_bytes().count(b"\n")
    print(f"  run 1 {'stopped in' if crashed else 'was not stopped: it ended after'} batch "
          f"{target.sent} of {size:,} events: {lines:,} lines in the file, the checkpoint at "
          f"{json.loads(checkpoint.read_text())['count']:,} events")
    report = lake.replay(selection, f"jsonl:{out}", batch_size=size, checkpoint=checkpoint)
    print(f"  run 2, same command: {report.summary()}")
    got = [json.loads(line)["event_id"] for line in out.read_text().splitlines()]
    expected = lake.sql("SELECT event_id FROM events WHERE timestamp >= $start AND "
                        "timestamp < $end ORDER BY timestamp, event_id",
                        {"start": selection.from_ts, "end": selection.to_ts})
    print(f"  {out}: {len(got):,} lines; the same events as `events`, in (timestamp, "
          f"event_id) order, each once: {got == expected.column(0).to_pylist()}")


def _apigw_request(events: list[dict[str, Any]]) -> dict[str, Any]:
    """An API Gateway HTTP API (v2) proxy event carrying `events` as its JSON body."""
    from eventlake.events.canonical import canonical_json

    return {"version": "2.0", "routeKey": "POST /events", "rawPath": "/events",
            "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/events"},
                               "requestId": "demo-request", "stage": "$default"},
            "body": canonical_json(events), "isBase64Encoded": False}


def _print_table(result: pa.Table) -> None:
    """An Arrow table as aligned text, indented under the demo's step (floats to 0.1)."""
    from eventlake.query.table import aligned, is_number

    rows = [["" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))
             for v in record.values()] for record in result.to_pylist()]
    for line in aligned(result.column_names, rows, [is_number(t) for t in result.schema.types]):
        print("    " + line)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items() if v) or "nothing"

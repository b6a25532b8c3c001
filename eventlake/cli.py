"""`eventlake` command line: parses arguments, calls the library, prints. Nothing else."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from eventlake.errors import EventLakeError

Command = Callable[[argparse.Namespace], int]
BATCH = 1000
"""Events per put_many call when reading a file: bounded memory, regular progress."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
        return code
    except EventLakeError as exc:
        print(f"eventlake: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eventlake: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        name = type(exc).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            print("eventlake: error: no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID"
                  " (for the local stack: `eventlake demo`)", file=sys.stderr)
        elif name in ("EndpointConnectionError", "ConnectTimeoutError"):
            print(f"eventlake: error: cannot reach AWS ({exc}); check AWS_ENDPOINT_URL / network",
                  file=sys.stderr)
        else:
            print(f"eventlake: error: {name}: {exc} (run with --debug for the traceback)",
                  file=sys.stderr)
        return 2


def _common(*, suppress: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after the command's name. After it they
    default to SUPPRESS, so they never overwrite what was given before it."""
    common = argparse.ArgumentParser(add_help=False)
    absent: dict[str, object] = {"default": argparse.SUPPRESS} if suppress else {}
    common.add_argument("--table", help="DynamoDB table (default: $EVENTLAKE_TABLE)",
                        **absent)  # type: ignore[arg-type]
    common.add_argument("--lake-uri", help="lake root, s3://bucket/prefix or a path "
                                           "(default: $EVENTLAKE_LAKE_URI)",
                        **absent)  # type: ignore[arg-type]
    common.add_argument("--debug", action="store_true", help="show tracebacks",
                        **absent)  # type: ignore[arg-type]
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common(suppress=True)
    parser = argparse.ArgumentParser(
        prog="eventlake", parents=[_common(suppress=False)],
        description="An event lake for AWS: DynamoDB hot tier, Parquet cold tier, SQL over both.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Command, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    add("init", cmd_init, "create the table (and the lake's bucket); safe to run again")

    p = add("put", cmd_put, "store events from JSON / JSONL files or stdin")
    p.add_argument("files", nargs="*", default=["-"],
                   help="JSON (an event, a list, or {\"events\": [...]}) or JSONL; - for stdin")
    p.add_argument("--json", action="store_true", help="print every result as JSON lines")
    p.add_argument("--map", action="append", metavar="FIELD=SOURCE",
                   help="take an event field from another record field, e.g. "
                        "--map event_id=id,event_type=type,timestamp=created_at,"
                        "event_payload=payload (repeatable)")
    p.add_argument("--unmapped", choices=["reject", "payload", "drop"], default="reject",
                   help="with --map: fields not mapped are refused (default), kept inside "
                        "the payload, or dropped")
    p.add_argument("--max-problems", type=int, default=20,
                   help="problems listed before summarising (default 20)")

    p = add("archive", cmd_archive, "sweep: archive what the stream path missed, move the "
                                     "watermark, check the TTL margin")
    p.add_argument("--settle-seconds", type=float, default=None,
                   help="leave events this recent to the stream path (default "
                        "$EVENTLAKE_ARCHIVE_SETTLE_SECONDS; 0 archives everything)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = add("backfill", cmd_backfill, "archive every item of the table (parallel Scan)")
    p.add_argument("--segments", type=int, default=4, help="parallel scan segments (default 4)")

    p = add("compact", cmd_compact, "merge each partition's small files, dropping duplicates")
    p.add_argument("--from", dest="start", type=_date, help="first dt (YYYY-MM-DD)")
    p.add_argument("--to", dest="end", type=_date, help="last dt (YYYY-MM-DD)")
    p.add_argument("--min-files", type=int, default=4,
                   help="compact partitions with at least this many files (default 4)")
    p.add_argument("--target-mb", type=int, default=128, help="output file size (default 128)")

    p = add("reconcile", cmd_reconcile, "check every hot event older than the watermark is in "
                                         "the lake with the same hash")
    p.add_argument("--from", dest="start", type=_date,
                   help="first ingestion day (default: yesterday)")
    p.add_argument("--to", dest="end", type=_date, help="last ingestion day (default: today)")
    p.add_argument("--repair", action="store_true", help="re-archive what is missing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = add("status", cmd_status, "table, stream, TTL and lake state")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = add("sql", cmd_sql, "run SQL over events, events_cold and events_hot (DuckDB)")
    from eventlake.sqlcli import add_arguments as add_sql_arguments

    add_sql_arguments(p)

    p = add("demo", cmd_demo, "run the whole job on an embedded local stack (no AWS account)")
    p.add_argument("--events", type=int, default=2000, help="events to generate (default 2000)")
    p.add_argument("--keep", metavar="DIR",
                   help="write the demo lake to DIR and keep it (default: a temp dir)")
    return parser


def _lake(args: argparse.Namespace) -> Any:
    from eventlake.api import EventLake

    return EventLake.from_env(table=args.table, lake_uri=args.lake_uri)


def cmd_init(args: argparse.Namespace) -> int:
    lake = _lake(args)
    changes = lake.init()
    for change in changes:
        print(f"  {change}")
    print(f"ready: table `{lake.settings.table}`, lake {lake.settings.lake_uri}"
          + ("" if changes else " (nothing to change)"))
    return 0


def cmd_put(args: argparse.Namespace) -> int:
    from eventlake.errors import InvalidEventError
    from eventlake.fieldmap import Unmapped, parse_field_map, remap
    from eventlake.hot import Outcome

    lake = _lake(args)
    mapping = parse_field_map(args.map or [])
    unmapped = Unmapped(args.unmapped)
    totals = dict.fromkeys((o.value for o in Outcome), 0)
    problems: list[str] = []
    read = 0
    for batch in _read_batches(args.files):
        ready: list[tuple[str, Any]] = []  # (where, raw event in the seed shape)
        for n, item in enumerate(batch):
            where = getattr(item, "where", "") or f"event {read + n + 1}"
            if isinstance(item, _Unparseable):
                totals["invalid"] += 1
                problems.append(f"{where}: not JSON ({item.error}) [rule json.unparseable]")
                continue
            try:
                ready.append((where, remap(item, mapping, unmapped)))
            except InvalidEventError as exc:
                totals["invalid"] += 1
                problems.append(f"{where}: invalid: {exc}")
        results = lake.put_many([raw for _, raw in ready]) if ready else []
        for (where, _), result in zip(ready, results, strict=True):
            totals[result.outcome.value] += 1
            if args.json:
                record = {k: v for k, v in result.to_dict().items() if k != "position"}
                print(json.dumps({"input": where, **record}))
            if not result.ok:
                problems.append(f"{where}: {result.outcome.value}: {result.message}")
        read += len(batch)
        if read >= 10 * BATCH:
            print(f"  ... {read:,} events read", file=sys.stderr)
    for line in problems[: args.max_problems]:
        print(f"  {line}", file=sys.stderr)
    if len(problems) > args.max_problems:
        print(f"  ... and {len(problems) - args.max_problems} more problems "
              "(--max-problems N or --json for all)", file=sys.stderr)
    print("  ".join(f"{k} {v}" for k, v in totals.items()))
    return 1 if totals["invalid"] or totals["conflict"] or totals["failed"] else 0


class _Unparseable:
    def __init__(self, where: str, error: str) -> None:
        self.where, self.error = where, error


class _Located(dict[str, Any]):
    """A raw event that remembers where it came from (file:line), for error messages."""

    where: str = ""


def _read_batches(files: Sequence[str]) -> Iterator[list[Any]]:
    """Raw events in batches of BATCH. `.jsonl`/`.ndjson` files stream line by line; other
    inputs are read whole and taken as one JSON document, else as JSON Lines."""
    batch: list[Any] = []
    for name in files:
        label = "stdin" if name == "-" else name
        for item in _read_one(name, label):
            batch.append(item)
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _read_one(name: str, label: str) -> Iterator[Any]:
    from eventlake.events import loads_exact

    if name != "-" and name.endswith((".jsonl", ".ndjson")):
        with Path(name).open(encoding="utf-8-sig") as lines:
            yield from _json_lines(lines, label)
        return
    text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8-sig")
    try:
        whole = loads_exact(text) if text.strip() else []
    except ValueError:
        yield from _json_lines(text.splitlines(), label)
        return
    if isinstance(whole, dict) and set(whole) == {"events"}:
        whole = whole["events"]
    for n, item in enumerate(whole if isinstance(whole, list) else [whole], 1):
        yield _locate(item, f"{label}[{n}]")


def _json_lines(lines: Iterable[str], label: str) -> Iterator[Any]:
    from eventlake.events import loads_exact

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield _locate(loads_exact(line), f"{label}:{lineno}")
        except ValueError as exc:
            yield _Unparseable(f"{label}:{lineno}", str(exc))


def _locate(item: Any, where: str) -> Any:
    if isinstance(item, dict):
        located = _Located(item)
        located.where = where
        return located
    return item


def cmd_status(args: argparse.Namespace) -> int:
    status = _lake(args).status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    _print_status(status)
    return 0


def _print_status(status: dict[str, Any]) -> None:
    hot = status["hot"]
    if not hot.get("exists"):
        print(f"table       {hot['table']}: does not exist (run `eventlake init`)")
    else:
        print(f"table       {hot['table']} ({hot['status']}), "
              f"~{hot['approximate_item_count']:,} items (approximate)")
        print(f"stream      {hot['stream']}")
        print(f"ttl         {hot['ttl']}")
        print(f"index       {hot['index']}")
    print(f"lake        {status['lake_uri']}")
    for key, value in status.items():
        if key not in ("hot", "lake_uri", "region", "endpoint_url"):
            print(f"{key:<11} {value}")
    print(f"aws         region {status['region']}"
          + (f", endpoint {status['endpoint_url']}" if status.get("endpoint_url") else ""))


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a date (YYYY-MM-DD)") from None


def cmd_archive(args: argparse.Namespace) -> int:
    from eventlake.archive import TtlGuardError

    lake = _lake(args)
    try:
        report = lake.archive(settle_seconds=args.settle_seconds)
    except TtlGuardError as exc:
        if exc.report is not None:
            _print_sweep(exc.report, args.json)
        print(f"eventlake: TTL guard: {exc}", file=sys.stderr)
        return 3
    _print_sweep(report, args.json)
    return 0


def _print_sweep(report: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return
    c = report.counts
    print(f"window      {report.since.isoformat()} .. {report.until.isoformat()}")
    print(f"events      {c.read} read, {c.archived} archived, {c.already} already in the lake, "
          f"{c.quarantined} quarantined, {len(c.files)} file(s) written")
    print(f"watermark   {report.watermark_after.isoformat()}")
    if report.beyond_skew:
        ids = ", ".join(report.expiry.beyond_skew_ids[:5])
        print(f"expiry      {report.beyond_skew} event(s) found only by the expiry check, "
              f"stamped beyond the clock skew behind the watermark (e.g. {ids}): check "
              "producer clocks (NTP)")
    margin = report.ttl
    print("ttl margin  " + ("n/a (nothing unarchived)" if margin.hours_left is None else
                            f"{margin.hours_left:.1f} h for {margin.unarchived} unarchived, "
                            f"{margin.at_risk} at risk"))


def cmd_backfill(args: argparse.Namespace) -> int:
    report = _lake(args).backfill(segments=args.segments)
    c = report.counts
    print(f"scanned {report.scanned} items in {report.segments} segments: {c.archived} archived, "
          f"{c.already} already in the lake, {c.quarantined} quarantined "
          f"({report.duration_s:.1f} s)")
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    report = _lake(args).compact(start=args.start, end=args.end, min_files=args.min_files,
                                 target_bytes=args.target_mb * 1024 * 1024)
    for part in report.partitions:
        print(f"  dt={part.dt}: {part.inputs} files -> {len(part.outputs)}, "
              f"{part.duplicates_dropped} duplicates dropped")
    print(f"compacted {len(report.partitions)} partition(s), skipped {report.skipped}: "
          f"{report.files_in} files -> {report.files_out} ({report.duration_s:.1f} s)")
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    end = args.end or datetime.now(UTC).date()
    start = args.start or end - timedelta(days=1)
    report = _lake(args).reconcile(start=start, end=end, repair=args.repair)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(f"{'day':<12}{'hot':>8}{'cold':>8}{'missing':>9}{'different':>11}{'repaired':>10}")
        for d in report.days:
            print(f"{d.day!s:<12}{d.hot:>8}{d.cold:>8}{d.missing:>9}{d.different:>11}"
                  f"{d.repaired:>10}")
        print(f"lost {report.lost}, different {report.different}, repaired {report.repaired}"
              f" (watermark {report.watermark.isoformat() if report.watermark else 'none'})")
        for event_id in report.missing_ids[:20]:
            print(f"  missing   {event_id}", file=sys.stderr)
        for event_id in report.different_ids[:20]:
            print(f"  different {event_id}", file=sys.stderr)
    return 0 if report.ok else 1


def cmd_sql(args: argparse.Namespace) -> int:
    from eventlake.sqlcli import run

    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from eventlake.demo import run_demo

    return run_demo(events=args.events, keep=args.keep)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

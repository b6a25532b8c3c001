"""`eventlake` command line: parses arguments, calls the library, prints. Nothing else."""

from __future__ import annotations

import argparse
import json
import re
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
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        print("eventlake: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        name = type(exc).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            _error("no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID (for the "
                   "local stack: `eventlake demo`)")
        elif name in ("EndpointConnectionError", "ConnectTimeoutError"):
            _error(f"cannot reach AWS ({exc}); check AWS_ENDPOINT_URL / network")
        else:
            _error(f"{name}: {exc} (run with --debug for the traceback)")
        return 2


def _error(message: str) -> None:
    """One line on stderr. AWS and Arrow messages embed the endpoint URL: never its password."""
    from eventlake.config import redact

    print(f"eventlake: error: {redact(message)}", file=sys.stderr)


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
    from eventlake.query.session import add_arguments as add_sql_arguments

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
    from eventlake.errors import InvalidEventError, TableNotFoundError
    from eventlake.events.fieldmap import Unmapped, parse_field_map, remap
    from eventlake.hot.results import TABLE_MISSING, Outcome

    lake = _lake(args)
    mapping = parse_field_map(args.map or [])
    unmapped = Unmapped(args.unmapped)
    totals = dict.fromkeys((o.value for o in Outcome), 0)
    problems: list[str] = []
    read = 0
    for batch in _read_batches(args.files):
        ready: list[tuple[str, Any]] = []  # (where, raw event in the seed shape)
        for where, item in batch:
            if isinstance(item, _Unparseable):
                totals["invalid"] += 1
                problems.append(f"{where}: {item.error} [rule {item.rule}]")
                continue
            try:
                ready.append((where, remap(item, mapping, unmapped)))
            except InvalidEventError as exc:
                totals["invalid"] += 1
                problems.append(f"{where}: invalid: {_unplaced(str(exc))}")
        results = lake.put_many([raw for _, raw in ready]) if ready else []
        missing = next((r for r in results if r.rule == TABLE_MISSING), None)
        if missing is not None:  # every event would say it: say it once, and stop reading
            raise TableNotFoundError(missing.message)
        for (where, _), result in zip(ready, results, strict=True):
            totals[result.outcome.value] += 1
            if args.json:
                record = {k: v for k, v in result.to_dict().items() if k != "position"}
                print(json.dumps({"input": where, **record}))
            if not result.ok:
                problems.append(f"{where}: {result.outcome.value}: {_unplaced(result.message)}")
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


def _unplaced(message: str | None) -> str | None:
    """A result's message without `#N`, the event's place in one put_many call: the reader
    has the file and line instead."""
    return re.sub(r"^event #\d+(: | )", lambda m: "" if m.group(1) == ": " else "event ",
                  message) if message else message


class _Unparseable:
    """A record that is not usable JSON; `error` is what to print."""

    def __init__(self, error: str, rule: str = "json.unparseable") -> None:
        self.error, self.rule = error, rule


_Record = tuple[str, Any]
"""Where a raw event came from (`file:line`, `file[n]`) and the event (or _Unparseable)."""


def _read_batches(files: Sequence[str]) -> Iterator[list[_Record]]:
    """Raw events in batches of BATCH. `.jsonl`/`.ndjson` files stream line by line; other
    inputs are read whole and taken as one JSON document, else as JSON Lines."""
    batch: list[_Record] = []
    for name in files:
        label = "stdin" if name == "-" else name
        for record in _read_one(name, label):
            batch.append(record)
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _read_one(name: str, label: str) -> Iterator[_Record]:
    from eventlake.events.canonical import DuplicateKeyError, loads_exact

    if name != "-" and name.endswith((".jsonl", ".ndjson")):
        with Path(name).open(encoding="utf-8-sig") as lines:
            yield from _json_lines(lines, label)
        return
    text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8-sig")
    try:
        whole = loads_exact(text) if text.strip() else []
    except DuplicateKeyError as exc:  # one valid JSON document, but ambiguous
        yield label, _Unparseable(f"invalid: {exc}, so which value is meant is unknown; nothing "
                                  "from this input was stored: send each key once",
                                  "json.duplicate_key")
        return
    except ValueError:
        # Lines end at "\n" only: str.splitlines also splits at U+2028 and other characters
        # that JSON allows inside strings, which would break records and shift line numbers.
        yield from _json_lines(text.split("\n"), label)
        return
    if isinstance(whole, dict) and set(whole) == {"events"}:
        whole = whole["events"]
    for n, item in enumerate(whole if isinstance(whole, list) else [whole], 1):
        yield f"{label}[{n}]", item


def _json_lines(lines: Iterable[str], label: str) -> Iterator[_Record]:
    from eventlake.events.canonical import DuplicateKeyError, loads_exact

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{label}:{lineno}"
        try:
            yield where, loads_exact(line)
        except DuplicateKeyError as exc:
            yield where, _Unparseable(f"invalid: {exc}, so which value is meant is unknown: "
                                      "send each key once", "json.duplicate_key")
        except ValueError as exc:
            yield where, _Unparseable(f"not JSON ({exc})")


def cmd_status(args: argparse.Namespace) -> int:
    """Prints the status; exits 1, with a line naming what is missing, when the table or
    the lake does not exist."""
    lake = _lake(args)
    status = lake.status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        _print_status(status)
    missing = []
    if not status["hot"].get("exists"):
        missing.append(str(lake.hot.table_not_found()))
    if not status["lake_exists"]:
        missing.append(str(lake.cold.lake_not_found()))
    for message in missing:
        _error(message)
    return 1 if missing else 0


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
    print(f"lake        {status['lake_uri']}"
          + ("" if status.get("lake_exists", True) else ": does not exist (run `eventlake init`)"))
    for key, value in status.items():
        if key not in ("hot", "lake_uri", "lake_exists", "region", "endpoint_url"):
            print(f"{key:<11} {value}")
    print(f"aws         region {status['region']}"
          + (f", endpoint {status['endpoint_url']}" if status.get("endpoint_url") else ""))


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a date (YYYY-MM-DD)") from None


def cmd_archive(args: argparse.Namespace) -> int:
    from eventlake.archive.sweep import TtlGuardError

    lake = _lake(args)
    try:
        report = lake.archive(settle_seconds=args.settle_seconds)
    except TtlGuardError as exc:
        if exc.report is not None:
            _print_sweep(exc.report, args.json)
        print(f"eventlake: TTL guard: {exc}", file=sys.stderr)
        return 3
    _print_sweep(report, args.json)
    return _print_problems(report.problems())


def _print_sweep(report: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return
    c = report.counts
    print(f"window      {report.since.isoformat()} .. {report.until.isoformat()}")
    print(f"events      {c.read} read, {c.archived} archived, {c.already} already in the lake, "
          f"{c.quarantined} quarantined, {c.conflicts} id(s) reused (quarantined), "
          f"{len(c.files)} file(s) written")
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
    return _print_problems([p for p in [c.problem()] if p])


def _print_problems(problems: list[str]) -> int:
    """Say what an operator must look at although everything was archived (reused ids,
    events beyond the clock skew); exit 1 when there is anything."""
    for problem in problems:
        print(f"eventlake: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cmd_compact(args: argparse.Namespace) -> int:
    report = _lake(args).compact(start=args.start, end=args.end, min_files=args.min_files,
                                 target_bytes=args.target_mb * 1024 * 1024)
    for part in report.partitions:
        print(f"  dt={part.dt}: {part.inputs} files -> {len(part.outputs)}, "
              f"{part.duplicates_dropped} duplicates dropped")
    print(f"compacted {len(report.partitions)} partition(s), skipped {report.skipped}: "
          f"{report.files_in} files -> {report.files_out} ({report.duration_s:.1f} s)")
    if report.quarantined:
        print(f"quarantined {report.quarantined} copies of reused event_ids "
              f"({', '.join(report.conflicts[:5])})", file=sys.stderr)
    for failed in report.failed:
        print(f"  dt={failed['dt']} not compacted: {failed['reason']}", file=sys.stderr)
    return 0 if report.ok else 1


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
    from eventlake.query.session import run

    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from eventlake.cli.demo import run_demo

    return run_demo(events=args.events, keep=args.keep)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

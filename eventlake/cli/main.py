"""`eventlake` command line: parses the arguments and runs the command, which calls the library
and prints. The commands live by group: `status` (init, status), `put`, `archive` (archive,
backfill, compact, reconcile), `sql`, `schema`, `replay`, `export`, `catalog`, `demo`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date

from eventlake.cli import catalog, export, replay, schema, sql
from eventlake.cli.archive import cmd_archive, cmd_backfill, cmd_compact, cmd_reconcile
from eventlake.cli.common import error
from eventlake.cli.demo import cmd_demo
from eventlake.cli.put import cmd_put
from eventlake.cli.status import cmd_init, cmd_status
from eventlake.errors import EventLakeError

Command = Callable[[argparse.Namespace], int]


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
        error(str(exc))
        return 2
    except KeyboardInterrupt:
        print("eventlake: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        name = type(exc).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            error("no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID (for the "
                  "local stack: `eventlake demo`)")
        elif name in ("EndpointConnectionError", "ConnectTimeoutError"):
            error(f"cannot reach AWS ({exc}); check AWS_ENDPOINT_URL / network")
        else:
            error(f"{name}: {exc} (run with --debug for the traceback)")
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

    p = add("sql", sql.run, "run SQL over events, events_cold and events_hot (DuckDB)")
    sql.add_arguments(p)

    p = add("schema", schema.run, "the typed view of each event type (ev_<type>) and its fields")
    schema.add_arguments(p)

    p = add("replay", replay.run, "send past events, in order, once, to a target")
    replay.add_arguments(p)

    p = add("export", export.run, "write selected events (or a named query's result over "
                                  "them) to Parquet, CSV, JSON lines or a DuckDB file, locally "
                                  "or on S3, atomically, personal fields dropped or hashed")
    export.add_arguments(p)

    p = add("catalog", catalog.run, "the lake in other engines' catalogs: DDL for Athena, "
                                      "Spark, Trino; registration in AWS Glue")
    catalog.add_arguments(p, [common])

    p = add("demo", cmd_demo, "run the whole job on an embedded local stack (no AWS account)")
    p.add_argument("--events", type=int, default=2000, help="events to generate (default 2000)")
    p.add_argument("--keep", metavar="DIR",
                   help="write the demo lake to DIR and keep it (default: a temp dir)")
    return parser


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a date (YYYY-MM-DD)") from None


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""`eventlake` command line: parses the arguments and runs the command, which calls the library
and prints. The commands live by group: `status` (init, status), `put`, `archive` (archive,
backfill, compact, reconcile), `sql`, `schema`, `replay`, `export`, `catalog`, `demo`.

Start-up is part of every command's answer (`eventlake sql` answers in a fraction of a second),
so this module imports no command module: each subcommand's parser gets its arguments, and
its module is imported, only when that subcommand is the one parsed (`_Lazy`, `_command`).
`python -X importtime -m eventlake.cli.main sql ...` shows what a command pays for."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from eventlake.cli.common import error
from eventlake.errors import EventLakeError

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    used: argparse.ArgumentParser = vars(args).pop(_USED, None) or parser
    if unknown:  # named by the (sub)command's own usage: `usage: eventlake sql ...`
        used.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
        return code
    except EventLakeError as exc:
        error(str(exc))
        _notes(exc)
        return 2
    except KeyboardInterrupt:
        print("eventlake: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        name = type(exc).__name__
        if isinstance(exc, OSError) and exc.filename:  # a local file: name it, not the class
            error(f"cannot use `{exc.filename}`: {exc.strerror or exc}")
        elif name in ("NoCredentialsError", "PartialCredentialsError"):
            error("no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID (for the "
                  "local stack: `eventlake demo`)")
        elif name in ("EndpointConnectionError", "ConnectTimeoutError"):
            error(f"cannot reach AWS ({exc}); check AWS_ENDPOINT_URL / network")
        else:
            error(f"{name}: {exc} (run with --debug for the traceback)")
        _notes(exc)
        return 2


def _notes(exc: BaseException) -> None:
    """What the code that failed added to the error (`add_note`: what a sweep had done before
    it failed, where the watermark stays, which statement), one line each after it."""
    from eventlake.config import redact

    for note in getattr(exc, "__notes__", []):
        print(f"eventlake: note: {redact(str(note))}", file=sys.stderr)


def _common(*, suppress: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after the command's name. After it they
    default to SUPPRESS, so they never overwrite what was given before it."""
    common = argparse.ArgumentParser(add_help=False)
    absent: dict[str, object] = {"default": argparse.SUPPRESS} if suppress else {}
    common.add_argument("--table", help=f"DynamoDB table (default: $EVENTLAKE_TABLE, else "
                                        f"{DEFAULT_TABLE})",
                        **absent)  # type: ignore[arg-type]
    common.add_argument("--lake-uri", help="lake root, s3://bucket/prefix or a path "
                                           f"(default: $EVENTLAKE_LAKE_URI, else "
                                           f"{DEFAULT_LAKE_URI})",
                        **absent)  # type: ignore[arg-type]
    common.add_argument("--debug", action="store_true", help="show tracebacks",
                        **absent)  # type: ignore[arg-type]
    return common


DEFAULT_TABLE = "eventlake-events"
DEFAULT_LAKE_URI = "./eventlake-data"
"""What `--help` says the table and lake are when neither flag nor variable names them (the
defaults of `Settings`, written out so that help imports no configuration; a test holds them
equal)."""

EPILOG = """\
settings:
  --table / --lake-uri, else EVENTLAKE_TABLE / EVENTLAKE_LAKE_URI; the other EVENTLAKE_*
  variables (retention, TTL safety, settle, clock skew, index shards, retries) are in the
  README's Configuration table. A bad value stops the command, naming the variable.
AWS (boto3's own variables, no flags):
  AWS_REGION or AWS_DEFAULT_REGION (default us-east-1); AWS_ENDPOINT_URL points every client
  at moto or LocalStack; credentials as for the AWS CLI (AWS_PROFILE, AWS_ACCESS_KEY_ID, a role).
exit codes:
  0 done; 1 the command ran and reports a problem (status, archive, compact, reconcile, replay
  deliveries); 2 it could not run (usage, settings, a missing table or lake, AWS unreachable).
  `eventlake demo` needs none of the above: it runs on an embedded local stack.
"""

_USED = "_eventlake_parser"
"""Where a subcommand's parser notes itself in the namespace: the innermost one parsed names
the arguments it did not know in its own usage."""


class _Lazy(argparse.ArgumentParser):
    """A subcommand's parser whose arguments are added (`fill`) when it is first parsed: only
    the command being run pays for building its arguments and importing its module."""

    fill: Callable[[argparse.ArgumentParser], None] | None = None

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        fill, self.fill = self.fill, None
        if fill is not None:
            fill(self)
        parsed, unknown = super().parse_known_args(args, namespace)
        if getattr(parsed, _USED, None) is None:  # an inner subcommand's parser came first
            setattr(parsed, _USED, self)
        return parsed, unknown


def _command(module: str, name: str) -> Command:
    """The function `name` of `eventlake.cli.<module>`, imported when it runs."""
    def run(args: argparse.Namespace) -> int:
        func: Command = getattr(importlib.import_module(f"eventlake.cli.{module}"), name)
        return func(args)

    run.__qualname__ = f"{module}.{name}"
    return run


def _arguments_of(module: str) -> Callable[[argparse.ArgumentParser], None]:
    """`eventlake.cli.<module>.add_arguments`, imported when the subcommand is parsed."""
    def fill(p: argparse.ArgumentParser) -> None:
        importlib.import_module(f"eventlake.cli.{module}").add_arguments(p)

    return fill


def _parser() -> argparse.ArgumentParser:
    common = _common(suppress=True)
    parser = argparse.ArgumentParser(
        prog="eventlake", parents=[_common(suppress=False)],
        description="An event lake for AWS: DynamoDB hot tier, Parquet cold tier, SQL over both.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Lazy)

    def add(name: str, func: Command, help_: str,
            fill: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
        p = sub.add_parser(name, parents=[common],  # type: ignore[list-item]
                           help=help_, description=help_)
        p.set_defaults(func=func)
        p.fill = fill

    add("init", _command("status", "cmd_init"),
        "create the table (and the lake's bucket), or migrate the index of a table of an "
        "earlier version; safe to run again", _init_arguments)
    add("put", _command("put", "cmd_put"), "store events from JSON / JSONL files or stdin",
        _put_arguments)
    add("archive", _command("archive", "cmd_archive"), "sweep: archive what the stream path "
        "missed, move the watermark, check the TTL margin", _archive_arguments)
    add("backfill", _command("archive", "cmd_backfill"),
        "archive every item of the table (parallel Scan)", _backfill_arguments)
    add("compact", _command("archive", "cmd_compact"),
        "merge each partition's small files, dropping duplicates", _compact_arguments)
    add("reconcile", _command("archive", "cmd_reconcile"), "check every hot event older than "
        "the watermark is in the lake with the same hash", _reconcile_arguments)
    add("status", _command("status", "cmd_status"), "table, stream, TTL and lake state",
        _json_argument("print as JSON"))
    add("sql", _command("sql", "run"), "run SQL over events, events_cold and events_hot "
        "(DuckDB)", _arguments_of("sql"))
    add("schema", _command("schema", "run"), "the typed view of each event type (ev_<type>) "
        "and its fields", _arguments_of("schema"))
    add("replay", _command("replay", "run"), "send past events, in order, once, to a target",
        _arguments_of("replay"))
    add("export", _command("export", "run"), "write selected events (or a named query's "
        "result over them) to Parquet, CSV, JSON lines or a DuckDB file, locally or on S3, "
        "atomically, personal fields dropped or hashed", _arguments_of("export"))

    def catalog_arguments(p: argparse.ArgumentParser) -> None:
        from eventlake.cli import catalog

        catalog.add_arguments(p, [common])

    add("catalog", _command("catalog", "run"), "the lake in other engines' catalogs: DDL for "
        "Athena, Spark, Trino; registration in AWS Glue", catalog_arguments)
    add("demo", _command("demo", "cmd_demo"),
        "run the whole job on an embedded local stack (no AWS account)", _demo_arguments)
    return parser


def _json_argument(help_: str) -> Callable[[argparse.ArgumentParser], None]:
    def fill(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help=help_)

    return fill


def _put_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--max-problems", type=_at_least(0), default=20,
                   help="problems listed before summarising (default 20)")


def _archive_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--settle-seconds", type=float, default=None,
                   help="leave events this recent to the stream path (default "
                        "$EVENTLAKE_ARCHIVE_SETTLE_SECONDS; 0 archives everything)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _init_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-old-index", action="store_true",
                   help="migrating a table of an earlier version: give its items the new "
                        "index's keys but leave the old index (a CloudFormation stack drops it "
                        "with PreviousIndex=drop; README, Upgrading a table's index)")
    p.add_argument("--reindex", action="store_true",
                   help="give every item in eventlake's layout (with ingest_shard and "
                        "ingest_key) that lacks the index keys its keys, even when no old index "
                        "is left (an old index dropped before `init` had backfilled)")


def _backfill_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--segments", type=_at_least(1), default=4,
                   help="parallel scan segments (default 4)")


def _compact_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="start", type=_date,
                   help="first dt, the UTC day of the events' timestamp (YYYY-MM-DD; default: "
                        "the lake's first)")
    p.add_argument("--to", dest="end", type=_date,
                   help="last dt, included (YYYY-MM-DD; default: the lake's last)")
    p.add_argument("--min-files", type=_at_least(1), default=4,
                   help="compact partitions with at least this many files (default 4)")
    p.add_argument("--target-mb", type=_at_least(1), default=128,
                   help="size of each output file, in MiB (default 128)")


def _reconcile_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="start", type=_date,
                   help="first ingestion day, UTC (YYYY-MM-DD; default: the day before --to)")
    p.add_argument("--to", dest="end", type=_date,
                   help="last ingestion day, UTC, included (YYYY-MM-DD; default: today)")
    p.add_argument("--repair", action="store_true", help="re-archive what is missing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=_at_least(1), default=2000,
                   help="events to generate (default 2000)")
    p.add_argument("--keep", metavar="DIR", default="demo-lake",
                   help="keep the demo's lake (DIR/lake) and outputs in DIR, emptied first when "
                        "an earlier demo made it (default: ./demo-lake)")
    p.add_argument("--temp", action="store_true",
                   help="keep nothing: the lake on the local stack's S3, outputs in a temp dir")


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{text}` is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"`{text}` must be at least {minimum}")
        return value

    return parse


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a date (YYYY-MM-DD)") from None


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

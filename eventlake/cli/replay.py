"""`eventlake replay`: parse the selection and the target, call `EventLake.replay`, print a
summary line (on stderr when the events themselves go to stdout)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime

from eventlake.cli.common import open_lake


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_ts", type=moment, required=True, metavar="TIME",
                   help="first timestamp, included (RFC 3339 with an offset, or YYYY-MM-DD "
                        "for midnight UTC)")
    p.add_argument("--to", dest="to_ts", type=moment, required=True, metavar="TIME",
                   help="end timestamp, excluded (same forms as --from)")
    p.add_argument("--type", dest="types", action="append", default=[], metavar="TYPE",
                   help="only this event_type (repeatable)")
    p.add_argument("--subject", help="only this subject")
    p.add_argument("--where", metavar="SQL",
                   help="only events matching this SQL predicate over the `events` columns")
    p.add_argument("--cold-only", action="store_true",
                   help="read the Parquet lake only (DynamoDB is not read)")
    p.add_argument("--target", default="stdout",
                   help="stdout (JSON lines, the default) or jsonl:PATH (a local file)")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="record the position after each batch here; re-running resumes after it")
    p.add_argument("--batch-size", type=int, default=500, metavar="N",
                   help="events per batch sent to the target (default 500)")
    p.add_argument("--dry-run", action="store_true",
                   help="count what would be sent (first and last timestamp, per type); send "
                        "nothing")
    p.epilog = ("examples:\n"
                "  eventlake replay --from 2026-01-01 --to 2026-01-02 --target jsonl:day.jsonl "
                "--checkpoint day.ckpt\n"
                "  eventlake replay --from 2026-01-01T00:00:00Z --to 2026-02-01 --type "
                "order.placed --dry-run")
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def run(args: argparse.Namespace) -> int:
    """`eventlake replay`; returns the exit code."""
    from eventlake.replay.select import Selection

    selection = Selection(args.from_ts, args.to_ts, tuple(args.types), args.subject, args.where,
                          args.cold_only)
    report = open_lake(args).replay(selection, args.target, batch_size=args.batch_size,
                                    checkpoint=args.checkpoint, dry_run=args.dry_run)
    out = sys.stderr if args.target == "stdout" and not args.dry_run else sys.stdout
    if args.dry_run:
        print(f"first {report.first_timestamp or '-'}  last {report.last_timestamp or '-'}",
              file=out)
        print("per type " + json.dumps(dict(sorted(report.per_type.items()))), file=out)
    print(report.summary(), file=out)
    return 0


def moment(text: str) -> datetime:
    """`YYYY-MM-DD` (midnight UTC) or an RFC 3339 timestamp with an offset."""
    from eventlake.errors import InvalidEventError
    from eventlake.events.times import parse_timestamp

    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        if len(text) == 10:
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        return parse_timestamp(text)
    except InvalidEventError as exc:
        raise argparse.ArgumentTypeError(exc.detail) from None


__all__ = ["add_arguments", "moment", "run"]

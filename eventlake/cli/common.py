"""What every command of `eventlake` shares: the lake its options name, how an error reads, and
the selection flags of `replay` and `export`."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventlake.api import EventLake
    from eventlake.replay.select import Selection


def open_lake(args: argparse.Namespace) -> EventLake:
    """The `EventLake` of `--table` and `--lake-uri` (default: the EVENTLAKE_* variables)."""
    from eventlake.api import EventLake

    return EventLake.from_env(table=args.table, lake_uri=args.lake_uri)


def error(message: str) -> None:
    """One line on stderr. AWS and Arrow messages embed the endpoint URL: never its password."""
    from eventlake.config import redact

    print(f"eventlake: error: {redact(message)}", file=sys.stderr)


def add_selection_arguments(p: argparse.ArgumentParser) -> None:
    """The selection flags `replay` and `export` share: --from/--to (half-open), --type,
    --subject, --where, --cold-only."""
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


def selection_of(args: argparse.Namespace) -> Selection:
    """The Selection of the flags `add_selection_arguments` added."""
    from eventlake.replay.select import Selection

    return Selection(args.from_ts, args.to_ts, tuple(args.types), args.subject, args.where,
                     args.cold_only)


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def moment(text: str) -> datetime:
    """`YYYY-MM-DD` (midnight UTC) or an RFC 3339 timestamp with an offset."""
    from eventlake.errors import InvalidEventError
    from eventlake.events.times import parse_timestamp

    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        if _DAY.fullmatch(text):  # the shape of a day, not a day: say so, not "no offset"
            raise argparse.ArgumentTypeError(
                f"`{text}` is not a date ({exc}); give YYYY-MM-DD, or RFC 3339 with an "
                "offset") from None
    else:
        if len(text) == 10:
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        return parse_timestamp(text)
    except InvalidEventError as exc:
        raise argparse.ArgumentTypeError(exc.detail) from None

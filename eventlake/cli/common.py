"""What every command of `eventlake` shares: the lake its options name, and how an error reads."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventlake.api import EventLake


def open_lake(args: argparse.Namespace) -> EventLake:
    """The `EventLake` of `--table` and `--lake-uri` (default: the EVENTLAKE_* variables)."""
    from eventlake.api import EventLake

    return EventLake.from_env(table=args.table, lake_uri=args.lake_uri)


def error(message: str) -> None:
    """One line on stderr. AWS and Arrow messages embed the endpoint URL: never its password."""
    from eventlake.config import redact

    print(f"eventlake: error: {redact(message)}", file=sys.stderr)

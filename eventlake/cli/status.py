"""The table and the lake as they stand: `eventlake init` provisions them, `eventlake status`
shows them. `print_status` is the status as text, shared with `eventlake demo`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from eventlake.cli.common import error, open_lake


def cmd_init(args: argparse.Namespace) -> int:
    lake = open_lake(args)
    changes = lake.init(keep_old_index=args.keep_old_index, reindex=args.reindex)
    for change in changes:
        print(f"  {change}")
    print(f"ready: table `{lake.settings.table}`, lake {lake.settings.lake_uri}"
          + ("" if changes else " (nothing to change)"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Prints the status; exits 1, with a line naming what is missing, when the table or
    the lake does not exist."""
    lake = open_lake(args)
    status = lake.status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print_status(status)
    missing = []
    if not status["hot"].get("exists"):
        missing.append(str(lake.hot.table_not_found()))
    if not status["lake_exists"]:
        missing.append(str(lake.cold.lake_not_found()))
    for message in missing:
        error(message)
    return 1 if missing else 0


def print_status(status: dict[str, Any]) -> None:
    """`EventLake.status()` as aligned `key  value` lines on stdout."""
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
        if key not in ("hot", "lake_uri", "lake_exists", "region", "endpoint_url", "quarantine"):
            print(f"{key:<11} {value}")
    if "quarantine" in status:
        print_quarantine(status["quarantine"])
    print(f"aws         region {status['region']}"
          + (f", endpoint {status['endpoint_url']}" if status.get("endpoint_url") else ""))


def print_quarantine(summary: dict[str, Any] | str) -> None:
    """`QuarantineSummary.as_dict()` (or why it is unreadable): a line, then one per rule."""
    if isinstance(summary, str):
        print(f"quarantine  {summary}")
        return
    if not summary["records"] and not summary["unreadable"]:
        print(f"quarantine  none ({summary['files']} file(s) under {summary['where']})")
        return
    print(f"quarantine  {summary['records']:,} record(s) in {summary['files']:,} file(s) "
          f"under {summary['where']}, newest {summary['newest']}")
    rules = {_one_line(rule): count for rule, count in summary["by_rule"].items()}
    width = max((len(rule) for rule in rules), default=0)
    for rule, count in rules.items():
        reason = _one_line(count["reason"])
        if len(reason) > _REASON:
            reason = reason[:_REASON - 3] + "..."
        sources = _one_line(", ".join(count["sources"]))
        print(f"{'':<12}{rule:<{width}}  {count['records']:>6,}  newest {count['newest']}  "
              f"from {sources}: {reason}")
    if summary["repeats"]:
        print(f"{'':<12}{summary['repeats']:,} line(s) quarantined a record again (a re-delivered "
              "batch, a sweep over the same window): counted once")
    if summary["files_read"] < summary["files"]:
        print(f"{'':<12}counted in the newest {summary['files_read']:,} of "
              f"{summary['files']:,} files (older ones listed, not read)")
    for problem in summary["unreadable"]:
        print(f"{'':<12}not counted, unreadable: {_one_line(problem)}")


def _one_line(text: str) -> str:
    """`text` with what is not printable escaped (`\\n`, `\\x1b`, `\\u2028`): a quarantined
    record's reason quotes what it held (an event_id with a terminal escape or a newline),
    which must neither drive the terminal nor break the status's one line per rule."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)  # repr escapes it


_REASON = 100
"""Characters of a rule's newest reason shown (the JSON output has it whole)."""

__all__ = ["cmd_init", "cmd_status", "print_quarantine", "print_status"]

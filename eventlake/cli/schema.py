"""`eventlake schema`: the typed view of each event type, its fields, their SQL types, how many
events hold each one, conflicts and cast failures (`eventlake.query.typed` infers them)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from eventlake.errors import EventLakeError


class UnknownTypeError(EventLakeError):
    """`--type` names an event type the lake does not hold."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `schema` subcommand's arguments (`eventlake.cli.main` registers the subcommand)."""
    p.add_argument("--type", dest="event_type", metavar="T", help="this event type only")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--cold-only", action="store_true",
                   help="the Parquet lake only (DynamoDB is not read)")


def run(args: argparse.Namespace) -> int:
    """`eventlake schema`; returns the exit code."""
    from eventlake.query.typed import read_schema, type_stats

    con = _connect(args)
    try:
        schemas = read_schema(con)
        if args.event_type is not None:
            chosen = [s for s in schemas if s.event_type == args.event_type]
            if not chosen:
                known = ", ".join(f"`{s.event_type}`" for s in schemas) or "none"
                raise UnknownTypeError(f"no event type `{args.event_type}` in the lake "
                                       f"(there are: {known})")
            schemas = chosen
        report: list[dict[str, Any]] = []
        for schema in schemas:
            stats = type_stats(con, schema)
            report.append({
                "event_type": schema.event_type, "view": schema.view, "events": stats.events,
                "invalid_payloads": stats.invalid_payloads, "fields": [
                    {"column": f.column, "path": list(f.keys), "type": f.sql_type,
                     "events": stats.fields[f.column].events,
                     "conflict": list(stats.fields[f.column].seen) if f.conflict else None,
                     "cast_failures": stats.fields[f.column].cast_failures}
                    for f in schema.fields]})
    finally:
        con.close()
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print(report)
    return 0


def _print(report: list[dict[str, Any]]) -> None:
    for entry in report:
        invalid = entry["invalid_payloads"]
        print(f"{entry['event_type']}  ->  {entry['view']}  ({entry['events']} events"
              + (f", {invalid} with a payload that is not a JSON object)" if invalid else ")"))
        width = max((len(f["column"]) for f in entry["fields"]), default=0)
        for f in entry["fields"]:
            notes = []
            if f["conflict"]:
                notes.append(f"conflict: {', '.join(f['conflict'])} -> text")
            if f["cast_failures"]:
                notes.append(f"{f['cast_failures']} value(s) do not cast (NULL)")
            line = f"  {f['column']:<{width}}  {f['type']:<8} {f['events']:>9} events  "
            print((line + "; ".join(notes)).rstrip())


def _connect(args: argparse.Namespace) -> Any:
    """The DuckDB connection with the lake's views (tests replace this function)."""
    from eventlake.api import EventLake

    lake = EventLake.from_env(table=args.table, lake_uri=args.lake_uri)
    return lake.connect(hot=not args.cold_only)


__all__ = ["UnknownTypeError", "add_arguments", "run"]

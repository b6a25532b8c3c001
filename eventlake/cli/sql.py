"""`eventlake sql`: SQL over the lake's views (`events`, `events_cold`, `events_hot`).

The SQL comes from the command line, `-f FILE`, `--query NAME` (a file of `eventlake/query/sql/`)
or piped stdin; when stdin is a terminal, the prompt (`eventlake.query.prompt`) takes over.
Statements run in order; the last one's result is written (`eventlake.query.format` has the
formats). A SQL error is one line on stderr and exit code 2; `--debug` lets it through with its
traceback. Running the statements is `eventlake.query.session`'s; this module is the command:
its arguments, where the SQL comes from, the `--param` values, and the connection it opens.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from eventlake.query.format import Format, TableStyle
from eventlake.query.session import SqlUsageError, run_script


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `sql` subcommand's arguments (`eventlake.cli.main` registers the subcommand)."""
    source = p.add_mutually_exclusive_group()
    source.add_argument("sql", nargs="?", metavar="SQL",
                        help="statements to run (default: stdin; a prompt on a terminal)")
    source.add_argument("-f", "--file", metavar="FILE", help="read the SQL from FILE (- stdin)")
    source.add_argument("--query", dest="named", metavar="NAME",
                        help="run a named query from eventlake/query/sql/ (see --list)")
    source.add_argument("--list", action="store_true", help="list the named queries")
    p.add_argument("--format", choices=[f.value for f in Format], default=Format.TABLE.value,
                   help="output format (default table)")
    p.add_argument("--out", metavar="PATH", help="write to PATH instead of stdout (required "
                                                 "for parquet); a local file, replaced once "
                                                 "the result is complete")
    p.add_argument("--max-rows", type=int, default=100, metavar="N",
                   help="table output: rows shown, the rest counted (default 100; 0 = all)")
    p.add_argument("--max-width", type=int, default=40, metavar="N",
                   help="table output: characters per cell before `…` (default 40; 0 = all)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="bind $NAME: an int or float when VALUE parses as one, else text; "
                        "NAME:=JSON binds a JSON value (repeatable)")
    p.add_argument("--cold-only", action="store_true",
                   help="query the Parquet lake only (DynamoDB is not read)")
    p.epilog = ("examples:\n"
                "  eventlake sql \"SELECT event_type, count(*) FROM events GROUP BY ALL\"\n"
                "  eventlake sql --query events_per_type_per_day --format csv --out days.csv\n"
                "  eventlake sql -f report.sql --param since=2026-01-01 --format parquet "
                "--out r.parquet")
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def run(args: argparse.Namespace) -> int:
    """`eventlake sql`; returns the exit code."""
    if importlib.util.find_spec("duckdb") is None:  # pragma: no cover - the `query` extra
        raise SqlUsageError("`eventlake sql` needs DuckDB: pip install 'eventlake[query]'")
    if args.list:
        _print_list(sys.stdout)
        return 0
    fmt = Format(args.format)
    if fmt is Format.PARQUET and not args.out:
        raise SqlUsageError("--format parquet writes a file: add --out PATH")
    if args.out and "://" in args.out:
        raise SqlUsageError(f"--out `{args.out}`: `eventlake sql` writes local files only; "
                            "to S3, `eventlake export --query NAME --out s3://...` (a named "
                            "query), or write locally and copy")
    params = parse_params(args.param)
    style = TableStyle(max_rows=max(args.max_rows, 0), max_width=max(args.max_width, 0))
    sql = _read_sql(args)

    # the typed views (ev_<type>) cost a pass over the payloads: made for the prompt, and for
    # SQL that names one; likewise the named queries' views (all of them for the prompt)
    from eventlake.query.views import helpers_named, names_typed_view, queries_named

    typed = sql is None or names_typed_view(sql)
    queries = helpers = None
    if sql is not None:
        queries = queries_named(sql)
        helpers = helpers_named(sql, queries)  # events_between & co., if it names them

    def connect() -> Any:
        return _connect(args, typed=typed, queries=queries, helpers=helpers)

    if sql is None:
        if args.out or fmt is not Format.TABLE:
            raise SqlUsageError("--out and --format need SQL to run (an argument, -f FILE, "
                                "--query NAME or stdin); the prompt prints tables")
        from eventlake.query.prompt import interactive

        return interactive(connect, args, params, style)
    if not sql.strip():
        raise SqlUsageError("no SQL given (an argument, -f FILE, --query NAME or stdin)")
    try:
        return run_script(connect, args, sql, params, fmt, style)
    except BrokenPipeError:  # `eventlake sql ... | head`: the reader has seen enough
        with contextlib.suppress(OSError, ValueError):  # no "Exception ignored" at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _connect(args: argparse.Namespace, typed: bool = True,
             queries: Sequence[str] | None = None, helpers: Sequence[str] | None = None) -> Any:
    """The DuckDB connection with the lake's views, `EventLake.connect`'s, with the views of
    only the named `queries` and `helpers` (None: all) (tests replace this function)."""
    from eventlake.api import EventLake
    from eventlake.query.views import connect

    lake = EventLake.from_env(table=args.table, lake_uri=args.lake_uri)
    return connect(lake, hot=not args.cold_only, typed=typed, queries=queries, helpers=helpers)


def _list_queries() -> list[str]:
    from eventlake.query.views import list_queries

    return list_queries()


def _load_sql(name: str) -> str:
    from eventlake.query.views import load_sql

    return load_sql(name)


def _read_sql(args: argparse.Namespace) -> str | None:
    """The SQL to run; None asks for the interactive prompt."""
    if args.sql is not None:
        return str(args.sql)
    if args.file:
        from pathlib import Path

        if args.file == "-":
            return sys.stdin.read()
        try:
            return Path(args.file).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise SqlUsageError(f"cannot read `{args.file}`: {exc.strerror}") from exc
    if args.named:
        names = _list_queries()
        if args.named not in names:
            raise SqlUsageError(f"no query named `{args.named}` (there are: "
                                f"{', '.join(names) or 'none'}; see --list)")
        return _load_sql(args.named)
    if sys.stdin.isatty():
        return None
    return sys.stdin.read()


def _print_list(stream: Any) -> None:
    names = _list_queries()
    width = max((len(n) for n in names), default=0)
    for name in names:
        stream.write(f"{name:<{width}}  {header_line(_load_sql(name))}".rstrip() + "\n")


def header_line(sql: str) -> str:
    """The first line of a SQL file's leading comment: what the query answers."""
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        words = stripped.lstrip("-").strip()
        if words:
            return words
    return ""


# --- parameters -----------------------------------------------------------------------------

# patterns, compiled (re's cache) when a --param is given: not at every start-up
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INT = r"[+-]?[0-9]+"
_FLOAT = r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?"


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """`name=value` (int, float, else text) and `name:=json` into DuckDB's named parameters."""
    from eventlake.events.canonical import loads_exact

    params: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        as_json = name.endswith(":")
        name = name[:-1] if as_json else name
        if not sep or not re.fullmatch(_NAME, name):
            raise SqlUsageError(f"--param `{item}`: expected NAME=VALUE or NAME:=JSON, "
                                "NAME a SQL identifier (used as $NAME)")
        if name in params:
            raise SqlUsageError(f"--param `{name}` is given twice")
        if as_json:
            try:
                params[name] = loads_exact(raw)
            except ValueError as exc:
                raise SqlUsageError(f"--param `{item}`: not JSON ({exc})") from None
        else:
            params[name] = typed(raw)
    return params


def typed(raw: str) -> int | float | str:
    """`42` -> 42, `1.5`/`1e3` -> float, anything else (`2026-01-01`, `nan`, ``) -> text."""
    if re.fullmatch(_INT, raw):
        return int(raw)
    if re.fullmatch(_FLOAT, raw):
        return float(raw)
    return raw


__all__ = ["add_arguments", "header_line", "parse_params", "run", "typed"]

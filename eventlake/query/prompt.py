"""The prompt of `eventlake sql` when stdin is a terminal: statements ending with `;` run
as they are typed, each result printed as a table; errors are printed and the prompt goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eventlake.config import Settings
from eventlake.errors import EventLakeError
from eventlake.lake.layout import EVENTS_DIR
from eventlake.query.format import Format, TableStyle, write_text
from eventlake.query.session import Connect, SqlUsageError, execute, one_line, open_views

PROMPT = "eventlake> "
CONTINUE = "      ...> "
QUIT = (".quit", ".exit", ".q")


def interactive(connect: Connect, args: argparse.Namespace, params: Mapping[str, Any],
                style: TableStyle) -> int:
    """Read statements ending with `;`, run each on one connection (`connect()`) and print its
    table; `.quit` or EOF ends."""
    import duckdb

    print(banner(args))
    if sys.stdin is sys.__stdin__:
        with contextlib.suppress(ImportError):  # line editing and history, where available
            import readline  # noqa: F401
    con = open_views(connect, debug=args.debug)
    buffer: list[str] = []
    try:
        while True:
            try:
                line = input(CONTINUE if buffer else PROMPT)
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:
                print()
                buffer.clear()
                continue
            if not buffer and line.strip() in QUIT:
                return 0
            if not buffer and line.strip() == ".help":
                print(banner(args))
                continue
            if not buffer and not line.strip():
                continue
            buffer.append(line)
            if not line.rstrip().endswith(";"):
                continue
            sql = "\n".join(buffer)
            buffer.clear()
            try:
                for result in execute(con, sql, params, strict=False):
                    if result is None:
                        print("OK")
                    else:
                        write_text(result, Format.TABLE, sys.stdout, style)
            except KeyboardInterrupt:  # Ctrl-C stops the statement, not the prompt
                print("(interrupted)", file=sys.stderr)
            except (duckdb.Error, SqlUsageError) as exc:
                if args.debug:
                    import traceback

                    traceback.print_exception(exc, file=sys.stderr)
                label = "SQL error" if isinstance(exc, duckdb.Error) else "error"
                print(f"{label}: {one_line(exc)}", file=sys.stderr)
    finally:
        con.close()


def banner(args: argparse.Namespace) -> str:
    """How to use the prompt (only what it understands: `;`, `.help`, `.quit`), and, when a
    `duckdb` shell is on the PATH, how to open it on the same lake."""
    import shutil

    views = "events, events_cold, events_hot" + (" (--cold-only: DynamoDB is not read, "
                                                  "events_hot is empty)" if args.cold_only else "")
    lines = [f"eventlake sql: views {views}.",
             "End statements with `;`; .help shows this again; .quit or Ctrl-D leaves."]
    if shutil.which("duckdb") is None:
        return "\n".join(lines)
    lines.append("DuckDB's own shell on the Parquet lake (cold tier only, copies not"
                 " de-duplicated):")
    try:
        root = Settings.from_env(table=args.table, lake_uri=args.lake_uri).lake_uri
    except EventLakeError:
        root = "<lake root>"
    if "://" not in root or root.startswith("file://"):
        root = str(Path(root.removeprefix("file://")).expanduser().resolve())
    else:
        lines[-1] += " (s3:// needs DuckDB's httpfs extension and AWS credentials)"
    glob = f"{root.rstrip('/')}/{EVENTS_DIR}/*/*.parquet".replace("'", "''")
    lines.append(f"  duckdb -cmd \"CREATE VIEW events AS SELECT * FROM read_parquet('{glob}',"
                 " hive_partitioning = true)\"")
    return "\n".join(lines)

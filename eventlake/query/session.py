"""Running SQL for `eventlake sql` and its prompt: a connection with the lake's views
(`open_views`), each statement of a script in order (`execute`), a script's last result written
in a format (`run_script`), DuckDB's errors on one line (`one_line`), and `SqlUsageError`.

The command itself (arguments, where the SQL comes from, choosing the prompt) is
`eventlake.cli.sql`; the prompt is `prompt`, the formats `format`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from eventlake.errors import EventLakeError
from eventlake.query.format import Format, Result, TableStyle, TextSink, plain_type, write

Connect = Callable[[], Any]
"""Opens a DuckDB connection with the lake's views (the command's: `EventLake.connect`)."""


class SqlUsageError(EventLakeError):
    """The command line asks for something that cannot run (no SQL, a bad --param, ...)."""


def run_script(connect: Connect, args: argparse.Namespace, sql: str, params: Mapping[str, Any],
               fmt: Format, style: TableStyle) -> int:
    """Run `sql` on a fresh connection and write each statement's result, in order (a table on
    stdout, one after the other); a file (`args.out`) or another format takes one result, so
    SQL with several statements that return rows is then refused before anything runs. The
    exit code: 0, or 2 after a SQL error (`args.debug` raises it). A lake file that vanishes
    under the query (compaction replaced it after the connection listed the lake) makes it
    connect and run again, as every reader of the lake does, unless output has begun."""
    import duckdb

    from eventlake.lake.vanish import retry_on_vanish
    from eventlake.query.views import file_vanished_in_query

    stdout = _Watched(sys.stdout)

    def attempt() -> int:
        nonlocal stdout
        stdout = _Watched(sys.stdout)
        con = open_views(connect, debug=args.debug)
        try:
            if fmt is not Format.TABLE or args.out:
                _one_result(con, sql, fmt, args.out)
            shown = 0
            for result in execute(con, sql, params, strict=True):
                if result is None:
                    continue
                if shown:
                    stdout.write("\n")
                _write(result, fmt, args, style, stdout)
                shown += 1
            if not shown and fmt is Format.TABLE and not args.out:
                print("OK")
            return 0
        finally:
            con.close()

    def vanished(exc: BaseException) -> bool:
        return not stdout.written and file_vanished_in_query(exc)

    try:
        return retry_on_vanish(attempt, errors=duckdb.Error, vanished=vanished,
                               during="under the query", reraise_last=True)
    except duckdb.Error as exc:
        if args.debug:
            raise
        print(f"eventlake: SQL error: {one_line(exc)}", file=sys.stderr)
        return 2


def _one_result(con: Any, sql: str, fmt: Format, out: str | None) -> None:
    """Refuse SQL with more than one statement that returns rows when they would go to one
    file or one document (`--out`, or a format other than table)."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error:
        return  # execute() reports the syntax error, naming where it is
    returning = [n for n, s in enumerate(statements, 1)
                 if duckdb.ExpectedResultType.NOTHING not in s.expected_result_type]
    if len(returning) > 1:
        into = f"--out `{out}`" if out else f"--format {fmt.value}"
        raise SqlUsageError(
            f"statements {', '.join(map(str, returning))} of {len(statements)} each return rows "
            f"and {into} takes one result: keep one query that returns rows (make the others "
            "`CREATE TEMP VIEW ...`), or run them as a table on the terminal")


def _write(result: Result, fmt: Format, args: argparse.Namespace, style: TableStyle,
           stdout: TextSink) -> None:
    try:
        write(result, fmt, args.out, style, stdout=stdout)
    except BrokenPipeError:
        raise
    except OSError as exc:
        if args.debug:
            raise
        raise SqlUsageError(f"cannot write `{args.out}`: {exc.strerror or exc}") from exc
    except Exception as exc:
        arrow = sys.modules.get("pyarrow")  # only a result written through Arrow raises it
        if arrow is None or not isinstance(exc, arrow.ArrowNotImplementedError):
            raise
        if args.debug:  # e.g. INTERVAL columns have no Parquet type
            raise
        raise SqlUsageError(f"cannot write the result as {fmt}: {exc}; cast that column in "
                            "the SQL (e.g. `CAST(x AS VARCHAR)`)") from exc


class _Watched:
    """stdout, noting whether anything was written (then a query can no longer re-run)."""

    def __init__(self, stream: TextSink) -> None:
        self.stream, self.written = stream, False

    def write(self, text: str, /) -> object:
        self.written = True
        return self.stream.write(text)


def open_views(connect: Connect, *, debug: bool) -> Any:
    """`connect()`; a DuckDB error opening the views becomes a SqlUsageError (`debug`: not)."""
    import duckdb

    try:
        return connect()
    except duckdb.Error as exc:
        if debug:
            raise
        raise SqlUsageError(f"cannot open the lake's views: {one_line(exc)}") from exc


# --- running statements ---------------------------------------------------------------------

def execute(con: Any, sql: str, params: Mapping[str, Any], *, strict: bool
            ) -> Iterator[Result | None]:
    """Run each statement of `sql` in order, yielding what each returned (None: nothing to
    show). A reading statement runs when its result is read, so read each before the next.
    `strict`: every --param must be used and every `$name` given."""
    statements = con.extract_statements(sql)
    if not statements:
        raise SqlUsageError("no SQL statement given (only comments or blanks)")
    used = set().union(*(s.named_parameters for s in statements))
    missing = sorted(used - set(params))
    if missing:
        raise SqlUsageError("the SQL uses " + ", ".join(f"${m}" for m in missing)
                            + ": give " + " ".join(f"--param {m}=VALUE" for m in missing))
    unused = sorted(set(params) - used)
    if strict and unused:
        raise SqlUsageError(f"--param {', '.join(unused)} not used by the SQL "
                            f"(it uses: {', '.join(sorted(used)) or 'no parameters'})")
    for n, statement in enumerate(statements, 1):
        try:
            yield _run_one(con, statement, params)
        except Exception as exc:
            if len(statements) > 1:
                exc.add_note(f"statement {n} of {len(statements)}")
            raise


def _run_one(con: Any, statement: Any, params: Mapping[str, Any]) -> Result | None:
    import duckdb

    values = {k: params[k] for k in statement.named_parameters}
    relation = con.sql(statement.query, params=values or None)
    kinds = statement.expected_result_type
    if relation is None or duckdb.ExpectedResultType.NOTHING in kinds:
        return None  # SET, CREATE, DROP, BEGIN...: DuckDB gives an empty `Success`/`Count`
    types = [str(t) for t in relation.types]
    json_columns = frozenset(i for i, t in enumerate(types) if t == "JSON")
    run = None
    if statement.type == duckdb.StatementType.SELECT and all(map(plain_type, types)):
        # A SELECT's relation has not run yet (it runs when read): running the statement
        # instead runs it once all the same, and its rows need no pyarrow.
        def run() -> Any:
            return con.execute(statement.query, values or None)

    return Result(relation, json_columns,
                  plain=statement.type == duckdb.StatementType.EXPLAIN, run=run)


def one_line(exc: BaseException) -> str:
    """DuckDB's message on one line: hints (`Did you mean ...`) join the first line; where it
    happened (`statement 2 of 3`, DuckDB's `LINE 4:` block) ends it in parentheses."""
    parts: list[str] = []
    where = list(getattr(exc, "__notes__", []))
    for line in str(exc).splitlines():
        stripped = line.strip()
        match = re.match(r"LINE (\d+):", stripped)
        if match:
            where.append(f"line {match.group(1)}")
        elif stripped and not set(stripped) <= {"^"}:
            parts.append(stripped)
    text = " ".join(parts) or type(exc).__name__
    return f"{text} ({', '.join(where)})" if where else text


__all__ = ["Connect", "SqlUsageError", "execute", "one_line", "open_views", "run_script"]

"""A named query of eventlake/query/sql/ as an export (`--query NAME --param key=value`): the
query runs over the events of the selection, and its result is what is written.

The query reads `events`; here that name means the selection's rows, redaction applied. They are
copied into a TEMP table `events` first, which shadows the connection's view of the same name
(DuckDB looks unqualified names up in `temp` first: tests/export/test_named.py checks it). A
TEMP view cannot do it: a view takes no bound parameters (the selection's values and the hash
salt are parameters, never SQL text), and a view `events` reading `events` binds to itself.
The copy holds the selection in DuckDB's memory (beyond its memory_limit DuckDB spills to its
temporary directory); the query's own parameters are bound when it runs.

Parameters are the query's `$names` (DuckDB's parser finds them); its header comment describes
them (`-- params:  $from_type VARCHAR  the event type that enters the funnel`), and a missing one
is refused with that line. Values are passed as given (the CLI's are text): the queries cast
their parameters (`CAST($window_hours AS DOUBLE)`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from eventlake.errors import ConfigError
from eventlake.query.views import list_queries, load_sql

_PARAM_LINE = re.compile(r"^--\s*(?:params:\s*)?\$(\w+)\b\s*(.*)$")
"""A header line describing a parameter: `-- params:  $name TYPE  what it is` (or a
continuation line `--          $name ...`)."""


class QueryError(ConfigError):
    """A named query that cannot run: unknown, or a parameter missing or not its own."""


@dataclass(frozen=True)
class NamedQuery:
    """A query of eventlake/query/sql/: its statement and its parameters (name -> header
    description, `""` when the header does not describe it)."""

    name: str
    sql: str
    parameters: dict[str, str]

    def bind(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` for this query's parameters; QueryError naming a missing parameter (and
        what the header says of it) or one the query does not take."""
        missing = [p for p in self.parameters if p not in values]
        if missing:
            described = "; ".join(f"${p} {self.parameters[p]}".rstrip() for p in missing)
            raise QueryError(f"query `{self.name}` needs --param {missing[0]}=VALUE"
                             f"{' (and ' + ', '.join(missing[1:]) + ')' if missing[1:] else ''}:"
                             f" {described}")
        unknown = sorted(set(values) - set(self.parameters))
        if unknown:
            takes = ", ".join(sorted(self.parameters)) or "no parameters"
            raise QueryError(f"query `{self.name}` has no parameter `{unknown[0]}`; it takes "
                             f"{takes}")
        return {p: values[p] for p in self.parameters}


def named_query(name: str) -> NamedQuery:
    """The query `name` of eventlake/query/sql/; QueryError listing the known ones."""
    known = list_queries()
    if name not in known:
        raise QueryError(f"no query named `{name}` in eventlake/query/sql/; the queries are: "
                         f"{', '.join(known)}")
    text = load_sql(name)
    [statement] = duckdb.extract_statements(text)
    described: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("--"):
            break  # the header is the leading comment block
        found = _PARAM_LINE.match(line)
        if found:
            described[found[1]] = " ".join(found[2].split())
    parameters = {p: described.get(p, "") for p in sorted(statement.named_parameters)}
    return NamedQuery(name, text.strip().rstrip(";").strip(), parameters)


def shadow_events(con: duckdb.DuckDBPyConnection, selected: str,
                  params: Mapping[str, Any]) -> None:
    """Copy the rows of `selected` (a query over the connection's `events`) into the TEMP table
    `events`, which the named query then reads instead of the view."""
    con.execute(f"CREATE TEMP TABLE events AS\n{selected}", dict(params))

"""How each engine spells the lake: identifiers, literals, column types, and the SQL that reads
one payload field as DuckDB's typed views do (query/typed.py).

Every dialect reads a field the same way, in two steps, so that the type rules live in one
place (`convert`):

    jt   = the field's JSON text: `12`, `"12"`, `{"a":1}`, `null`; SQL NULL when the key is
           absent or the payload is not valid JSON
             athena/trino  json_format(json_extract(try(json_parse(event_payload)), '$["k"]'))
             spark         to_json(variant_get(try_parse_json(event_payload), '$['k']'))
    then   BIGINT   jt an integer literal (^-?[0-9]+$)  -> TRY_CAST(jt AS BIGINT)
           DOUBLE   jt a number                        -> TRY_CAST(jt AS DOUBLE)
           BOOLEAN  jt `true` / `false`
           VARCHAR  jt a JSON string -> the string unquoted; `null` -> NULL; else jt
           JSON     jt; `null` -> NULL

Deciding by the JSON text keeps DuckDB's strictness (the string "12" is not the BIGINT 12) on
every engine, and TRY_CAST keeps a view from failing on an odd event (Spark 4 runs in ANSI
mode, where CAST of bad text raises).

Where the engines differ from DuckDB:
- Athena and Trino read Parquet timestamps at millisecond precision (Trino: the catalog's
  `hive.timestamp-precision`, MILLISECONDS by default); DuckDB and Spark keep microseconds.
- Spark needs 4.0 or later (`try_parse_json`, `variant_get`). Spark normalises numbers in JSON
  text (`1.50` -> `1.5`, `2.0` -> `2`, `1e3` -> `1000.0`): a VARCHAR or JSON column may spell a
  number differently from DuckDB, and a whole-valued decimal (`2.0`) in a BIGINT column reads
  as 2 where DuckDB gives NULL.
- JSON columns are text (varchar / STRING) outside DuckDB; engines may space them differently.
- Key paths: Athena/Trino quote keys as `["k"]`, and Presto-era path parsers have no escape
  inside brackets, so a key holding `"` or `\\` cannot be named there; Spark quotes keys as
  `['k']` (or `["k"]` when the key holds `'`) and cannot name a key holding both quotes. Such a
  column is NULL in that engine's view, and the view's comment says so.
- The `dt` partition: see each dialect's raw-table statement (`raw_table_statements`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eventlake.catalog.model import Column, Dialect

__all__ = ["SPELLING", "Spelling", "json_path", "literal"]

_SQL_TYPES = {
    "athena": {"BIGINT": "bigint", "DOUBLE": "double", "BOOLEAN": "boolean",
               "VARCHAR": "varchar", "JSON": "varchar", "TIMESTAMP": "timestamp",
               "DATE": "date"},
    "trino": {"BIGINT": "bigint", "DOUBLE": "double", "BOOLEAN": "boolean",
              "VARCHAR": "varchar", "JSON": "varchar", "TIMESTAMP": "timestamp",
              "DATE": "date"},
    "spark": {"BIGINT": "BIGINT", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN",
              "VARCHAR": "STRING", "JSON": "STRING", "TIMESTAMP": "TIMESTAMP",
              "DATE": "DATE"},
}
"""Our SQL types (query/typed.py's, plus the lake's TIMESTAMP/DATE) in each engine's views."""
_INTEGER = "^-?[0-9]+$"
_NUMBER = "^-?[0-9]"


@dataclass(frozen=True)
class Spelling:
    """One engine's spelling of names, literals and payload reads."""

    dialect: Dialect
    quote: str
    """The identifier quote of its view SQL."""
    backslash_escapes: bool
    """Whether its string literals treat `\\` as an escape (Spark's do)."""

    def ident(self, name: str) -> str:
        return self.quote + name.replace(self.quote, self.quote * 2) + self.quote

    def qualified(self, database: str | None, name: str) -> str:
        return f"{self.ident(database)}.{self.ident(name)}" if database else self.ident(name)

    def literal(self, text: str) -> str:
        return literal(text, backslash_escapes=self.backslash_escapes)

    def sql_type(self, ours: str) -> str:
        return _SQL_TYPES[self.dialect][ours]

    def parsed_payload(self) -> str:
        """The payload parsed once per row; NULL when it is not valid JSON."""
        if self.dialect == "spark":
            return "try_parse_json(event_payload)"
        return "try(json_parse(event_payload))"

    def path(self, keys: Sequence[str]) -> str | None:
        """The JSON path of `keys` in this engine's syntax; None if a key cannot be named."""
        return json_path(keys, self.dialect)

    def json_text(self, parsed: str, path: str) -> str:
        """The JSON text of the value at `path` of `parsed` (`parsed_payload`)."""
        if self.dialect == "spark":
            return f"to_json(variant_get({parsed}, {self.literal(path)}))"
        return f"json_format(json_extract({parsed}, {self.literal(path)}))"

    def unquoted(self, parsed: str, path: str) -> str:
        """The string at `path`, unquoted (only used where the JSON text is a string)."""
        if self.dialect == "spark":
            return f"try_variant_get({parsed}, {self.literal(path)}, 'string')"
        return f"json_extract_scalar({parsed}, {self.literal(path)})"

    def matches(self, text: str, pattern: str) -> str:
        return f"regexp_like({text}, {self.literal(pattern)})"

    def convert(self, sql_type: str, jt: str, unquoted: str) -> str:
        """The column of type `sql_type` from the JSON text `jt` (see the module docstring)."""
        if sql_type == "BIGINT":
            return (f"CASE WHEN {self.matches(jt, _INTEGER)} "
                    f"THEN TRY_CAST({jt} AS {self.sql_type('BIGINT')}) END")
        if sql_type == "DOUBLE":
            return (f"CASE WHEN {self.matches(jt, _NUMBER)} "
                    f"THEN TRY_CAST({jt} AS {self.sql_type('DOUBLE')}) END")
        if sql_type == "BOOLEAN":
            return f"CASE WHEN {jt} = 'true' THEN true WHEN {jt} = 'false' THEN false END"
        if sql_type == "VARCHAR":
            return (f"CASE WHEN {jt} LIKE '\"%' THEN {unquoted} "
                    f"WHEN {jt} <> 'null' THEN {jt} END")
        if sql_type == "JSON":
            return f"CASE WHEN {jt} <> 'null' THEN {jt} END"
        raise ValueError(f"no SQL type `{sql_type}` in typed views")

    def null_of(self, sql_type: str) -> str:
        return f"CAST(NULL AS {self.sql_type(sql_type)})"

    def raw_columns(self, columns: Sequence[tuple[str, str]]) -> tuple[Column, ...]:
        """The raw table's columns (name, our type) as its DDL spells them (Athena: Hive)."""
        hive = {"VARCHAR": "string", "TIMESTAMP": "timestamp", "DATE": "date"}
        return tuple(Column(n, hive[t] if self.dialect == "athena" else self.sql_type(t))
                     for n, t in columns)


SPELLING: dict[str, Spelling] = {
    "athena": Spelling("athena", '"', backslash_escapes=False),
    "trino": Spelling("trino", '"', backslash_escapes=False),
    "spark": Spelling("spark", "`", backslash_escapes=True),
}


def literal(text: str, *, backslash_escapes: bool = False) -> str:
    """`text` as a SQL string literal (`'` doubled; with `backslash_escapes`, `\\` and `'`
    escaped by a backslash, as Spark reads them)."""
    if backslash_escapes:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "'" + text.replace("'", "''") + "'"


def json_path(keys: Sequence[str], dialect: Dialect) -> str | None:
    """`$["a"]["b"]` (Athena/Trino) or `$['a']['b']` (Spark) for `keys`; None when a key holds
    a character the engine's bracket syntax cannot carry (module docstring)."""
    parts = []
    for key in keys:
        if dialect == "spark":
            if "'" not in key:
                parts.append(f"['{key}']")
            elif '"' not in key:
                parts.append(f'["{key}"]')
            else:
                return None
        else:
            if '"' in key or "\\" in key:
                return None
            parts.append(f'["{key}"]')
    return "$" + "".join(parts)

"""Typed views per event type: `ev_<type>`, the common columns plus one typed column per payload
field, and the inferred schema behind them (what `eventlake schema` prints).

Inference runs in DuckDB, over the connection's `events` view (hot and cold), each time a
connection is made: a new field in new events appears on the next connect. Payloads never
reach Python; only one row per (event type, field path) does.

    payload {"total": 9.5, "customer": {"id": 7, "tags": ["a"]}, "note": null}
      -> total DOUBLE, customer_id BIGINT, customer_tags JSON   (note: only nulls -> VARCHAR)

Rules:
- Nested objects are flattened with `_` down to MAX_DEPTH keys; an object deeper than that, and
  every array, is one JSON column.
- JSON types map to BIGINT, DOUBLE, BOOLEAN, VARCHAR, JSON. Integers and decimals in one field
  give DOUBLE (a widening, not a conflict: DOUBLE, not DECIMAL, because JSON numbers carry no
  scale and BI tools take DOUBLE everywhere; the exact text stays in `events.event_payload`).
  Any other mix (a number here, a string there; an object here, a scalar there) is a conflict:
  the column is VARCHAR (the value's text) and the schema lists the types seen. A field that is
  an empty object (`{}`) wherever it is set has no keys to flatten: a JSON column, no conflict.
- Values are taken strictly by their JSON type (the string "12" is not the BIGINT 12), with
  TRY_CAST: a value that does not fit its column (an integer beyond BIGINT, a payload that is not
  valid JSON) reads as NULL, never as an error; `cast_failures` counts them.
- Names: views `ev_<sanitised type>`, columns the sanitised keys joined by `_` (lowercase,
  [a-z0-9_]; `f_` before a leading digit). A name shared by several types (or fields) gets
  `_<6 hex of SHA-256 of the type name (or of the field's JSON path)>` on each one, except the one
  whose name needed no sanitising: names depend on no other type but clashing ones. A field
  named like a common column (or `event_payload`, `content_hash`) is `payload_<name>`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import duckdb

__all__ = ["COMMON_COLUMNS", "MAX_DEPTH", "Field", "FieldStats", "TypeSchema", "TypeStats", "infer",
           "install_typed", "read_schema", "sanitise", "type_stats", "view_sql"]

COMMON_COLUMNS = ("event_id", "event_type", "timestamp", "dt", "source", "subject",
                  "ingested_at")
"""The columns every typed view starts with (as in `events`)."""
_RESERVED = frozenset(COMMON_COLUMNS) | {"event_payload", "content_hash"}
MAX_DEPTH = 3
"""Payload keys flattened into one column name at most (`a_b_c`); deeper objects are JSON."""
_SCHEMA_TABLE = "_eventlake.typed_fields"
K = TypeVar("K")
_SCALARS = {"BIGINT": ("BIGINT", False), "UBIGINT": ("BIGINT", False),
            "HUGEINT": ("BIGINT", False), "DOUBLE": ("DOUBLE", False),
            "BOOLEAN": ("BOOLEAN", False), "VARCHAR": ("VARCHAR", False),
            "NULL": ("VARCHAR", False)}
"""json_group_structure's leaf -> (column type, conflict); anything else ("JSON") conflicts."""
_TAKES = {"BIGINT": ("BIGINT", "UBIGINT", "HUGEINT"),
          "DOUBLE": ("BIGINT", "UBIGINT", "HUGEINT", "DOUBLE"), "BOOLEAN": ("BOOLEAN",)}
"""The JSON types a column of that SQL type takes a value from; VARCHAR and JSON take any."""

_IS_OBJECT = ("coalesce(json_type(CASE WHEN json_valid(event_payload) THEN event_payload END) "
              "= 'OBJECT', false)")
"""Whether the payload is a JSON object; never an error (a CASE, not an AND, guards json_type:
DuckDB may evaluate both sides of an AND)."""
_STRUCTURE = f"""
SELECT event_type, json_group_structure(CAST(event_payload AS JSON))
FROM events
WHERE {_IS_OBJECT}
GROUP BY event_type
"""
"""Each type's payload structure, merged over its events by DuckDB: `{"key": "UBIGINT", ...}`,
"JSON" where types that do not merge met (or for an empty object), `[...]` for arrays."""
_DETAILS = f"""
WITH RECURSIVE nodes(keys, value, type, depth) AS (
    SELECT [j.key], j.value, j.type, 1
    FROM (SELECT event_payload FROM events
          WHERE event_type = $event_type AND {_IS_OBJECT}) AS e,
         json_each(e.event_payload) AS j
    UNION ALL
    SELECT list_append(n.keys, j.key), j.value, j.type, n.depth + 1
    FROM nodes AS n, json_each(n.value) AS j
    WHERE n.type = 'OBJECT' AND n.depth < {MAX_DEPTH}
)
SELECT keys, type, count(*) FROM nodes WHERE type <> 'NULL' GROUP BY keys, type
"""
"""For one type: per key path and JSON type seen there, how many events hold it (`schema`)."""


@dataclass(frozen=True)
class Field:
    """One typed column of a view: where it comes from in the payload and what it holds."""

    column: str
    keys: tuple[str, ...]
    """The payload keys from the root (`("customer", "id")`)."""
    path: str
    """The same as a DuckDB JSON path (`$."customer"."id"`)."""
    sql_type: str
    """BIGINT, DOUBLE, BOOLEAN, VARCHAR or JSON."""
    conflict: bool
    """Types that do not mix were seen here: the column is VARCHAR."""


@dataclass(frozen=True)
class FieldStats:
    """What `eventlake schema` says of a field beyond its type (one scan of the type's events)."""

    events: int
    """Events whose payload holds a non-null value here."""
    seen: tuple[str, ...]
    """The JSON types seen (DuckDB's `json_type` names), sorted."""
    cast_failures: int
    """Non-null values that read as NULL in the view (they do not fit the column's type)."""


@dataclass(frozen=True)
class TypeSchema:
    """An event type's view and fields."""

    event_type: str
    view: str
    fields: tuple[Field, ...]


def sanitise(name: str) -> str:
    """Lowercase, runs of anything but [a-z0-9] as one `_`, no `_` at either end; `x` if empty."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "x"


def infer(con: duckdb.DuckDBPyConnection) -> list[TypeSchema]:
    """The schema of each event type in `con`'s `events` view, by view name."""
    structures = {t: json.loads(s) for t, s in con.execute(_STRUCTURE).fetchall()}
    types = sorted(structures)
    views = _unique({t: "ev_" + sanitise(t) for t in types}, {t: t for t in types},
                    {t for t in types if sanitise(t) == t})
    schemas = [TypeSchema(t, views[t], _fields(structures[t], _only_objects(con, t)))
               for t in types]
    return sorted(schemas, key=lambda s: s.view)


def _only_objects(con: duckdb.DuckDBPyConnection, event_type: str
                  ) -> Callable[[tuple[str, ...]], bool]:
    """Whether every non-null value at a key path of the type's payloads is an object: what a
    "JSON" leaf of json_group_structure means when it is not a conflict (an object that is
    always empty, `{}`, has no keys to merge). Asked only of such leaves (one scan each)."""
    def only_objects(keys: tuple[str, ...]) -> bool:
        [(seen,)] = con.execute(
            f"SELECT list(DISTINCT json_type(CASE WHEN {_IS_OBJECT} THEN event_payload END, "
            f"$path)) FROM events WHERE event_type = $event_type",
            {"path": _json_path(keys), "event_type": event_type}).fetchall()
        return {t for t in seen or () if t not in (None, "NULL")} == {"OBJECT"}

    return only_objects


def _fields(structure: Any, only_objects: Callable[[tuple[str, ...]], bool]
            ) -> tuple[Field, ...]:
    found: list[tuple[tuple[str, ...], str, bool]] = []

    def walk(node: dict[str, Any], keys: tuple[str, ...]) -> None:
        for key, value in node.items():
            here = (*keys, key)
            if isinstance(value, dict) and len(here) < MAX_DEPTH:
                walk(value, here)
            elif isinstance(value, dict | list):
                found.append((here, "JSON", False))
            elif value == "JSON" and only_objects(here):
                found.append((here, "JSON", False))  # `{}` wherever it is set
            else:
                found.append((here, *_SCALARS.get(value, ("VARCHAR", True))))

    if isinstance(structure, dict):
        walk(structure, ())
    names = {keys: _column_base(keys) for keys, _, _ in found}
    columns = _unique(names, {keys: _json_path(keys) for keys in names},
                      {keys for keys, name in names.items() if "_".join(keys) == name})
    return tuple(sorted((Field(columns[keys], keys, _json_path(keys), sql_type, conflict)
                         for keys, sql_type, conflict in found), key=lambda f: f.keys))


def _json_path(keys: Sequence[str]) -> str:
    return "$" + "".join('."' + k.replace("\\", "\\\\").replace('"', '\\"') + '"'
                         for k in keys)


def _column_base(keys: Sequence[str]) -> str:
    name = "_".join(sanitise(k) for k in keys)
    if name in _RESERVED:
        return f"payload_{name}"
    return name if name[0].isalpha() else f"f_{name}"


def _unique(bases: dict[K, str], originals: dict[K, str], clean: set[K]) -> dict[K, str]:
    """`bases` made unique: where several keys share a name, each gets a suffix from the hash
    of its original (unique among keys), except the one clean key there (its name needs no
    sanitising) if there is exactly one. A name so depends on no other key but clashing ones."""
    sharing: dict[str, list[K]] = defaultdict(list)
    for key, base in bases.items():
        sharing[base].append(key)
    names = dict(bases)
    for keys in sharing.values():
        keeps = [k for k in keys if k in clean]
        for key in keys if len(keys) > 1 else ():
            if keeps != [key]:
                digest = hashlib.sha256(originals[key].encode()).hexdigest()[:6]
                names[key] = f"{bases[key]}_{digest}"
    return names


# -- the views -------------------------------------------------------------------------------

def _value(field: Field, index: int) -> str:
    """The SQL expression of `field`'s column over `_v`, the list of extracted values."""
    raw = f"_v[{index}]"
    if field.sql_type == "JSON":
        return f"CASE WHEN json_type({raw}) <> 'NULL' THEN {raw} END"  # JSON null -> NULL
    if field.sql_type == "VARCHAR":
        return f"json_extract_string({raw}, '$')"
    takes = ", ".join(f"'{t}'" for t in _TAKES[field.sql_type])
    return f"CASE WHEN json_type({raw}) IN ({takes}) THEN TRY_CAST({raw} AS {field.sql_type}) END"


def _source(schema: TypeSchema) -> str:
    """The type's rows with `_v`: each field's raw JSON value (NULL for an invalid payload)."""
    paths = ", ".join(_literal(f.path) for f in schema.fields)
    values = (f", CASE WHEN {_IS_OBJECT} THEN json_extract(event_payload, [{paths}]) END AS _v"
              if schema.fields else "")
    return (f"SELECT *{values} FROM events WHERE event_type = {_literal(schema.event_type)}")


def view_sql(schema: TypeSchema) -> str:
    """The SELECT of `schema`'s view."""
    columns = [f'"{c}"' for c in COMMON_COLUMNS]
    columns += [f'{_value(f, i)} AS "{f.column}"' for i, f in enumerate(schema.fields, 1)]
    return f"SELECT {', '.join(columns)}\nFROM ({_source(schema)})"


def install_typed(con: duckdb.DuckDBPyConnection) -> list[TypeSchema]:
    """Infer the schema of `con`'s `events` and (re)create one view per type; views of types no
    longer there are dropped. The schema is kept in `_eventlake.typed_fields` (`read_schema`)."""
    schemas = infer(con)
    con.execute("CREATE SCHEMA IF NOT EXISTS _eventlake")
    con.execute(f"CREATE TABLE IF NOT EXISTS {_SCHEMA_TABLE} (event_type VARCHAR, view VARCHAR, "
                "position INTEGER, column_name VARCHAR, keys VARCHAR[], path VARCHAR, "
                "sql_type VARCHAR, conflict BOOLEAN)")
    before = {row[0] for row in con.execute(f"SELECT DISTINCT view FROM {_SCHEMA_TABLE}"
                                             ).fetchall()}
    for schema in schemas:
        con.execute(f'CREATE OR REPLACE VIEW "{schema.view}" AS\n{view_sql(schema)}')
    for stale in sorted(before - {s.view for s in schemas}):
        con.execute(f'DROP VIEW IF EXISTS "{stale}"')
    con.execute(f"DELETE FROM {_SCHEMA_TABLE}")
    rows: list[tuple[Any, ...]] = [
        (s.event_type, s.view, i, f.column, list(f.keys), f.path, f.sql_type, f.conflict)
            for s in schemas for i, f in enumerate(s.fields)]
    rows += [(s.event_type, s.view, -1, None, None, None, None, None)
             for s in schemas]  # a type without fields still has its row
    if rows:
        con.executemany(f"INSERT INTO {_SCHEMA_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return schemas


def read_schema(con: duckdb.DuckDBPyConnection) -> list[TypeSchema]:
    """The schema `install_typed` last installed on `con`, by view name."""
    fields: dict[tuple[str, str], list[Field]] = defaultdict(list)
    for event_type, view, position, column, keys, path, sql_type, conflict in con.execute(
            f"SELECT * FROM {_SCHEMA_TABLE} ORDER BY view, position").fetchall():
        entry = fields[(event_type, view)]
        if position >= 0:
            entry.append(Field(column, tuple(keys), path, sql_type, conflict))
    return [TypeSchema(t, v, tuple(f)) for (t, v), f in fields.items()]


@dataclass(frozen=True)
class TypeStats:
    """What `eventlake schema` counts for one type."""

    events: int
    invalid_payloads: int
    """Events whose payload is not a JSON object: every field reads as NULL in the view."""
    fields: dict[str, FieldStats]
    """By column."""


def type_stats(con: duckdb.DuckDBPyConnection, schema: TypeSchema) -> TypeStats:
    """How many events of `schema`'s type there are, how many hold each field, the JSON types
    seen there, and how many values fail the cast. Two scans of the type's events."""
    seen: dict[tuple[str, ...], dict[str, int]] = defaultdict(dict)
    if schema.fields:
        for keys, json_type, n in con.execute(_DETAILS, {"event_type": schema.event_type}
                                              ).fetchall():
            seen[tuple(keys)][json_type] = int(n)
    counts = ["count(*)", f"count(*) FILTER (NOT {_IS_OBJECT})"]
    counts += [f"count(*) FILTER (_v[{i}] IS NOT NULL AND json_type(_v[{i}]) <> 'NULL' "
               f"AND ({_value(f, i)}) IS NULL)" for i, f in enumerate(schema.fields, 1)]
    total, invalid, *failed = con.execute(
        f"SELECT {', '.join(counts)} FROM ({_source(schema)})").fetchall()[0]
    return TypeStats(int(total), int(invalid), {
        f.column: FieldStats(sum(seen[f.keys].values()), tuple(sorted(seen[f.keys])), int(n))
        for f, n in zip(schema.fields, failed, strict=True)})


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

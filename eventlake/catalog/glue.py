"""The lake in the AWS Glue Data Catalog: `register` writes an Athena `Catalog` (model.py) into
one Glue database, so Athena, Redshift Spectrum, EMR and QuickSight read the lake with no copy.

What it writes, in a database it creates when missing (an existing one is used as is):
- `events_raw`, an EXTERNAL_TABLE over `events/` (Parquet, partitions on `dt` by projection:
  the catalog's properties, so no partition is ever registered);
- each view (`events`, `ev_<type>`) as Athena stores its own views: a VIRTUAL_VIEW whose
  ViewOriginalText carries the Trino SQL and columns (`_presto_view`).

Every table it writes has the parameter `eventlake:managed` = `true`; it never changes or
deletes a table without it, and refuses (ForeignTableError, before any write) when such a table
has a name it needs. A re-run compares each table with what it would write: equal -> untouched,
different -> UpdateTable; managed views the catalog no longer has (a type gone) are deleted.
One database holds one lake: a second lake registered into it takes the tables over.

Transient Glue errors are retried by the client's retry policy (aws.py); what is left is a
TransientError (safe to re-run) or a GlueError naming the table and Glue's error code.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from eventlake.aws import error_code, is_transient
from eventlake.catalog.model import Catalog, View
from eventlake.config import redact
from eventlake.errors import ConfigError, EventLakeError, StorageError, TransientError

__all__ = ["MARKER", "ForeignTableError", "GlueError", "GlueReport", "read_presto_view",
           "register"]

MARKER = "eventlake:managed"
"""The table parameter (value `true`) that says eventlake owns a Glue table."""
_PARQUET = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary":
                  "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                  "Parameters": {"serialization.format": "1"}},
}
# The Presto/Trino view format, as Athena writes it and Athena, Trino and Presto read it:
# TableType VIRTUAL_VIEW, parameters presto_view=true and comment="Presto View",
# ViewOriginalText "/* Presto View: <base64 of the JSON view definition> */", ViewExpandedText
# "/* Presto View */". Source: trinodb/trino plugin/trino-hive/.../ViewReaderUtil.java
# (VIEW_PREFIX, VIEW_SUFFIX, isTrinoView, encodeViewData) and HiveMetadata.java
# (PRESTO_VIEW_EXPANDED_TEXT_MARKER); the JSON fields (originalSql, catalog "awsdatacatalog",
# schema, columns [{name, type}]) as in iconara/terraform-aws-athena-view main.tf.
_VIEW_PREFIX, _VIEW_SUFFIX = "/* Presto View: ", " */"
_VIEW_EXPANDED = "/* Presto View */"
_VIEW_CATALOG = "awsdatacatalog"
_HIVE_TYPES = {
    "varchar": "string", "char": "string", "json": "string", "bigint": "bigint",
    "integer": "int", "int": "int", "smallint": "smallint", "tinyint": "tinyint",
    "double": "double", "real": "float", "boolean": "boolean", "date": "date",
    "timestamp": "timestamp", "varbinary": "binary", "decimal": "decimal",
}
"""Trino type name -> the Hive type a view's StorageDescriptor lists (Glue/Hive readers)."""


class GlueError(StorageError):
    """Glue refused a call in a way retrying will not fix. `table` is the database or table it
    was about, `code` Glue's error code (e.g. `AccessDeniedException`)."""

    def __init__(self, message: str, *, table: str, code: str | None) -> None:
        super().__init__(message)
        self.table = table
        self.code = code


class ForeignTableError(ConfigError):
    """A table eventlake needs exists in the database and is not eventlake's: it is left
    alone; register into another database, or drop or rename that table."""


@dataclass
class GlueReport:
    """What one `register` did, by table name."""

    database: str
    database_created: bool = False
    tables: int = 0
    """The catalog's tables (the raw table)."""
    views: int = 0
    """The catalog's views."""
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line, e.g. `glue: database shop: 1 table and 4 views; created 2, updated 1,
        unchanged 2, deleted 0`."""
        made = " (created)" if self.database_created else ""
        return (f"glue: database {self.database}{made}: {_plural(self.tables, 'table')} and "
                f"{_plural(self.views, 'view')}; created {len(self.created)}, updated "
                f"{len(self.updated)}, unchanged {len(self.unchanged)}, "
                f"deleted {len(self.deleted)}")


def register(glue: Any, catalog: Catalog, *, database: str) -> GlueReport:
    """Write `catalog` (dialect athena) into the Glue database `database` (a boto3 Glue client:
    `Clients.glue`); idempotent. Raises ConfigError for a non-athena catalog or one qualified
    with another database or a location outside S3, ForeignTableError before any write when
    a needed name is taken."""
    if catalog.dialect != "athena":
        raise ConfigError(f"Glue holds Athena's catalog, not `{catalog.dialect}`'s: build the "
                          "catalog with dialect `athena`")
    if not catalog.location.startswith("s3://"):
        raise ConfigError(f"Glue's readers (Athena, Spectrum, EMR) read S3, not "
                          f"`{catalog.location}`: pass --location s3://BUCKET/PREFIX/events/")
    if not database:
        raise ConfigError("the Glue database name is empty: pass --database NAME")
    if catalog.database not in (None, database):
        raise ConfigError(f"the catalog's views name database `{catalog.database}`, not "
                          f"`{database}`: build it with database `{database}`")
    wanted = {catalog.table.lower(): _raw_table(catalog)}
    for view in catalog.views:
        wanted[view.name.lower()] = _view_table(view, database)
    report = GlueReport(database, tables=1, views=len(catalog.views))
    report.database_created = _ensure_database(glue, database, catalog.location)
    existing = _tables(glue, database)
    foreign = sorted(name for name in wanted if name in existing
                     and not _managed(existing[name]))
    if foreign:
        names = ", ".join(f"`{database}.{name}`" for name in foreign)
        raise ForeignTableError(f"Glue table(s) {names} exist and were not made by eventlake "
                                f"(no `{MARKER}` parameter): left as they are. Register into "
                                "another --database, or drop or rename them")
    for name, table_input in wanted.items():
        have = existing.get(name)
        if have is None:
            with _glue_call("create", f"{database}.{name}"):
                glue.create_table(DatabaseName=database, TableInput=table_input)
            report.created.append(name)
        elif _same(table_input, have):
            report.unchanged.append(name)
        else:
            with _glue_call("update", f"{database}.{name}"):
                glue.update_table(DatabaseName=database, TableInput=table_input)
            report.updated.append(name)
    for name, have in sorted(existing.items()):
        if name not in wanted and _managed(have) and have.get("TableType") == "VIRTUAL_VIEW":
            with _glue_call("delete", f"{database}.{name}"):
                glue.delete_table(DatabaseName=database, Name=name)
            report.deleted.append(name)
    return report


def read_presto_view(text: str) -> dict[str, Any]:
    """The view definition (originalSql, catalog, schema, columns...) in a ViewOriginalText."""
    if not (text.startswith(_VIEW_PREFIX) and text.endswith(_VIEW_SUFFIX)):
        raise ValueError(f"not a Presto view text: {text[:40]!r}")
    data = json.loads(base64.b64decode(text[len(_VIEW_PREFIX):-len(_VIEW_SUFFIX)]))
    if not isinstance(data, dict):
        raise ValueError("a Presto view text holds a JSON object")
    return data


# -- what is written ------------------------------------------------------------------------

def _raw_table(catalog: Catalog) -> dict[str, Any]:
    return {
        "Name": catalog.table,
        "Description": "eventlake's events as stored, copies of an event included: query "
                       "the view `events` (one row per event_id)",
        "TableType": "EXTERNAL_TABLE",
        "PartitionKeys": [{"Name": catalog.partition.name, "Type": catalog.partition.type}],
        "StorageDescriptor": {
            "Columns": [{"Name": c.name, "Type": c.type} for c in catalog.columns],
            "Location": catalog.location,
            **_PARQUET,
        },
        "Parameters": {**catalog.properties, "classification": "parquet",
                       "EXTERNAL": "TRUE", MARKER: "true"},
    }


def _view_table(view: View, database: str) -> dict[str, Any]:
    table: dict[str, Any] = {
        "Name": view.name,
        "TableType": "VIRTUAL_VIEW",
        "PartitionKeys": [],
        "ViewOriginalText": _presto_view(view, database),
        "ViewExpandedText": _VIEW_EXPANDED,
        "StorageDescriptor": {
            "Columns": [{"Name": c.name, "Type": _hive_type(c.type, view.name, c.name)}
                        for c in view.columns],
            "SerdeInfo": {},
        },
        "Parameters": {"presto_view": "true", "comment": "Presto View", MARKER: "true"},
    }
    if view.comment:
        table["Description"] = view.comment
    return table


def _presto_view(view: View, database: str) -> str:
    definition = {
        "originalSql": view.sql,
        "catalog": _VIEW_CATALOG,
        "schema": database,
        "columns": [{"name": c.name, "type": c.type} for c in view.columns],
        "runAsInvoker": False,
    }
    data = json.dumps(definition, separators=(",", ":")).encode()
    return f"{_VIEW_PREFIX}{base64.b64encode(data).decode('ascii')}{_VIEW_SUFFIX}"


def _hive_type(trino: str, view: str, column: str) -> str:
    """`varchar` -> `string`, `timestamp(3)` -> `timestamp`, `array(bigint)` ->
    `array<bigint>`, `decimal(10,2)` as is."""
    text = trino.strip().lower()
    base, _, rest = text.partition("(")
    base = base.strip()
    if base == "array" and rest.endswith(")"):
        return f"array<{_hive_type(rest[:-1], view, column)}>"
    hive = _HIVE_TYPES.get(base)
    if hive is None:
        raise ConfigError(f"view `{view}` column `{column}`: no Glue (Hive) type for the "
                          f"Athena type `{trino}`")
    return text if base == "decimal" else hive


# -- reading Glue --------------------------------------------------------------------------

def _ensure_database(glue: Any, database: str, location: str) -> bool:
    """Creates the database when missing; True when this call created it."""
    try:
        with _glue_call("read database", database):
            glue.get_database(Name=database)
        return False
    except GlueError as exc:
        if exc.code != "EntityNotFoundException":
            raise
    try:
        with _glue_call("create database", database):
            glue.create_database(DatabaseInput={
                "Name": database,
                "Description": f"Made by eventlake (`eventlake catalog glue`) for the lake "
                               f"at {location}",
            })
    except GlueError as exc:
        if exc.code != "AlreadyExistsException":  # made meanwhile: use it as is
            raise
        return False
    return True


def _tables(glue: Any, database: str) -> dict[str, dict[str, Any]]:
    """The database's tables by lowercase name (Glue keeps names lowercase)."""
    found: dict[str, dict[str, Any]] = {}
    with _glue_call("list the tables of", database):
        for page in glue.get_paginator("get_tables").paginate(DatabaseName=database):
            for table in page.get("TableList", []):
                found[str(table["Name"]).lower()] = table
    return found


def _managed(table: Mapping[str, Any]) -> bool:
    return str((table.get("Parameters") or {}).get(MARKER, "")).lower() == "true"


def _same(want: Any, have: Any, *, exact: bool = False) -> bool:
    """Whether Glue's `have` already says what `want` says. Keys Glue adds on its own
    (CreateTime, VersionId, Compressed...) are not compared, except in Parameters, whose keys
    are compared both ways (a property eventlake dropped must go). Missing equals empty."""
    empty: tuple[Any, ...] = (None, "", {}, [])
    if want in empty or have in empty:
        return want in empty and have in empty
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        keys = set(want) | set(have) if exact else set(want)
        return all(_same(want.get(k), have.get(k), exact=k == "Parameters") for k in keys)
    if isinstance(want, list):
        return (isinstance(have, list) and len(want) == len(have)
                and all(_same(w, h) for w, h in zip(want, have, strict=True)))
    return bool(want == have)


@contextmanager
def _glue_call(action: str, target: str) -> Iterator[None]:
    """botocore errors of one Glue call -> TransientError (retries spent) or GlueError."""
    try:
        yield
    except EventLakeError:
        raise
    except Exception as exc:
        code = error_code(exc)
        if is_transient(exc):
            raise TransientError(f"Glue kept failing to {action} `{target}` "
                                 f"({code or type(exc).__name__}): safe to re-run") from exc
        if code is None:
            raise
        message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
        raise GlueError(f"Glue refused to {action} `{target}`: {code}: {redact(str(message))}",
                        table=target, code=code) from exc


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"

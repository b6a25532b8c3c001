"""The lake as DDL for Athena, Spark and Trino: `plan_for` infers the typed schemas from the
lake's files and builds a `Catalog` (`build`); `statements` and `ddl_text` print it.

    events_raw   the files as they are, partitioned by dt (copies of an event included)
    events       one row per event_id: per (dt, event_id) the copy with the earliest
                 ingested_at, then the smallest content_hash (the lake's one-copy rule; a
                 window in a subquery: Spark and Trino have no QUALIFY)
    ev_<type>    per event type, query/typed.py's columns over `events` (dialects.py reads the
                 payload fields and says where the engines differ from DuckDB)

How each engine sees a new day's partition:
- athena  partition projection on dt (`projection.dt.type`='date', yyyy-MM-dd, from the lake's
          first day to NOW+1DAYS: a producer's clock may run minutes into tomorrow), so no
          MSCK REPAIR is ever needed. `dt` is declared `string`: every date projection in
          Athena's documentation declares its column STRING, and a projected value is the
          formatted text put into `storage.location.template` (the `dt=` folder name), so
          `dt = '2024-05-01'` and ranges on the text prune (yyyy-MM-dd sorts as dates). The
          views cast it to `date`, as DuckDB's `events` has it. Events older than the first
          day (a later backfill) fall outside the range: run `eventlake catalog` again then
          (the DDL's `ALTER TABLE ... SET LOCATION / SET TBLPROPERTIES` after its `CREATE ...
          IF NOT EXISTS` bring a table an earlier run made to this run's range and location).
- spark   temporary views, the raw one `USING parquet OPTIONS (path ...)`: Spark discovers the
          dt partitions when the view is made (a `CREATE TABLE ... USING parquet` over the
          same path reads 0 rows until `MSCK REPAIR TABLE`, and again misses each new day until
          repaired). Run the DDL at the start of each session; every day there is then read.
          Temporary views take no database.
- trino   a Hive connector table (`external_location`, `partitioned_by`), then
          `CALL system.sync_partition_metadata(...)`, which registers the dt folders found;
          re-run it (or schedule it) after new days land. Trino's own partition projection
          would need `hive.partition-projection-enabled=true` in the catalog's configuration,
          which DDL cannot assume. Names are qualified with schema `default` unless given.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from eventlake.catalog.dialects import SPELLING, Spelling, literal
from eventlake.catalog.model import DIALECTS, RAW_TABLE, Catalog, Column, Dialect, View
from eventlake.errors import ConfigError
from eventlake.lake.layout import EVENTS_DIR, PARTITION
from eventlake.query.typed import COMMON_COLUMNS, TypeSchema

if TYPE_CHECKING:
    from eventlake.query.views import Tiers

__all__ = ["EVENTS_VIEW", "TRINO_DEFAULT_SCHEMA", "build", "ddl_text", "location_for",
           "plan_for", "statements"]

EVENTS_VIEW = "events"
TRINO_DEFAULT_SCHEMA = "default"
"""The schema Trino's names are qualified with when no database is given (its CALL needs one)."""
_LAKE_COLUMNS = (("event_id", "VARCHAR"), ("event_type", "VARCHAR"), ("timestamp", "TIMESTAMP"),
                 ("ingested_at", "TIMESTAMP"), ("source", "VARCHAR"), ("subject", "VARCHAR"),
                 ("event_payload", "VARCHAR"), ("content_hash", "VARCHAR"))
"""EVENT_SCHEMA's columns and their types (events/schema.py; a test keeps them equal)."""
_TYPES = dict((*_LAKE_COLUMNS, (PARTITION, "DATE")))


def build(schemas: Sequence[TypeSchema], location: str, dialect: Dialect, *,
          database: str | None = None, first_day: date | None = None) -> Catalog:
    """The catalog of a lake whose `events/` folder is at `location` (a URI in the engine's
    scheme), with one typed view per schema. `first_day` starts Athena's partition projection
    (default: today, UTC)."""
    if dialect not in DIALECTS:
        raise ConfigError(f"no catalog dialect `{dialect}`; there are: {', '.join(DIALECTS)}")
    if dialect == "spark" and database:
        raise ConfigError(f"Spark's views are temporary (session) views, which take no "
                          f"database: drop `{database}`")
    if dialect == "trino" and not database:
        database = TRINO_DEFAULT_SCHEMA
    location = location if location.endswith("/") else location + "/"
    s = SPELLING[dialect]
    raw = s.raw_columns(_LAKE_COLUMNS)
    partition = Column(PARTITION, "string" if dialect == "athena" else s.sql_type("DATE"))
    properties: dict[str, str] = {}
    if dialect == "athena":
        first = (first_day or datetime.now(UTC).date()).isoformat()
        properties = {
            "projection.enabled": "true",
            f"projection.{PARTITION}.type": "date",
            f"projection.{PARTITION}.format": "yyyy-MM-dd",
            f"projection.{PARTITION}.range": f"{first},NOW+1DAYS",
            f"projection.{PARTITION}.interval": "1",
            f"projection.{PARTITION}.interval.unit": "DAYS",
            "storage.location.template": f"{location}{PARTITION}=${{{PARTITION}}}/",
        }
    views = (_events_view(s, database), *(_typed_view(s, database, schema)
                                          for schema in sorted(schemas, key=lambda x: x.view)))
    return Catalog(dialect, location, raw, partition, views, database, RAW_TABLE, properties)


def _events_view(s: Spelling, database: str | None) -> View:
    names = [n for n, _ in _LAKE_COLUMNS] + [PARTITION]
    columns = [s.ident(n) for n in names[:-1]]
    dt = s.ident(PARTITION)
    columns.append(f"CAST({dt} AS date) AS {dt}" if s.dialect == "athena" else dt)
    sql = (f"SELECT {', '.join(columns)}\n"
           f"FROM (SELECT *, row_number() OVER (PARTITION BY {dt}, {s.ident('event_id')} "
           f"ORDER BY {s.ident('ingested_at')}, {s.ident('content_hash')}) AS _copy\n"
           f"      FROM {s.qualified(database, RAW_TABLE)}) AS _copies\n"
           f"WHERE _copy = 1")
    return View(EVENTS_VIEW, sql, tuple(Column(n, s.sql_type(_TYPES[n])) for n in names),
                "one row per event_id: the copy with the earliest ingested_at, then the "
                "smallest content_hash")


def _typed_view(s: Spelling, database: str | None, schema: TypeSchema) -> View:
    common = [s.ident(c) for c in COMMON_COLUMNS]
    values: list[str] = []
    texts: list[str] = []
    unnamed: list[str] = []
    for i, f in enumerate(schema.fields, 1):
        path = s.path(f.keys)
        if path is None:
            unnamed.append(f.column)
            values.append(f"{s.null_of(f.sql_type)} AS {s.ident(f.column)}")
            continue
        jt = f"_j{i}"
        texts.append(f"{s.json_text('_p', path)} AS {jt}")
        values.append(f"{s.convert(f.sql_type, jt, s.unquoted('_p', path))} "
                      f"AS {s.ident(f.column)}")
    source = (f"SELECT *, {s.parsed_payload()} AS _p FROM {s.qualified(database, EVENTS_VIEW)} "
              f"WHERE {s.ident('event_type')} = {s.literal(schema.event_type)}")
    if texts:
        source = f"SELECT *, {', '.join(texts)}\n      FROM ({source}) AS _parsed"
    sql = "SELECT " + ",\n       ".join(common + values) + f"\nFROM ({source}) AS _fields"
    comment = f"events of type `{schema.event_type}`, payload fields typed"
    if unnamed:
        comment += (f"; NULL in {s.dialect}: {', '.join(unnamed)} (a payload key its JSON path "
                    "syntax cannot name)")
    columns = [Column(c, s.sql_type(_TYPES[c])) for c in COMMON_COLUMNS]
    columns += [Column(f.column, s.sql_type(f.sql_type)) for f in schema.fields]
    return View(schema.view, sql, tuple(columns), comment)


def statements(catalog: Catalog) -> list[str]:
    """The catalog as DDL statements in order (raw table, then the views), each complete,
    without the final `;` (some open with `--` comment lines)."""
    s = SPELLING[catalog.dialect]
    out = _raw_statements(catalog, s)
    for view in catalog.views:
        create = ("CREATE OR REPLACE TEMPORARY VIEW" if catalog.dialect == "spark"
                  else "CREATE OR REPLACE VIEW")
        out.append(f"-- {_one_line(view.comment)}\n" if view.comment else "")
        out[-1] += f"{create} {s.qualified(catalog.database, view.name)} AS\n{view.sql}"
    return out


def _raw_statements(catalog: Catalog, s: Spelling) -> list[str]:
    location = s.literal(catalog.location)
    if catalog.dialect == "athena":
        location = literal(catalog.location, backslash_escapes=True)  # Hive's literals
        def tick(name: str) -> str:  # Athena's DDL is Hive's: backquoted names
            return "`" + name.replace("`", "``") + "`"
        table = (f"{tick(catalog.database)}.{tick(catalog.table)}" if catalog.database
                 else tick(catalog.table))
        columns = ",\n  ".join(f"{tick(c.name)} {c.type}" for c in catalog.columns)
        properties = ",\n  ".join(f"{literal(k, backslash_escapes=True)}="
                                  f"{literal(v, backslash_escapes=True)}"
                                  for k, v in catalog.properties.items())
        return [f"-- partition projection on dt: new days are read with no MSCK REPAIR\n"
                f"CREATE EXTERNAL TABLE IF NOT EXISTS {table} (\n  {columns})\n"
                f"PARTITIONED BY ({tick(catalog.partition.name)} {catalog.partition.type})\n"
                f"STORED AS PARQUET\nLOCATION {location}\nTBLPROPERTIES (\n  {properties})",
                f"-- a re-run: the table an earlier run made gets this run's location and "
                f"projection range\nALTER TABLE {table} SET LOCATION {location}",
                f"ALTER TABLE {table} SET TBLPROPERTIES (\n  {properties})"]
    columns = ",\n  ".join(f"{s.ident(c.name)} {c.type}"
                           for c in (*catalog.columns, catalog.partition))
    table = s.qualified(catalog.database, catalog.table)
    if catalog.dialect == "spark":
        return [f"-- a temporary view: Spark finds every dt partition when it is made; run "
                f"this DDL at the start of each session\n"
                f"CREATE OR REPLACE TEMPORARY VIEW {table} (\n  {columns})\n"
                f"USING parquet\nOPTIONS (path {location})"]
    schema = s.literal(catalog.database or TRINO_DEFAULT_SCHEMA)
    return ["-- IF NOT EXISTS keeps a table an earlier run made as it is: DROP TABLE it "
            "first when the lake moved (an external table: its files stay)\n"
            f"CREATE TABLE IF NOT EXISTS {table} (\n  {columns})\n"
            f"WITH (external_location = {location}, format = 'PARQUET', "
            f"partitioned_by = ARRAY[{s.literal(catalog.partition.name)}])",
            "-- registers the dt folders found; re-run after new days land (Trino's partition "
            "projection needs hive.partition-projection-enabled in the catalog config)\n"
            f"CALL system.sync_partition_metadata({schema}, {s.literal(catalog.table)}, 'ADD')"]


def ddl_text(catalog: Catalog) -> str:
    """A `--` header (what this is, over which location), then the statements, each ending
    `;`, separated by blank lines."""
    header = (f"-- eventlake catalog for {catalog.dialect}: table {catalog.table} over "
              f"{_one_line(catalog.location)}, view {EVENTS_VIEW} (one row per event_id) and "
              f"{len(catalog.views) - 1} typed view(s) ev_<type>.\n"
              f"-- Generated by `eventlake catalog ddl --dialect {catalog.dialect}`; run it "
              f"again when new event types or fields appear.\n\n")
    return header + ";\n\n".join(statements(catalog)) + ";\n"


def _one_line(text: str) -> str:
    """`text` fit for a `--` comment: its line breaks as spaces (an event type or a location
    holding one would otherwise end the comment and run the rest as SQL)."""
    return " ".join(text.splitlines())


def location_for(root: str, dialect: Dialect, *, is_s3: bool) -> str:
    """The URI of `<root>/events/` in the engine's scheme: s3:// (Athena, Trino), s3a://
    (Spark), file:///abs/path/ for a local lake (Athena reads S3 only: refused)."""
    if is_s3:
        base = root.removeprefix("s3://").rstrip("/")
        scheme = "s3a" if dialect == "spark" else "s3"
        return f"{scheme}://{base}/{EVENTS_DIR}/"
    if dialect == "athena":
        raise ConfigError(f"Athena reads only S3, and the lake `{root}` is local: give "
                          "--location s3://bucket/prefix/events/ (where the lake's events/ "
                          "folder is copied), or set EVENTLAKE_LAKE_URI to an s3:// lake")
    return f"file://{root.rstrip('/')}/{EVENTS_DIR}/"


def plan_for(tiers: Tiers, dialect: Dialect, *, location: str | None = None,
             database: str | None = None) -> Catalog:
    """The catalog of `tiers`' lake: the typed schemas inferred from its Parquet files only
    (the engines read S3, never DynamoDB), the location from the lake URI unless given."""
    from eventlake.query.typed import infer
    from eventlake.query.views import COLD_PARTITIONS, connect

    lake = tiers.cold
    where = location or location_for(lake.root, dialect, is_s3=lake.is_s3)
    con = connect(tiers, hot=False)
    try:
        schemas = infer(con)
        first = con.execute(f"SELECT min(dt) FROM {COLD_PARTITIONS}").fetchall()[0][0]
    finally:
        con.close()
    return build(schemas, where, dialect, database=database, first_day=first)

"""DuckDB over both tiers: a connection with the views `events_cold`, `events_hot` and `events`,
the macro `events_between`, and the analytics queries of `eventlake/query/sql/`.

What a connection reads is fixed when it is made, in this order (`take_snapshot`):

    1. watermark   every event ingested before it is in the lake's files
    2. list        the lake's files, once (`Lake.list_files`): a connection does not see
                   partitions or files written later; `refresh` it, or connect again
    3. hot         items ingested in [watermark - skew, now + CLOCK_SKEW) through the
                   ingestion-time index (no watermark yet: the whole retention period plus
                   TTL's lateness); skew is EVENTLAKE_CLOCK_SKEW_SECONDS

    ingested_at ──────────────────[skew)[watermark)─────────────────────── now
                 cold: the files listed at 2   hot: read at 3; archived (before the watermark,
                                               or meanwhile) -> in both, the seam drops the
                                               hot copy

The look-back shows the events of a producer whose clock stamps them (up to the skew) behind
the watermark before a sweep archives them; those it re-reads that are archived already are
in the cold files of their dt, which the seam drops.

The order is what loses nothing: a sweep writes its files before it moves the watermark, so
the files listed after reading the watermark hold everything before it. A late event (an old
timestamp, ingested now) is hot by its ingestion time and lands in its own old `dt`.

    events_cold  bare: single-file partitions of an eventlake writer's file (a lone file planted
                 by hand goes through the window until its manifest names it), and
                 partitions whose files are all named by their manifest
                 (`lake/disjoint.py`: proven disjoint on event_id, each id once; the sweep
                 and compaction verify)                                 <- no window, no join
                 UNION ALL
                 kept (verified files of a partition that also has unverified ones): rows
                 whose (dt, event_id) no unverified file holds          <- bare, a LEFT join
                 UNION ALL
                 one row per (dt, event_id) among the kept rows an unverified file shares an
                 id with, plus the unverified files' rows (every file of a partition without
                 a manifest): the copy with the earliest ingested_at, then the smallest
                 content_hash (`lake/dedup.py`'s rule)                  <- the window
    events_hot   the hot rows the listed files lack, one per event_id (a table of the
                 connection: they are few); only those are fetched whole from DynamoDB
    events       events_cold UNION ALL hot rows whose (dt, event_id) the cold files lack

Reading the files. A local lake: DuckDB's own Parquet reader, the schema given (`schema=`) so
that binding a query opens no file. A single-file partition is read by its listed path. A
several-file partition without a verified file, by the pattern `dt=<dt>/[!._]*.parquet`,
expanded when each query starts: compaction (write the merged file, then delete the inputs)
never leaves it empty, and whatever files it holds are de-duplicated, so a long-lived
connection keeps working while such a partition is compacted. A partition with verified files
is read by its listed paths (a pattern would take in files nobody verified): when compaction
deletes them, a long-lived connection's query fails naming the file (never a miscount) and
must be `refresh`ed; `run_sql` lists again by itself. The manifest read with the listing is
true whenever it was written: it names files by name, size and modification time.
An S3 lake (DuckDB's httpfs is not available offline): pyarrow datasets registered with
the connection, one fragment per listed file, DuckDB pushing projections and filters into
the Arrow scan; fragments are kept per lake with the footers pyarrow read while the listing
shows the same object (`query/fragments.py`): a footer is one GET per file and lake object.
A listed file that vanished fails the query; `run_sql` (EventLake.sql) then lists again and
retries.

Pruning, verified on DuckDB 2.0 (tests/test_query.py proves it by the files a query reads):
- `dt` predicates skip whole partitions on both paths; a skipped file is never opened.
- `timestamp` predicates: on S3 each fragment carries "dt = D and D <= timestamp < D + 1", so
  pyarrow skips files of other days unopened. DuckDB's reader has no per-file bounds to go by:
  it opens each file's footer and skips row groups by their min/max statistics (no data
  pages read). `events_between(from_ts, to_ts)` adds the implied dt range, skipping the
  files on both paths; a predicate on timestamp plus one on dt does the same.
- Over unverified several-file partitions the de-duplicating window passes `dt` predicates
  down (as do the joins that meet verified files with unverified ones), not
  `timestamp` ones (copies of an event must meet before one is chosen).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import duckdb

from eventlake.errors import ConfigError
from eventlake.events.times import as_utc
from eventlake.lake.layout import EVENTS_DIR, PARTITION
from eventlake.lake.names import is_own_file
from eventlake.lake.vanish import file_vanished, retry_on_vanish
from eventlake.logs import lazy_logger

if TYPE_CHECKING:
    import pyarrow as pa

    from eventlake.hot.store import HotStore, Item
    from eventlake.lake.store import Lake, LakeFile

# pyarrow, the hot tier's modules and the de-duplicating read are imported where they are
# needed: `eventlake sql --cold-only` on a local lake runs on DuckDB alone (its start-up is
# part of every answer; tests/cli/test_startup_imports.py holds it to that).

__all__ = ["CLOCK_SKEW", "COLD_PARTITIONS", "HELPERS", "VIEWS", "Engine", "Snapshot", "Tiers",
           "cold_schema", "connect", "file_vanished_in_query", "helpers_named",
           "install", "list_queries", "load_sql", "names_typed_view",
           "queries_named", "read_hot", "refresh", "run_sql", "take_snapshot"]

_log = lazy_logger("eventlake.query.views")

T = TypeVar("T")

VIEWS = ("events", "events_cold", "events_hot")
CLOCK_SKEW = timedelta(minutes=5)
"""How far past the reader's clock the hot read reaches: writers stamp `ingested_at` with their
own clocks, which may run ahead of the reader's."""
_VIEW_COLUMNS = (("event_id", "VARCHAR"), ("event_type", "VARCHAR"),
                 ("timestamp", "TIMESTAMPTZ"), ("ingested_at", "TIMESTAMPTZ"),
                 ("source", "VARCHAR"), ("subject", "VARCHAR"), ("event_payload", "VARCHAR"),
                 ("content_hash", "VARCHAR"), (PARTITION, "DATE"))
"""COLD_SCHEMA in DuckDB's types (spelled out, so building SQL needs no pyarrow;
tests/query/test_view_columns.py holds it equal to EVENT_SCHEMA)."""
_COLUMNS = ", ".join(f'"{name}"' for name, _ in _VIEW_COLUMNS)
_SCHEMA = "MAP {" + ", ".join(
    f"'{name}': {{name: '{name}', type: '{kind}', default_value: NULL}}"
    for name, kind in _VIEW_COLUMNS if name != PARTITION) + "}"
"""read_parquet's `schema=` (by column name): binding a query then opens no file."""
_EMPTY = "SELECT " + ", ".join(f'CAST(NULL AS {kind}) AS "{name}"'
                               for name, kind in _VIEW_COLUMNS) + " WHERE false"
_ONE_COPY = ("QUALIFY row_number() OVER (PARTITION BY dt, event_id "
             "ORDER BY ingested_at, content_hash) = 1")
"""lake.dedup.first_copies' rule in SQL. An event_id lives in one partition (the date of its
timestamp), so partitioning by dt too changes nothing and lets dt predicates through."""
_GLOB = frozenset("*?[]{}")
"""Characters DuckDB's reader takes for a glob in a listed path."""
_FILES = "[!._]*.parquet"
"""The pattern of a partition's event files: Lake.list_files' rule (no hidden, no `_` names)."""
_VANISHED = (r"No files found that match the pattern|No such file or directory|"
             r"errno 2\b|NO_SUCH_KEY|NoSuchKey|RESOURCE_NOT_FOUND|"
             r"Path does not exist")
"""What a reader says of a listed file that is gone (compiled on first need: an error's)."""
_REGISTERED = "registered as '_eventlake_"
"""How DuckDB names a dataset `install` registered (`_eventlake_<group>`) in a reading error."""
_HOT_TABLE = "_eventlake.hot"
COLD_PARTITIONS = "_eventlake.cold_partitions"
"""A table of the connection: the `dt` (DATE) of each partition the listing found, once each,
and `bytes`, the size of its files (what a reader visiting only the days that hold events, a
few days at a time, goes by: no file opened)."""
HELPERS = ("events_between", "eventlake_snapshot", COLD_PARTITIONS)
"""What a connection holds besides the views: made unless the session asks for some only
(`helpers_named`: `eventlake sql` makes those its SQL names; each costs ~1-2 ms to make)."""
Engine = Literal["auto", "duckdb", "arrow"]
"""How the views read the files: DuckDB's Parquet reader (local lakes), pyarrow datasets (any
lake; S3 needs them), or `auto`: DuckDB's reader where it can reach the files."""
_SQL_FOLDER = Path(__file__).with_name("sql")
"""The named queries (a folder of the package; importlib.resources costs ~15 ms to import)."""


class Tiers(Protocol):
    """What the views read: the hot tier and the lake (an `EventLake` is one)."""

    @property
    def hot(self) -> HotStore: ...

    @property
    def cold(self) -> Lake: ...


# -- the public surface -----------------------------------------------------------------------

def connect(lake: Tiers, *, hot: bool = True, now: datetime | None = None,
            engine: Engine = "auto", typed: bool = False, queries: Iterable[str] | None = None,
            helpers: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection with the views `events`, `events_cold`, `events_hot`,
    the table macro `events_between(from_ts, to_ts)`, one view per parameterless query of
    `eventlake/query/sql/`, and `eventlake_snapshot` (one row: what the connection reads).

    The lake is listed once, here: the connection does not see partitions or files written
    later (call `refresh(con, lake)` or connect again; on a local lake a partition that had
    several files is read by pattern, so its newer files are seen). A query meeting a listed
    file that compaction has since deleted fails (`run_sql` lists again and retries).
    `hot=False` reads the Parquet lake only (DynamoDB is not touched; `events_hot` is empty).
    The session time zone is UTC.
    Cursors (`con.cursor()`) see the views of a local lake; over an S3 lake the views read
    pyarrow datasets registered with this connection, so use the connection itself.
    `typed` adds the typed views `ev_<type>` (query/typed.py): inferring them reads every
    payload's structure, about 0.7 s for 300,000 events, so only sessions that may use them
    ask (EventLake.connect, `eventlake sql` on a query naming `ev_`, `eventlake schema`).
    `queries` names the views of `eventlake/query/sql/` to make (default: all of them;
    `eventlake sql` makes those its SQL names, `queries_named`). `helpers` likewise names the
    HELPERS to make (default: all; `helpers_named`).
    """
    def attempt() -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        try:
            install(con, lake.cold, take_snapshot(lake, hot=hot, now=now), engine=engine,
                    typed=typed, queries=queries, helpers=helpers)
        except BaseException:
            con.close()
            raise
        return con

    return _listing_again_on_vanish(attempt)


def refresh(con: duckdb.DuckDBPyConnection, lake: Tiers, *, hot: bool = True,
            now: datetime | None = None, engine: Engine = "auto", typed: bool = False
            ) -> Snapshot:
    """List the lake (and read the hot tier) again and point `con`'s views at what is there."""
    snapshot = take_snapshot(lake, hot=hot, now=now)
    install(con, lake.cold, snapshot, engine=engine, typed=typed)
    return snapshot


def run_sql(lake: Tiers, query: str, params: Mapping[str, Any] | None = None, *,
            hot: bool = True, typed: bool | None = None) -> pa.Table:
    """Run `query` (named parameters `$name` from `params`) on a fresh connection; the whole
    result as an Arrow table (for a statement that is not a query, what DuckDB reports: a
    `Count` row, or an empty table).

    A file that vanishes under the query (compaction replaced it after the listing) makes it
    connect again, listing afresh, and run again: up to VANISH_ATTEMPTS times, like every
    reader of the lake, then TransientError (safe to retry). The typed views are made when
    `typed`, or (None) when the query names one (`ev_`).
    """
    values = dict(params) if params else None
    with_typed = names_typed_view(query) if typed is None else typed

    def attempt() -> pa.Table:
        import pyarrow as pa

        con = connect(lake, hot=hot, typed=with_typed)
        try:
            relation = con.sql(query, params=values)
            return relation.to_arrow_table() if relation is not None else pa.table({})
        finally:
            con.close()

    return _listing_again_on_vanish(attempt)


def list_queries() -> list[str]:
    """The names of the queries in `eventlake/query/sql/` (file names without `.sql`), sorted."""
    return sorted(entry.name.removesuffix(".sql") for entry in _SQL_FOLDER.iterdir()
                  if entry.name.endswith(".sql") and entry.is_file())


_CATALOG_WORDS = re.compile(r"\b(show|describe|information_schema|duckdb_\w+|"
                            r"pragma|sqlite_master)\b")
"""SQL that asks what the session holds (any `duckdb_*()` listing: views, tables, macros...): it
gets every view and helper, as a session always had."""


def queries_named(sql: str) -> list[str]:
    """The queries of `eventlake/query/sql/` whose name `sql` may use (it contains the name):
    the views a session running `sql` needs. SQL that lists the catalog (`SHOW TABLES`,
    `DESCRIBE`, `duckdb_views()`, `information_schema`) gets them all."""
    text = sql.lower()
    if _CATALOG_WORDS.search(text):
        return list(list_queries())
    return [name for name in list_queries() if name.lower() in text]


def helpers_named(sql: str, queries: Iterable[str] = ()) -> list[str]:
    """The HELPERS whose name `sql`, or the text of one of the named `queries` (made views of
    the same session), contains: those a session running `sql` needs. SQL that lists the
    catalog gets them all, as `queries_named` gives it every query."""
    text = "\n".join([sql, *map(load_sql, queries)]).lower()
    if _CATALOG_WORDS.search(text):
        return list(HELPERS)
    return [name for name in HELPERS if name.rpartition(".")[2] in text]


def load_sql(name: str) -> str:
    """The text of query `name` of `eventlake/query/sql/`: a header comment (what it answers, its
    grain, its `$parameters`), then one statement."""
    if name not in list_queries():
        raise KeyError(f"no query named `{name}` in eventlake/query/sql/; there are: "
                       f"{', '.join(list_queries())}")
    return _SQL_FOLDER.joinpath(f"{name}.sql").read_text("utf-8")


# -- the snapshot: what a connection reads -----------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """The lake's files as listed, the hot rows as read, and the window they came from."""

    taken_at: datetime
    files: tuple[LakeFile, ...]
    hot_table: pa.Table | None = field(default=None, repr=False)
    """COLD_SCHEMA, one row per event_id; None when the hot tier was not read."""
    watermark: datetime | None = None
    hot_since: datetime | None = None
    """Start of the hot window (None: the hot tier was not read)."""
    hot_until: datetime | None = None
    not_events: int = 0
    """Hot items that are not eventlake events (left out; the sweep quarantines them)."""
    verified: frozenset[str] = frozenset()
    """Paths among `files` their partition's manifest names as disjoint on event_id
    (`lake/disjoint.py`): read bare, with no window."""

    @property
    def hot(self) -> pa.Table:
        """The hot rows (COLD_SCHEMA); an empty table when the hot tier was not read."""
        if self.hot_table is None:
            return cold_schema().empty_table()
        return self.hot_table

    @property
    def hot_rows(self) -> int:
        """How many hot rows the snapshot holds (no pyarrow needed when none were read)."""
        return 0 if self.hot_table is None else int(self.hot_table.num_rows)


def take_snapshot(lake: Tiers, *, hot: bool = True, now: datetime | None = None
                  ) -> Snapshot:
    """Read the watermark, then list the lake, then read the hot tier (the module docstring
    says why in this order). `hot=False` lists the lake only (the hot store is not even
    built). `now` defaults to the hot store's (corrected) clock; with `hot=False`, to this
    machine's: nothing of DynamoDB's is read."""
    from eventlake.lake.disjoint import verified_files

    if not hot:
        files = _list_existing(lake.cold)
        return Snapshot(as_utc(now or datetime.now(UTC)), files,
                        verified=verified_files(lake.cold, files))
    from eventlake.lake.shards import read_recorded_shards
    from eventlake.lake.watermark import read_watermark, window_start

    now = as_utc(now or lake.hot.now())
    watermark = read_watermark(lake.cold)
    files = _list_existing(lake.cold)
    verified = verified_files(lake.cold, files)
    read_recorded_shards(lake.cold, lake.hot)  # every shard the lake has seen in force
    since = window_start(watermark, now, lake.hot.reader_settings())  # a raised skew too
    until = now + CLOCK_SKEW
    rows, not_events = read_hot(lake.hot, since, until, lake=lake.cold, files=files)
    if not_events:
        _log.warning("%d hot item(s) ingested since %s are not eventlake events; the views "
                     "leave them out (the sweep quarantines them)", not_events, since)
    return Snapshot(now, files, rows, watermark.at if watermark else None, since, until,
                    not_events, verified)


def _list_existing(cold: Lake) -> tuple[LakeFile, ...]:
    """The lake's files; LakeNotFoundError when it has none because it does not exist (a
    wrong lake URI reads as an empty lake otherwise). A lake with files exists: no extra IO."""
    files = tuple(cold.list_files())
    if not files:
        cold.require_exists()
    return files


def read_hot(store: HotStore, since: datetime, until: datetime, *, lake: Lake | None = None,
             files: Sequence[LakeFile] = ()) -> tuple[pa.Table, int]:
    """Items ingested in [since, until) as COLD_SCHEMA rows, one per event_id, and how many
    items were not events.

    With `lake`, only the events that `files` (the snapshot's listing) lack: the index's
    entries (hot/index.py) are anti-joined on (dt, event_id) against those files, and only
    the rest is fetched whole (BatchGetItem). Anti-joining against the listed files, not a
    fresh listing, is what keeps an event written meanwhile from falling between the tiers.
    A listed file that vanished (compaction) counts as holding nothing: its events are
    fetched, and the seam drops them again. Entries that are whole items already (the old
    index, during a migration) and entries the index alone cannot place (another writer's
    timestamp layout) are anti-joined the same way once read. Without `lake`, every item is
    read whole and kept."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from eventlake.codec import RowBuilder
    from eventlake.hot.index import entry_key, is_whole
    from eventlake.lake.dedup import KEY_COLUMNS, first_copies

    builder = RowBuilder()
    not_events = 0
    held = _ListedIds(lake, files) if lake is not None else None
    undecided = False  # rows read whole without asking the lake first: asked once built
    for page in store.read_index_pages(since, until):
        whole = [entry for entry in page if is_whole(entry)]
        partial = [entry for entry in page if not is_whole(entry)]
        undecided = undecided or bool(whole) or any(entry_key(e) is None for e in partial)
        if held is not None and partial:
            partial = held.lacking(partial)
        if partial:
            fetched = store.fetch([entry["event_id"]["S"] for entry in partial])
            if fetched.vanished:
                _log.info("%d hot item(s) were deleted (TTL) between the index read and the "
                          "fetch; e.g. `%s`", len(fetched.vanished), fetched.vanished[0])
            whole += [fetched.items[entry["event_id"]["S"]] for entry in partial
                      if entry["event_id"]["S"] in fetched.items]
        not_events += len(builder.add_images(whole))
    not_events += len(builder.reject_invalid())
    table = builder.to_table()
    if table.num_rows:  # the table's key is event_id; an index read repeating one is no harm
        keep, _ = first_copies(table.select(KEY_COLUMNS))
        if pc.sum(keep).as_py() < table.num_rows:
            table = table.filter(keep)
    dts = pc.cast(table["timestamp"], pa.date32())
    if held is not None and undecided and table.num_rows:
        # whole entries (the old index) and entries the index alone could not place (another
        # writer's timestamp layout): the listed files may hold them too
        lacking = pc.invert(held.holds(table["event_id"], dts))
        table, dts = table.filter(lacking), dts.filter(lacking)
    return table.append_column(PARTITION, dts), not_events


class _ListedIds:
    """The event_ids the listed lake files hold, read per dt on first need (one column)."""

    def __init__(self, lake: Lake, files: Sequence[LakeFile]) -> None:
        self.lake = lake
        self.files: dict[str, list[LakeFile]] = {}
        for f in files:
            self.files.setdefault(f.dt, []).append(f)
        self.ids: dict[str, pa.Array] = {}

    def lacking(self, entries: list[Item]) -> list[Item]:
        """The entries whose event the listed files do not hold (undecidable ones too)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from eventlake.hot.index import entry_key

        keep: list[Item] = []
        by_dt: dict[str, list[Item]] = {}
        for entry in entries:
            key = entry_key(entry)
            dt = None if key is None else key[1]
            if dt is None or dt not in self.files:
                keep.append(entry)
            else:
                by_dt.setdefault(dt, []).append(entry)
        for dt, group in by_dt.items():
            present = self._ids(dt)
            ids = pa.array([e["event_id"]["S"] for e in group], pa.string())
            stored = pc.is_in(ids, value_set=present).to_pylist()
            keep += [e for e, there in zip(group, stored, strict=True) if not there]
        return keep

    def holds(self, event_ids: pa.ChunkedArray, dts: pa.ChunkedArray) -> pa.Array:
        """Per row, whether the listed files of its dt (a date32) hold its event_id."""
        import pyarrow as pa
        import pyarrow.compute as pc

        held = pa.array([False] * len(event_ids))
        for day in pc.unique(dts).to_pylist():
            if day is None or day.isoformat() not in self.files:
                continue
            there = pc.and_(pc.equal(dts, pa.scalar(day, pa.date32())),
                            pc.is_in(event_ids, value_set=self._ids(day.isoformat())))
            held = pc.or_(held, there.combine_chunks())
        return held

    def _ids(self, dt: str) -> pa.Array:
        import pyarrow as pa

        if dt not in self.ids:
            paths = [f.path for f in self.files[dt]]
            try:
                tables = self.lake.read_each(paths, ["event_id"])
            except OSError as exc:
                if not file_vanished(exc):
                    raise
                tables = [t for t in map(self._read_unless_vanished, paths) if t is not None]
            self.ids[dt] = (pa.concat_tables(tables)["event_id"].combine_chunks() if tables
                            else pa.array([], pa.string()))
        return self.ids[dt]

    def _read_unless_vanished(self, path: str) -> pa.Table | None:
        try:
            return self.lake.read_file(path, ["event_id"])
        except OSError as exc:
            if not file_vanished(exc):
                raise
            return None


# -- installing the views ----------------------------------------------------------------------

def names_typed_view(query: str) -> bool:
    """Whether `query` may name a typed view (`ev_...`): then its session makes them."""
    return "ev_" in query.lower()


def install(con: duckdb.DuckDBPyConnection, lake: Lake, snapshot: Snapshot, *,
            engine: Engine = "auto", typed: bool = False,
            queries: Iterable[str] | None = None, helpers: Iterable[str] | None = None) -> None:
    """(Re)create the views of `snapshot` on `con`: see the module docstring. `queries`: the
    named queries made views (default: all of `eventlake/query/sql/`); `helpers`: the HELPERS
    made (default: all)."""
    files = snapshot.files
    # Both readers below take the lake's schema as given: a foreign file's missing columns
    # would read as NULL rows, so such a file is refused here, by name. On S3 a verified file's
    # footer was checked by the verify that named it (by key, size and LastModified, which no
    # client sets: this very object, a same-second overwrite aside) and is not fetched again,
    # a GET each; on local disk a modification time can be set back (`cp -p`, `touch -r`) and
    # a footer costs a read of the page cache: every foreign file is checked.
    lake.check_foreign([f for f in files if not lake.is_s3 or f.path not in snapshot.verified])
    groups = _ColdGroups.of(files, snapshot.verified)
    hot_dts = _dts_of(snapshot.hot_table)
    seam = [f for f in files if f.dt in hot_dts]
    # DuckDB reads each listed path as a glob pattern: a root with glob characters goes Arrow
    reachable = not lake.is_s3 and not any(_GLOB.intersection(f.path) for f in files)
    if engine == "duckdb" and not reachable:
        raise ConfigError(f"DuckDB's Parquet reader cannot read lake `{lake.root}` here (S3 "
                          "needs httpfs, and glob characters in paths are not escapable): "
                          "use engine `arrow` or `auto`")
    native = engine == "duckdb" or (engine == "auto" and reachable)
    from eventlake.query import fragments

    # pyarrow's reader: one fragment per file (on S3 the lake's kept ones, footers read once)
    fragment_of = {} if native or not files else fragments.fragments(lake, files)

    def source(name: str, group: Sequence[LakeFile]) -> str | None:
        if not group:
            return None
        if native:  # an unverified several-file partition by pattern: the module docstring
            return _read_parquet(list(dict.fromkeys(
                f"{f.path.rpartition('/')[0]}/{_FILES}" if f.dt in groups.by_pattern
                else f.path for f in group)))
        con.register(f"_eventlake_{name}",
                     fragments.dataset(lake, group, fragment_of, cold_schema()))
        return f"_eventlake_{name}"

    made = set(HELPERS if helpers is None else helpers)
    run = con.execute
    run("SET GLOBAL TimeZone = 'UTC'")
    run("CREATE SCHEMA IF NOT EXISTS _eventlake")
    if snapshot.hot_rows:
        con.register("_eventlake_hot_rows", snapshot.hot)
        run(f"CREATE OR REPLACE TABLE {_HOT_TABLE} AS SELECT * FROM _eventlake_hot_rows")
        con.unregister("_eventlake_hot_rows")
        run(f"CREATE OR REPLACE VIEW events_hot AS SELECT {_COLUMNS} FROM {_HOT_TABLE}")
    else:  # no table to fill: the view is the empty rows themselves (a refresh drops the old)
        run(f"DROP TABLE IF EXISTS {_HOT_TABLE}")
        run(f"CREATE OR REPLACE VIEW events_hot AS {_EMPTY}")
    if COLD_PARTITIONS in made:
        sizes = Counter[str]()
        for f in files:
            sizes[f.dt] += f.size
        run(f"CREATE OR REPLACE TABLE {COLD_PARTITIONS} ({PARTITION} DATE, bytes BIGINT)")
        if sizes:  # dt is a checked YYYY-MM-DD (the listing's)
            run(f"INSERT INTO {COLD_PARTITIONS} VALUES " + ", ".join(
                f"(DATE '{dt}', {sizes[dt]})" for dt in sorted(sizes)))
    cold = _cold_sql(source("bare", groups.bare), source("kept", groups.kept),
                     source("unverified", groups.unverified))
    run(f"CREATE OR REPLACE VIEW events_cold AS\n{cold}")
    run(f"CREATE OR REPLACE VIEW events AS\n"
        f"{_events_sql(snapshot.hot_rows > 0, source('seam', seam))}")
    if "events_between" in made:
        run(_EVENTS_BETWEEN)
    if "eventlake_snapshot" in made:
        run(_snapshot_sql(snapshot, "duckdb-parquet" if native else "pyarrow-dataset"))
    for name in list_queries() if queries is None else queries:
        text = load_sql(name)
        if not con.extract_statements(text)[0].named_parameters:
            run(f'CREATE OR REPLACE VIEW "{name}" AS\n{_body(text)}')
    if typed:
        from eventlake.query.typed import install_typed

        install_typed(con)


def _dts_of(hot: pa.Table | None) -> set[str]:
    """The partitions (`YYYY-MM-DD`) the hot rows fall in."""
    if hot is None or not hot.num_rows:
        return set()
    import pyarrow.compute as pc

    return {d.isoformat() for d in pc.unique(hot[PARTITION]).to_pylist()}


class _ColdGroups:
    """The listed files by how events_cold reads them (the module docstring's diagram). A
    plain class: a frozen dataclass costs ~0.7 ms to create at import, on every `eventlake sql`."""

    bare: list[LakeFile]
    """Single-file partitions of a file an eventlake writer named (they write each id once),
    and the files of partitions whose files are all verified. A lone file planted by hand
    may hold an id twice: it is read through the window until verified or compacted."""
    kept: list[LakeFile]
    """Verified files of partitions that also have unverified ones."""
    unverified: list[LakeFile]
    """The other files of several-file partitions."""
    by_pattern: frozenset[str]
    """Partitions without a verified file: read by pattern on DuckDB's reader."""

    def __init__(self, bare: list[LakeFile], kept: list[LakeFile], unverified: list[LakeFile],
                 by_pattern: frozenset[str]) -> None:
        self.bare, self.kept, self.unverified = bare, kept, unverified
        self.by_pattern = by_pattern

    @classmethod
    def of(cls, files: Sequence[LakeFile], verified: frozenset[str]) -> _ColdGroups:
        per_dt = Counter(f.dt for f in files)
        trusted = Counter(f.dt for f in files if f.path in verified)
        bare, kept, unverified = [], [], []
        for f in files:
            if (per_dt[f.dt] == 1 and is_own_file(f.path.rpartition("/")[2])) \
                    or trusted[f.dt] == per_dt[f.dt]:
                bare.append(f)
            elif f.path in verified:
                kept.append(f)
            else:
                unverified.append(f)
        return cls(bare, kept, unverified,
                   frozenset(dt for dt, n in per_dt.items() if n > 1 and not trusted[dt]))


def _cold_sql(bare: str | None, kept: str | None, unverified: str | None) -> str:
    branches = []
    if bare:
        branches.append(f"SELECT {_COLUMNS} FROM {bare}")
    if kept and unverified:
        # Kept files are disjoint among themselves: only their rows whose id an unverified
        # file of the partition holds too meet the copies, in the one-copy window. LEFT and
        # inner joins on (dt, event_id), not EXISTS or SEMI: DuckDB passes a `dt` predicate
        # through those to both sides (through the others it read every partition's
        # unverified files; tests/query/test_disjoint_reads.py proves it).
        on = "ON k.dt = u.dt AND k.event_id = u.event_id"
        ids = f"(SELECT DISTINCT dt, event_id FROM {unverified}) AS u {on}"
        kept_columns = ", ".join(f"k.{c}" for c in _COLUMNS.split(", "))
        branches.append(f"SELECT {kept_columns} FROM {kept} AS k LEFT JOIN {ids} "
                        "WHERE u.event_id IS NULL")
        branches.append(f"SELECT {_COLUMNS} FROM (SELECT {kept_columns} FROM {kept} AS k "
                        f"JOIN {ids} UNION ALL SELECT {_COLUMNS} FROM {unverified}) "
                        f"{_ONE_COPY}")
    elif unverified:
        branches.append(f"SELECT {_COLUMNS} FROM {unverified} {_ONE_COPY}")
    return "\nUNION ALL\n".join(f"({b})" for b in branches) or _EMPTY


def _events_sql(any_hot: bool, seam: str | None) -> str:
    if not any_hot:
        return "SELECT * FROM events_cold"
    hot = "SELECT * FROM events_hot"
    if seam:
        hot += (f" AS h WHERE NOT EXISTS (SELECT 1 FROM {seam} AS c "
                "WHERE c.dt = h.dt AND c.event_id = h.event_id)")
    return f"(SELECT * FROM events_cold)\nUNION ALL\n({hot})"


_EVENTS_BETWEEN = """
CREATE OR REPLACE MACRO events_between(from_ts, to_ts) AS TABLE
SELECT * FROM events
WHERE dt BETWEEN CAST(timezone('UTC', CAST(from_ts AS TIMESTAMPTZ)) AS DATE)
             AND CAST(timezone('UTC', CAST(to_ts AS TIMESTAMPTZ)) AS DATE)
  AND "timestamp" >= CAST(from_ts AS TIMESTAMPTZ)
  AND "timestamp" < CAST(to_ts AS TIMESTAMPTZ)
"""
"""Events with from_ts <= timestamp < to_ts. The dt range it adds (dt is the UTC date of the
timestamp) is what lets the scan skip other partitions' files."""


def _read_parquet(paths: Sequence[str]) -> str:
    listed = ", ".join(_literal(p) for p in paths)
    return (f"read_parquet([{listed}], hive_partitioning = true, hive_types = {{'dt': 'DATE'}}, "
            f"hive_types_autocast = false, schema = {_SCHEMA})")


def _snapshot_sql(s: Snapshot, engine: str) -> str:
    def ts(value: datetime | None) -> str:
        return f"TIMESTAMPTZ {_literal(value.isoformat())}" if value else "NULL::TIMESTAMPTZ"

    return ("CREATE OR REPLACE TABLE eventlake_snapshot AS SELECT "
            f"{ts(s.taken_at)} AS taken_at, {ts(s.watermark)} AS watermark, "
            f"{ts(s.hot_since)} AS hot_since, {ts(s.hot_until)} AS hot_until, "
            f"{s.hot_rows}::BIGINT AS hot_rows, {s.not_events}::BIGINT AS hot_not_events, "
            f"{len(s.files)}::BIGINT AS cold_files, "
            f"{len({f.dt for f in s.files})}::BIGINT AS cold_partitions, "
            f"{sum(f.size for f in s.files)}::BIGINT AS cold_bytes, {_literal(engine)} AS engine")


def _body(text: str) -> str:
    """A query file's statement without its trailing semicolon (to wrap it in a view)."""
    return text.strip().rstrip(";").rstrip()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def cold_schema() -> pa.Schema:
    """The columns of every view as Arrow sees them: the lake's, then `dt` (the UTC date of
    `timestamp`). Also `COLD_SCHEMA` (made on first use: it imports pyarrow)."""
    global _cold_schema
    if _cold_schema is None:
        import pyarrow as pa

        from eventlake.events.schema import EVENT_SCHEMA

        _cold_schema = EVENT_SCHEMA.append(pa.field(PARTITION, pa.date32(), nullable=False))
    return _cold_schema


_cold_schema: pa.Schema | None = None


def __getattr__(name: str) -> Any:
    if name == "COLD_SCHEMA":
        return cold_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _listing_again_on_vanish(attempt: Callable[[], T]) -> T:
    """`attempt()`, again (it lists the lake afresh) while a listed file has vanished: DuckDB
    checks that every listed path exists when it binds a view, and reads them when it runs."""
    return retry_on_vanish(attempt, errors=duckdb.Error, vanished=file_vanished_in_query,
                           during="under the query")


def file_vanished_in_query(exc: BaseException) -> bool:
    """Whether a DuckDB error says a listed lake file has gone missing (compaction deleted it),
    not, say, a file the query itself names. On S3 the error names the file when reading its
    footer; reading the column chunks of a file whose footer was kept (query/fragments.py), it
    names only the dataset the views registered."""
    text = str(exc)
    return ((f"/{EVENTS_DIR}/dt=" in text or _REGISTERED in text)
            and re.search(_VANISHED, text, re.IGNORECASE) is not None)

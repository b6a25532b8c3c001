"""Warm SQL: `EventLake.sql` keeps its DuckDB connection, with the views installed, between
calls, and checks on every call that what it reads has not changed.

A fresh connection costs ~15-25 ms to open and ~25 ms to fill with views; a small query over a
compacted lake costs a few. So each call takes a new snapshot (`views.take_snapshot`: the
watermark, a listing of the lake, the hot tier read again, since DynamoDB changes every moment)
and compares it with the one the cached connection was made from:

    same files (path, size, mtime), verified       -> reuse the connection as it is; its
    files, watermark, hot rows, non-event count       `eventlake_snapshot` row gets the new times
    files added or removed, a manifest changed,    -> install the views again on the same
    the watermark moved, hot rows changed             connection (views.install)
    a listed path changed size or mtime (the same  -> a new connection: DuckDB caches file
    name now holds other bytes), or nothing cached    contents per database, by path

So a reused connection answers what a fresh one would. Only read-only statements (SELECT,
EXPLAIN) run on it: anything else (CREATE, SET, DROP, ATTACH...) would outlive the call, so it
runs on a fresh connection of its own, as every call did before. A file that vanishes under the
query (compaction) drops the cached connection and the call lists again (`lake.vanish`).

Connections are kept per thread (a DuckDB connection is not thread-safe) and per process: a
child made by fork never uses, or closes, a connection it inherited (it makes its own). Each
`EventLake` has its own cache (`WarmSql`), keyed by its tiers, so two lakes never share one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from eventlake.lake.vanish import retry_on_vanish
from eventlake.query import views
from eventlake.query.views import Snapshot, Tiers, file_vanished_in_query, names_typed_view

if TYPE_CHECKING:
    from eventlake.hot.store import HotStore
    from eventlake.lake.store import Lake

__all__ = ["READ_ONLY", "WarmSql", "is_read_only"]

READ_ONLY = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
"""Statement types that leave a connection as they found it: only these run on a kept one."""

_inherited: list[object] = []
"""Connections a forked child inherited: kept referenced, never used or closed (their owner is
the parent; closing a copy whose locks another thread held at the fork could hang)."""


@dataclass
class _Entry:
    """One kept connection and the snapshot its views were installed from."""

    cold: Lake
    hot_store: HotStore
    con: duckdb.DuckDBPyConnection
    snapshot: Snapshot
    files: dict[str, tuple[int, datetime | None]]


class WarmSql:
    """Kept connections of one `EventLake`: one per thread, process and (hot, typed) choice."""

    def __init__(self) -> None:
        self._local = threading.local()

    def run(self, lake: Tiers, query: str, params: Mapping[str, Any] | None = None, *,
            hot: bool = True, typed: bool | None = None) -> pa.Table:
        """`views.run_sql`'s answer, on this thread's kept connection when the statements are
        read-only (see the module docstring); the whole result as an Arrow table."""
        values = dict(params) if params else None
        with_typed = names_typed_view(query) if typed is None else typed
        key = (hot, with_typed)

        def attempt() -> pa.Table:
            entry = self._ready(lake, key)
            if not is_read_only(entry.con, query):
                return views.run_sql(lake, query, values, hot=hot, typed=with_typed)
            try:
                relation = entry.con.sql(query, params=values)
                return relation.to_arrow_table() if relation is not None else pa.table({})
            except duckdb.Error as exc:
                if file_vanished_in_query(exc):
                    self._drop(key)  # the next attempt lists and connects afresh
                raise
            except BaseException:  # interrupted mid-query: trust nothing about the connection
                self._drop(key)
                raise

        return retry_on_vanish(attempt, errors=duckdb.Error, vanished=file_vanished_in_query,
                               during="under the query")

    def close(self) -> None:
        """Close this thread's kept connections (the next call opens new ones)."""
        for key in list(self._entries()):
            self._drop(key)

    # -- the kept connections ----------------------------------------------------------------

    def _entries(self) -> dict[tuple[bool, bool], _Entry]:
        """This thread's kept connections; none after a fork (the parent's stay untouched)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            _inherited.extend(e.con for e in getattr(local, "entries", {}).values())
            local.entries, local.pid = {}, os.getpid()
        entries: dict[tuple[bool, bool], _Entry] = local.entries
        return entries

    def _drop(self, key: tuple[bool, bool]) -> None:
        entry = self._entries().pop(key, None)
        if entry is not None:
            entry.con.close()

    def _ready(self, lake: Tiers, key: tuple[bool, bool]) -> _Entry:
        """This thread's connection for `key`, its views showing what the lake holds now."""
        hot, typed = key
        entry = self._entries().get(key)
        if entry is not None and (entry.cold is not lake.cold or entry.hot_store is not lake.hot):
            self._drop(key)  # the EventLake's tiers were replaced: another lake
            entry = None
        snapshot = views.take_snapshot(lake, hot=hot)
        files = {f.path: (f.size, f.modified) for f in snapshot.files}
        if entry is None or _rewritten(entry.files, files):
            self._drop(key)
            con = duckdb.connect()
            try:
                views.install(con, lake.cold, snapshot, typed=typed)
            except BaseException:
                con.close()
                raise
            entry = _Entry(lake.cold, lake.hot, con, snapshot, files)
            self._entries()[key] = entry
        elif _changed(entry, snapshot, files):
            try:
                views.install(entry.con, lake.cold, snapshot, typed=typed)
            except BaseException:  # half-installed views: never reuse them
                self._drop(key)
                raise
            entry.snapshot, entry.files = snapshot, files
        else:
            _stamp(entry.con, snapshot)
            entry.snapshot = snapshot
        return entry


def is_read_only(con: duckdb.DuckDBPyConnection, query: str) -> bool:
    """Whether every statement of `query` is one of READ_ONLY (a parse error raises, as running
    the query would)."""
    statements = con.extract_statements(query)
    return bool(statements) and all(s.type in READ_ONLY for s in statements)


def _rewritten(old: dict[str, tuple[int, datetime | None]],
               new: dict[str, tuple[int, datetime | None]]) -> bool:
    """A path listed both times whose size or mtime changed: its bytes are not what DuckDB may
    have cached."""
    return any(path in old and old[path] != state for path, state in new.items())


def _changed(entry: _Entry, snapshot: Snapshot,
             files: dict[str, tuple[int, datetime | None]]) -> bool:
    old = entry.snapshot
    return (files != entry.files or snapshot.watermark != old.watermark
            or snapshot.verified != old.verified or snapshot.not_events != old.not_events
            or not snapshot.hot.equals(old.hot))


def _stamp(con: duckdb.DuckDBPyConnection, snapshot: Snapshot) -> None:
    """The reused connection's `eventlake_snapshot` row says when this call looked (the rest
    of the row, from the files and rows, is unchanged)."""
    con.execute("UPDATE eventlake_snapshot SET taken_at = $taken_at, hot_since = $since, "
                "hot_until = $until",
                {"taken_at": snapshot.taken_at, "since": snapshot.hot_since,
                 "until": snapshot.hot_until})

"""`EventLake`: the Python API, one object per (table, lake) pair.

It validates events (events/), stores them (hot/) and reports state. Every part beyond the
settings and the AWS clients (the hot store, DuckDB, pyarrow, Prefect) is imported by the
method that needs it, so a Lambda, or `eventlake sql`, importing this module stays small.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from eventlake.aws import Clients
from eventlake.config import Settings, redact, redact_url

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from eventlake.archive.reconcile import ReconcileReport
    from eventlake.archive.report import BackfillReport, SweepReport, TtlMargin
    from eventlake.export.run import ExportReport
    from eventlake.hot.results import Deadline, PutResult
    from eventlake.hot.store import HotStore
    from eventlake.lake.compact import CompactReport
    from eventlake.lake.store import Lake
    from eventlake.query.warm import WarmSql
    from eventlake.replay.batch import Event
    from eventlake.replay.run import ReplayReport
    from eventlake.replay.select import Selection
    from eventlake.replay.targets import Target


class EventLake:
    """The event lake: hot DynamoDB tier plus cold Parquet tier, configured by `Settings`."""

    def __init__(self, settings: Settings | None = None, *, clients: Clients | None = None
                 ) -> None:
        self.settings = settings or Settings.from_env()
        self.clients = clients or Clients(self.settings)

    @classmethod
    def from_env(cls, **overrides: Any) -> EventLake:
        """Settings from EVENTLAKE_* / AWS_* variables; keyword arguments override them."""
        return cls(Settings.from_env(**overrides))

    @cached_property
    def hot(self) -> HotStore:
        """The DynamoDB hot tier."""
        from eventlake.hot.store import HotStore

        return HotStore(self.settings, self.clients)

    @cached_property
    def cold(self) -> Lake:
        """The Parquet cold tier (imported on first use: the ingest Lambda needs no pyarrow)."""
        from eventlake.lake.store import Lake

        return Lake(self.settings, clients=self.clients)

    def init(self, *, keep_old_index: bool = False, reindex: bool = False) -> list[str]:
        """Provision the table, the bucket of an s3:// lake and the lake's marker
        (`_eventlake/lake.json`: readers and writers refuse a lake without it); idempotent.
        Returns what changed. ConfigError, before anything is made, when the lake's marker
        names another table (archive/lakeof.py). On a table of an earlier version, migrates
        its ingestion-time index (hot/index.py): `keep_old_index` leaves the old index for a
        CloudFormation template to drop, `reindex` backfills the index keys even when no old
        index is left."""
        from contextlib import suppress

        from eventlake.archive.lakeof import refuse_another_table
        from eventlake.errors import LakeNotFoundError

        with suppress(LakeNotFoundError):  # an s3:// lake whose bucket is not made yet
            refuse_another_table(self.cold, self.settings.table)
        changes = self.hot.provision(keep_old_index=keep_old_index, reindex=reindex)
        if self.settings.lake_uri.startswith("s3://"):
            from eventlake.lake.bucket import ensure_bucket

            changes += ensure_bucket(self.clients, self.settings.lake_uri)
        if self.cold.create_marker(table=self.settings.table):
            changes.append(f"created lake `{self.cold.root}` (_eventlake/lake.json)")
        from eventlake.lake.shards import remember_shards

        return changes + remember_shards(self.cold, self.hot)

    def put(self, event: Any) -> PutResult:
        """Validate and store one event (any accepted shape); see `Outcome` for the results."""
        return self.put_many([event])[0]

    def put_many(self, events: Iterable[Any], *, now: datetime | None = None,
                 deadline: Deadline | None = None) -> list[PutResult]:
        """Validate and store events; one result per input event, in input order (invalid ones
        reported with their rule, the valid ones still stored): `eventlake.hot.put.put_events`."""
        from eventlake.hot.put import put_events

        return put_events(self.hot, events, now=now, deadline=deadline)

    # --- archiving -------------------------------------------------------------------------

    def archive(self, *, settle_seconds: float | None = None) -> SweepReport:
        """Sweep: archive everything ingested since the watermark (less the settle lag), move
        the watermark, then check the TTL margin (TtlGuardError when events are at risk)."""
        from eventlake.archive.sweep import sweep

        return sweep(self.cold, self.hot, self.settings, settle_seconds=settle_seconds)

    def backfill(self, *, segments: int = 4) -> BackfillReport:
        """Archive every item of the table (parallel Scan), other producers' items included."""
        from eventlake.archive.backfill import backfill

        return backfill(self.cold, self.hot, self.settings, segments=segments)

    def compact(self, *, start: date | None = None, end: date | None = None,
                **options: Any) -> CompactReport:
        """Merge each partition's small files, dropping duplicate event_ids."""
        from eventlake.lake.compact import compact

        return compact(self.cold, start=start, end=end, **options)

    def reconcile(self, *, start: date, end: date, repair: bool = False) -> ReconcileReport:
        """Check every hot event older than the watermark is in the lake with the same hash
        (ingestion days start..end); `repair` re-archives what is missing."""
        from eventlake.archive.reconcile import reconcile

        return reconcile(self.cold, self.hot, self.settings, start=start, end=end,
                         repair=repair)

    def ttl_margin(self) -> TtlMargin:
        from eventlake.archive.ttlguard import ttl_margin

        return ttl_margin(self.cold, self.hot, self.settings)

    # --- querying (DuckDB, imported here only: the ingest Lambda never loads it) ------------

    def connect(self, hot: bool = True, typed: bool = True) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with the views `events` (both tiers, each event once),
        `events_cold` and `events_hot`, the macro `events_between(from_ts, to_ts)`, and (when
        `typed`) one typed view per event type, `ev_<type>` (inferred from the payloads now:
        it costs about 0.7 s per 300,000 events; `typed=False` skips it).

        The lake is listed once, now: reconnect (or `eventlake.query.views.refresh`) to see files
        written later. `hot=False` reads the Parquet lake only, never DynamoDB.
        """
        from eventlake.query.views import connect

        return connect(self, hot=hot, typed=typed)

    def sql(self, query: str, params: dict[str, Any] | None = None, *, hot: bool = True
            ) -> pa.Table:
        """Run `query` over the views; the result as an Arrow table (`.to_pylist()`,
        `.to_pandas()`...). Named parameters: `$name` in the query, values in `params`.

        Each call sees the lake as it is now (the watermark, the files, the hot tier, all read
        again), on a connection kept between calls, per thread, while nothing it read changed
        (`eventlake.query.warm`); a statement that is not a query (CREATE, SET...) gets a
        connection of its own. `close()` lets the kept connections go. Compaction replacing a
        file under the query makes it list and run again."""
        return self._warm.run(self, query, params, hot=hot)

    def close(self) -> None:
        """Close the connections `sql` keeps for the calling thread (other threads' close with
        their thread); the lake stays usable."""
        if "_warm" in self.__dict__:
            self._warm.close()

    @cached_property
    def _warm(self) -> WarmSql:
        from eventlake.query.warm import WarmSql

        return WarmSql()

    def replay(self, selection: Selection, target: str | Target | Callable[[list[Event]], Any],
               *, batch_size: int = 500, checkpoint: str | os.PathLike[str] | None = None,
               dry_run: bool = False, shape: str = "seed", rate: float | None = None,
               progress: Callable[[ReplayReport], None] | None = None,
               count_first: bool = False) -> ReplayReport:
        """Send the events of `selection` in (timestamp, event_id) order, once, to `target`
        (a name such as `jsonl:PATH` or `sqs:QUEUE`, a Target, or a callable taking a list of
        events), at most `rate` events/s, calling `progress(report)` after each acknowledged
        batch; see `eventlake.replay.run.replay`."""
        from eventlake.replay.run import replay

        return replay(self, selection, target, batch_size=batch_size, checkpoint=checkpoint,
                      dry_run=dry_run, shape=shape, rate=rate, progress=progress,
                      count_first=count_first, clients=self.clients)

    def export(self, selection: Selection, out: str | os.PathLike[str], *,
               format: str = "parquet", partition_by: str | None = None,
               query: str | None = None, params: dict[str, Any] | None = None,
               redact: Sequence[str] = (), hash_: Sequence[str] = (), salt: str | None = None,
               overwrite: bool = False) -> ExportReport:
        """Write the events of `selection` to `out` (a local path, or `s3://bucket/key`) as
        `format` (parquet, csv, jsonl or duckdb), atomically; with `query`, the result of that
        query of sql/ over those events instead (its `$parameters` from `params`). `redact`
        drops and `hash_` hashes payload fields (dotted paths), the hash salted with `salt`
        (default $EVENTLAKE_EXPORT_SALT). A partitioned export to S3 writes `_SUCCESS` last:
        readers wait for it. See `eventlake.export.run.export`."""
        from eventlake.export.redact import SALT_VARIABLE
        from eventlake.export.run import export

        if salt is None and hash_:
            salt = os.environ.get(SALT_VARIABLE)
        return export(self, selection, out, format=format, partition_by=partition_by,
                      query=query, params=params, redact=redact, hash_=hash_, salt=salt,
                      overwrite=overwrite, clients=self.clients)

    def _look_back(self) -> str:
        """The clock skew and settle every process of the table uses, and where they come
        from (the table's tags, or this process's own on a table that records none)."""
        from eventlake.hot.tablesettings import TABLE_TAGS

        agreed = self.hot.reader_settings()
        recorded = self.hot.recorded.recorded() or {}
        names = ("clock_skew_seconds", "archive_settle_seconds")
        where = ("recorded on the table" if all(n in recorded for n in names) else
                 "this process's own: the table records no "
                 + " or ".join(f"`{TABLE_TAGS[n]}`" for n in names if n not in recorded)
                 + ", run `eventlake init`")
        return (f"clock skew {agreed.clock_skew_seconds:g} s, settle "
                f"{agreed.archive_settle_seconds:g} s ({where}); writes retry for at most "
                f"{agreed.write_retry_seconds:g} s")

    def _quarantine_status(self) -> dict[str, Any] | str:
        """What every path quarantined (`Lake.summarize_quarantine`: a listing and a read of
        the newest files), or why it could not be read."""
        try:
            return self.cold.summarize_quarantine().as_dict()
        except Exception as exc:  # an unreadable quarantine: say so, keep the rest
            return f"unreadable ({type(exc).__name__}: {redact(str(exc))})"

    def status(self) -> dict[str, Any]:
        """Hot table state, lake location (and whether the lake exists), what was quarantined,
        archive watermark and lag, smallest TTL margin. The endpoint URL is shown without its
        user info."""
        out: dict[str, Any] = {"hot": self.hot.describe(), "lake_uri": self.settings.lake_uri,
                               "lake_exists": self.cold.lake_exists(),
                               "region": self.settings.region,
                               "endpoint_url": redact_url(self.settings.endpoint_url)}
        if out["lake_exists"]:
            out["quarantine"] = self._quarantine_status()
        if not out["hot"].get("exists") or not out["lake_exists"]:
            return out
        from eventlake.lake.watermark import read_watermark

        out["look_back"] = self._look_back()
        try:
            watermark = read_watermark(self.cold)
        except Exception as exc:  # unreadable state: say so, keep the rest
            out["watermark"] = f"unreadable ({type(exc).__name__}: {redact(str(exc))})"
            return out
        from eventlake.archive.ttlguard import ttl_margin
        from eventlake.events.times import human_duration
        from eventlake.lake.watermark import WatermarkAheadError, refuse_ahead

        now = self.hot.now()  # corrected by the offset the calls above measured
        offset = self.clients.clock.seconds
        if offset:  # this host's clock is off by 2 s or more
            how = ("corrected" if self.settings.clock_correction else
                   f"not corrected: {self.settings.env_name('clock_correction')}=false")
            out["clock_offset"] = f"AWS's time is {offset:+.1f} s from this host's ({how})"
        if watermark is None:
            out["watermark"] = "none yet (run `eventlake archive`)"
        else:
            out["watermark"] = watermark.at.isoformat()
            skew = self.hot.reader_settings().clock_skew_seconds
            if watermark.skew_seconds > skew:  # a settle-0 sweep, or the skew tag lowered
                out["watermark_look_back"] = (
                    f"{watermark.skew_seconds:g} s (the largest a sweep recorded, more than "
                    f"the table's clock skew of {skew:g} s: every window starts that far "
                    "behind the watermark)")
            try:
                refuse_ahead(watermark, now, self.hot.reader_settings(), self.cold.root)
                out["archive_lag"] = human_duration(max(0.0, (now - watermark.at)
                                                        .total_seconds()))
            except WatermarkAheadError as exc:
                out["problem"] = str(exc)
        margin = ttl_margin(self.cold, self.hot, self.settings, now=now)
        out["unarchived"] = margin.unarchived
        safety = self.settings.ttl_safety_hours
        out["ttl_margin"] = ("n/a (nothing unarchived)" if margin.hours_left is None
                             else f"{margin.hours_left:.1f} h (safety {safety:g} h, "
                                  f"{margin.at_risk} at risk)")
        return out

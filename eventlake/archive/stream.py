"""The stream path: one batch of DynamoDB change records -> Parquet files and quarantine.

    INSERT (NewImage)      -> a lake row (column-wise fast path for eventlake's own items)
    INSERT without image   -> quarantined: the stream must be NEW_AND_OLD_IMAGES
    MODIFY                 -> quarantined: "immutable event modified", except one that
                              only gives an item the index keys `s` and `k` (`eventlake
                              init` migrating the index: hot/index.py): counted `reindexed`
    REMOVE                 -> counted (TTL vs other), never deleted from the lake; its old
                              image archived when no sweep vouched for it and the lake lacks
                              it (archive/removed.py: the event's last copy)
    undecodable / not ours -> quarantined with the reason

Durability and retries: rows are written one `dt` partition at a time, in the order of their
first record. When a write fails, the batch reports the first record that is not durable
(Lambda's `batchItemFailures`) and Lambda re-delivers from there:

    records   r0 r1 r2 r3 r4 r5        dt=A holds r0 r2 r5 (written)
                                       dt=B holds r1 r3 r4 (failed) -> retry from r1
    retry     r1 r2 r3 r4 r5           dt=A's r2 r5 are found in A's file and skipped

Files are named from the sequence numbers they hold (`stream-<first>-<last>-<digest>.parquet`,
archive/streamfiles.py), so an identical re-delivery rewrites its own files; a partial one reads
the event_ids of the partition's files that may hold its rows and writes only what is missing:
stream files whose sequence range overlaps its own, and the sweep's, compaction's and other
writers' files whose ingestion window meets the batch's (archive/streamwrite.py,
`ids_in_overlapping_files`). So a batch the sweep archived first, or one re-delivered after
compaction merged it, adds no copies. A record re-delivered inside one batch (the same event
twice) is written once, from its first copy.

Quarantine is written last, and holds only the records before the retry point: those after it
come again with the re-delivery and are quarantined then (quarantine files are named from their
records, so the batch's set and the re-delivery's smaller one would be two files). A batch that
fails as a whole after its quarantine was written (a timeout) comes again whole, or bisected in
two (BisectBatchOnFunctionError): each half names a file of its own, so a record may be in two
files; the quarantine's readers count it once (lake/quarantine.py, `record_key`).

This module owns the batch: records classified, rows built, partitions handed to
`streamwrite.write_partition` (in parallel on S3), quarantine written, the outcome reported.

What a 10,000-record batch of ~100 B events pays beyond "a bare loop + the same Parquet write"
(CPU ms, measured 2026-11 on a shared 2-core machine; the bare loop is ~35 ms), and why:

    gather + Arrow columns  ~= the bare loop's own (one itemgetter call per image: a little less)
    whole-column checks     ~1    eventlake's items are stored as they are, without the
                                  row-wise path's normalisation: a wrong layout goes row-wise
    sequence numbers        ~0.6  retry points and file names' ranges (`streamfiles.Sequences`)
    repeats (`pc.unique`)   ~0.4  a record re-delivered inside a batch is written once
    partition listing       ~0.2  a partial re-delivery writes only what the lake lacks
    file-name digests       ~0.3  another shard's batch with the same range never overwrites
    write_partition         ~1.5  the lake's schema and dt checks, a temp file, fsync, rename:
                                  a batch reported done is on disk (on S3: one PUT)
    one sort for all dates  ~-0.6 against a filter and a sort per date
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.archive.removed import archive_removed
from eventlake.archive.streamfiles import Sequences, is_number, quarantine_name
from eventlake.archive.streamwrite import listing, write_partition
from eventlake.codec import CodecError, RecordError, RowBuilder, StreamRecord, parse_stream_records
from eventlake.codec.columns import lambda_insert_columns
from eventlake.config import redact
from eventlake.events.canonical import raw_identity
from eventlake.events.schema import EVENT_SCHEMA
from eventlake.hot.index import adds_only_keys
from eventlake.lake.layout import split_by_dt
from eventlake.lake.store import Lake, QuarantineEntry, WrittenFile

_log = logging.getLogger("eventlake.archive.stream")
VIEW_TYPE_RULE = "stream.view_type"
MODIFY_RULE = "stream.modify"
MAX_PARALLEL_WRITES = 8
Record = StreamRecord | RecordError
T = TypeVar("T")


def is_reindexing(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    """Whether a MODIFY only gave an item the index keys `s` and `k` it lacked, exactly as the
    backfill of `eventlake init` computes them from the item (hot/index.py,
    `adds_only_keys`): the event is unchanged. Anything else changed, other keys, or keys
    replaced, is an immutable event modified."""
    return adds_only_keys(old, new)


@dataclass
class BatchReport:
    """What one batch did; `failed_from` is the item identifier Lambda should retry from."""

    records: int = 0
    archived: int = 0
    already_archived: int = 0
    quarantined: int = 0
    ttl_removals: int = 0
    other_removals: int = 0
    removed_checked: int = 0
    """REMOVEs whose old image was checked against the lake (no expiry check vouched)."""
    removed_archived: int = 0
    """Of those, events the lake lacked, archived from the old image (logged at ERROR)."""
    modified: int = 0
    reindexed: int = 0
    """MODIFYs that only added the index keys s and k (`is_reindexing`): not quarantined."""
    files: list[WrittenFile] = field(default_factory=list)
    quarantine_file: str | None = None
    failed_from: str | None = None
    error: str | None = None
    duration_ms: float = 0.0

    def log_record(self) -> dict[str, Any]:
        return {
            "msg": "stream batch", "records": self.records, "archived": self.archived,
            "already_archived": self.already_archived, "quarantined": self.quarantined,
            "modified": self.modified, "reindexed": self.reindexed,
            "ttl_removals": self.ttl_removals, "other_removals": self.other_removals,
            "removed_checked": self.removed_checked, "removed_archived": self.removed_archived,
            "partitions": sorted({f.dt for f in self.files}),
            "files": [f.path for f in self.files], "bytes": sum(f.bytes for f in self.files),
            "quarantine_file": self.quarantine_file, "failed_from": self.failed_from,
            "error": self.error, "duration_ms": round(self.duration_ms, 1),
        }


@dataclass
class _Batch:
    """A batch being archived: records parsed on demand (fast-path rows need no parsing)."""

    raws: list[Any]
    parsed: dict[int, Record]
    seqs: list[str | None]
    """Each record's sequence number; None where it has none, or one that is not a number."""
    numbers: Sequences | None = None
    """`seqs` as Arrow text, once built (`sequences`)."""

    def sequences(self) -> Sequences:
        if self.numbers is None:
            self.numbers = Sequences.of(self.seqs)
        return self.numbers

    def record(self, index: int) -> Record:
        record = self.parsed.get(index)
        if record is None:  # a fast-path record, needed only to quarantine or report it
            [record] = parse_stream_records({"Records": [self.raws[index]]})
            record = replace(record, index=index) if isinstance(record, RecordError) else record
            self.parsed[index] = record
        return record

    def raw(self, index: int) -> Any:
        """The record as delivered, of a record the row-wise loop saw: only those are
        quarantined (the fast path leaves a row it cannot take to that loop, `rest`)."""
        return self.parsed[index].raw


def archive_event(lake: Lake, event: Any) -> BatchReport:
    """Archive a whole Lambda event, or records in any shape `parse_stream_records` reads.
    Raises CodecError for input that is not a stream event at all."""
    raws = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(raws, list):
        if isinstance(event, list | tuple) and event and not any(map(_looks_like_record, event)):
            # A bare list carries no envelope saying it is a stream event: when none of its
            # items is even shaped like a change record, it is the wrong input, not bad records.
            raise CodecError("stream.no_records",
                             f"not a stream event: a list of {len(event)} item(s), none of them "
                             "a change record (an object with `eventName` and `dynamodb`, or a "
                             "Kinesis record with `kinesis`/`Data`)")
        records = parse_stream_records(event)
        return archive_records(lake, records)
    fast = lambda_insert_columns(raws)
    seqs: list[str | None]
    numbers = None
    if not fast.rest:  # the common batch: every record on the fast path, in order
        numbers = Sequences.of(fast.sequences)  # checked column-wise
        seqs = list(fast.seqs) if numbers.all_numbers else [
            s if is_number(s) else None for s in fast.seqs]
    else:
        seqs = [None] * len(raws)
        for index, seq in zip(fast.indexes, fast.seqs, strict=True):
            seqs[index] = seq if is_number(seq) else None
    parsed: dict[int, Record] = {}
    if fast.rest:
        rest = parse_stream_records({**event, "Records": [raws[i] for i in fast.rest]})
        for index, record in zip(fast.rest, rest, strict=True):
            parsed[index] = replace(record, index=index) if isinstance(record, RecordError) \
                else record
            seqs[index] = _seq(parsed[index])
    return _archive(lake, _Batch(raws, parsed, seqs, numbers), fast.table, fast.indexes)


def archive_records(lake: Lake, records: Sequence[Record]) -> BatchReport:
    """Archive records already parsed (stream order); never raises for bad records."""
    batch = _Batch([r.raw for r in records], dict(enumerate(records)),
                   [_seq(r) for r in records])
    return _archive(lake, batch, EVENT_SCHEMA.empty_table(), [])


def _archive(lake: Lake, batch: _Batch, fast_table: pa.Table, fast_indexes: list[int]
             ) -> BatchReport:
    started = time.perf_counter()
    report = BatchReport(records=len(batch.raws))
    builder = RowBuilder()
    row_record: list[int] = []  # builder row i came from record row_record[i]
    quarantine: list[tuple[int, QuarantineEntry]] = []
    removed: list[tuple[int, StreamRecord]] = []  # REMOVEs with an old image

    for index in sorted(batch.parsed):
        record = batch.parsed[index]
        if isinstance(record, RecordError):
            quarantine.append((index, _entry(record.raw, record.reason, record.rule)))
        elif record.event_name == "INSERT":
            if record.new_image is None:
                reason = (f"INSERT record has no NewImage (stream view type "
                          f"{record.view_type or 'unknown'}); eventlake needs "
                          "NEW_AND_OLD_IMAGES: run `eventlake init` or update the stream")
                _log.error(reason)
                quarantine.append((index, _entry(record.raw, reason, VIEW_TYPE_RULE)))
                continue
            try:
                builder.add_image(record.new_image,
                                  fallback_ingested_at=record.approximate_creation)
            except CodecError as exc:
                quarantine.append((index, _entry(record.raw, str(exc), exc.rule)))
                continue
            row_record.append(index)
        elif record.event_name == "MODIFY":
            if is_reindexing(record.old_image, record.new_image):
                report.reindexed += 1
                continue
            report.modified += 1
            quarantine.append((index, _entry(record.raw, "immutable event modified",
                                             MODIFY_RULE)))
        else:
            if record.is_ttl_removal:
                report.ttl_removals += 1
            else:
                report.other_removals += 1
            if record.old_image is not None:
                removed.append((index, record))

    # Row-wise timestamps are checked column-wise in to_table; an impossible date (Feb 30)
    # is quarantined rather than failing, and re-failing, the whole batch.
    rejected = builder.reject_invalid()
    for position, error in rejected:
        index = row_record[position]
        quarantine.append((index, _entry(batch.raw(index), str(error), error.rule)))
    if rejected:
        bad = {position for position, _ in rejected}
        row_record = [r for i, r in enumerate(row_record) if i not in bad]
    quarantine.sort(key=lambda pair: pair[0])

    failed_index: int | None = None
    table = pa.concat_tables([fast_table, builder.to_table()]) if len(builder) else fast_table
    if table.num_rows:
        parts = _partitions(table, _record_indexes(fast_indexes, row_record, len(batch.raws)))
        sequences = batch.sequences()
        # An id twice in the batch (a record re-delivered inside it) is rare: one look at the
        # whole batch spares each partition its own.
        repeats = len(pc.unique(table["event_id"])) < table.num_rows
        listed = listing(lake, [dt for _, dt, _, _ in parts])
        # S3 uploads wait on the network and go in parallel; on local disk writing is
        # CPU-bound and one at a time, in this thread, is faster (threads measured slower,
        # and a hand-off to a worker waits on the scheduler). The retry point is the first
        # record of the earliest failed partition; partitions after it that did succeed are
        # skipped on re-delivery by the overlap check.
        workers = min(len(parts), MAX_PARALLEL_WRITES if lake.is_s3 else 1)
        pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
        submit = pool.submit if pool is not None else _run_now
        try:
            futures = [(first, dt, part, submit(write_partition, lake, dt, part, part_order,
                                                sequences, repeats, listed.get(dt)))
                       for first, dt, part, part_order in parts]
        finally:
            if pool is not None:
                pool.shutdown()
        for first, dt, part, future in sorted(futures, key=lambda f: f[0]):
            try:
                written, skipped = future.result()
            except Exception as exc:
                if failed_index is None or first < failed_index:
                    failed_index = first
                    report.error = redact(f"lake write to dt={dt} failed: "
                                          f"{type(exc).__name__}: {exc}")
                continue
            report.already_archived += skipped
            report.archived += part.num_rows - skipped
            if written is not None:
                report.files.append(written)

    # REMOVEs after the INSERTs (an event deleted in its own batch is found written), and only
    # those before the retry point: Lambda re-delivers the rest.
    gone = [(i, r) for i, r in removed if failed_index is None or i < failed_index]
    if gone:
        try:
            checked = archive_removed(lake, [(r.old_image or {}, r.approximate_creation)
                                             for _, r in gone])
            report.removed_checked, report.removed_archived = checked.read, checked.archived
        except Exception as exc:
            failed_index = gone[0][0]
            report.error = redact(f"archiving REMOVEs' old images failed: "
                                  f"{type(exc).__name__}: {exc}")

    # Quarantined last, and only the records before the retry point: Lambda re-delivers the
    # rest, and they are quarantined then, in the file their own records name. Written with
    # the batch, a record after the retry point would land in a second file on re-delivery.
    due = [(i, e) for i, e in quarantine if failed_index is None or i < failed_index]
    if due:
        try:
            report.quarantine_file = lake.quarantine(
                [e for _, e in due], _quarantine_name(batch, [i for i, _ in due]))
            report.quarantined = len(due)
        except Exception as exc:
            failed_index = due[0][0]
            report.error = redact(f"quarantine write failed: {type(exc).__name__}: {exc}")

    if failed_index is not None:
        report.failed_from = batch.record(failed_index).item_identifier
    report.duration_ms = (time.perf_counter() - started) * 1000
    return report


def _run_now(fn: Callable[..., T], /, *args: Any) -> Future[T]:
    """`fn(*args)` run in this thread, as a done Future (the pool's `submit` without a pool)."""
    future: Future[T] = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


def _record_indexes(fast_indexes: list[int], row_record: list[int], records: int) -> pa.Array:
    """The record index of each row of the batch's table (fast-path rows, then row-wise ones)."""
    if not row_record and len(fast_indexes) == records:  # the usual batch: 0, 1, ..., n - 1
        # Arrow has no `arange`; the positions of n trues are one, without n Python ints.
        return pc.indices_nonzero(pa.repeat(True, records)).cast(pa.int64())
    return pa.array(fast_indexes + row_record, pa.int64())


def _partitions(table: pa.Table, order: pa.Array
                 ) -> list[tuple[int, str, pa.Table, pa.Array]]:
    """(first record index, dt, rows sorted by SORT_KEYS, their record indexes) per UTC date
    (`layout.split_by_dt`, the record indexes riding along)."""
    parts = []
    for dt, part in split_by_dt(table.append_column("__order", order)):
        part_order = part["__order"].combine_chunks()
        parts.append((int(pc.min(part_order).as_py()), dt, part.drop_columns(["__order"]),
                      part_order))
    return parts


def _looks_like_record(item: Any) -> bool:
    return isinstance(item, Mapping) and any(
        key in item for key in ("eventName", "dynamodb", "kinesis", "Data"))


def _seq(record: Record) -> str | None:
    seq = record.sequence_number if isinstance(record, StreamRecord) else None
    return seq if seq and is_number(seq) else None


def _quarantine_name(batch: _Batch, indexes: list[int]) -> str:
    """`streamfiles.quarantine_name` of the batch's records `indexes`."""
    return quarantine_name([batch.seqs[i] for i in indexes],
                           [raw_identity(batch.raw(i)) for i in indexes])


def _entry(raw: Any, reason: str, rule: str) -> QuarantineEntry:
    return QuarantineEntry(reason=reason, rule=rule, record=raw, source="stream",
                           quarantined_at=datetime.now(UTC))

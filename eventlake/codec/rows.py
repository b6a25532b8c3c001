"""Item images -> lake rows -> one Arrow table (EVENT_SCHEMA): `RowBuilder`, `fast_row`.

    item image {"event_id": {"S": ..}, ...} -> RowBuilder.add_image -> pa.Table (EVENT_SCHEMA)

`RowBuilder` has a fast path for items eventlake wrote itself (payload already canonical JSON,
content hash present, timestamps in the fixed `format_ts` layout): it picks the "S" strings out
and nothing else; timestamps are cast to Arrow column-wise in `to_table`. Items from other
producers take the slow path, which normalises every field the way the event model does.
Whole Lambda batches of such INSERTs go faster still, column by column (`codec.columns`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.codec.attributes import CodecError, av_kind, decode_number, payload_json_from_map
from eventlake.codec.times import EPOCH, approximate_time
from eventlake.errors import InvalidEventError
from eventlake.events.canonical import DuplicateKeyError, canonical_json, content_hash, loads_exact
from eventlake.events.canonical import kind_of as _kind
from eventlake.events.schema import EVENT_SCHEMA, UTC_MICROS
from eventlake.events.times import format_ts, parse_timestamp

__all__ = ["Row", "RowBuilder", "fast_row"]

class Row(NamedTuple):
    """One lake row, in EVENT_SCHEMA's order; the two times as `format_ts` text until
    `RowBuilder.to_table` casts them."""

    event_id: str
    event_type: str
    timestamp: str
    ingested_at: str
    source: str | None
    subject: str | None
    event_payload: str
    content_hash: str


_TIME_COLUMNS = (Row._fields.index("timestamp"), Row._fields.index("ingested_at"))
_TS_SHAPE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def fast_row(image: Any) -> Row | None:
    """The row of an item eventlake wrote itself, taking its strings as they are; None when
    the item is not in that layout (the slow path then decides)."""
    try:
        event_id = image["event_id"]["S"]
        event_type = image["event_type"]["S"]
        ts = image["timestamp"]["S"]
        ingested = image["ingested_at"]["S"]
        payload = image["event_payload"]["S"]
        digest = image["content_hash"]["S"]
        source = image.get("source")
        subject = image.get("subject")
    except (KeyError, TypeError, AttributeError):
        return None
    # Only a lone {"S": text} is taken as is; NULL, N or two keys go the slow path (0).
    if source is not None:
        source = source.get("S", 0) if type(source) is dict and len(source) == 1 else 0
    if subject is not None:
        subject = subject.get("S", 0) if type(subject) is dict and len(subject) == 1 else 0
    # Times in format_ts's layout (27 chars, T, Z); Arrow checks the digits in to_table.
    if (type(event_id) is type(event_type) is type(payload) is type(ts) is type(ingested)
            is type(digest) is str and len(ts) == len(ingested) == 27
            and ts[10] == ingested[10] == "T" and ts[26] == ingested[26] == "Z"
            and len(digest) == 64 and event_id and event_type
            and (source is None or type(source) is str)
            and (subject is None or type(subject) is str)):
        return Row(event_id, event_type, ts, ingested, source, subject, payload, digest)
    return None


class RowBuilder:
    """Accumulates lake rows from item images and builds one Arrow table (EVENT_SCHEMA).

    `add_image` validates a row completely before keeping it, so a CodecError leaves the
    builder as it was. One check waits for `to_table`: fast-path timestamps are cast to Arrow
    column-wise there, and a value with the right layout but an impossible date (Feb 30) is
    found then: call `reject_invalid()` first to take such rows out, or `to_table` raises.
    """

    __slots__ = ("_rows", "_table")

    def __init__(self) -> None:
        self._rows: list[Row] = []
        self._table: pa.Table | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def add_image(self, image: Mapping[str, Any], *,
                  fallback_ingested_at: datetime | None = None) -> None:
        """Add one item image; CodecError (nothing added) when it is not an eventlake event.

        `fallback_ingested_at` stands in for a missing `ingested_at` (items of other
        producers); the stream handler passes the record's ApproximateCreationDateTime.
        """
        row = fast_row(image)
        self._rows.append(row if row is not None else _slow_row(image, fallback_ingested_at))

    def add_images(self, images: Iterable[Mapping[str, Any]], *,
                   fallback_ingested_at: datetime | None = None
                   ) -> list[tuple[int, CodecError]]:
        """Add many images; returns (position, error) for those that are not events."""
        errors: list[tuple[int, CodecError]] = []
        for position, image in enumerate(images):
            try:
                self.add_image(image, fallback_ingested_at=fallback_ingested_at)
            except CodecError as exc:
                errors.append((position, exc))
        return errors

    def dt_strings(self) -> list[str]:
        """Each row's partition `dt` (UTC date of `timestamp`, "YYYY-MM-DD"), in row order."""
        return [row.timestamp[:10] for row in self._rows]

    def event_ids(self) -> list[str]:
        return [row.event_id for row in self._rows]

    def reject_invalid(self) -> list[tuple[int, CodecError]]:
        """Remove rows whose timestamps Arrow cannot read; returns (row, error) for each, with
        row numbers as they were before removal. Cheap when every row is fine."""
        try:
            self.to_table()
            return []
        except CodecError as exc:
            bad = set(exc.rows)
        rejected = [(i, _timestamp_problem(self._rows[i]) or CodecError(
            "record.bad_timestamp", "timestamp is not a valid date and time",
            event_id=self._rows[i].event_id)) for i in sorted(bad)]
        self._rows = [row for i, row in enumerate(self._rows) if i not in bad]
        self._table = None
        return rejected

    def to_table(self) -> pa.Table:
        """The rows as a table with exactly EVENT_SCHEMA (rows in the order added)."""
        if self._table is not None and self._table.num_rows == len(self._rows):
            return self._table  # rows are only ever appended, or removed by reject_invalid
        columns: list[Any] = list(zip(*self._rows, strict=True)) or [()] * len(EVENT_SCHEMA)
        arrays = [pa.array(col, type=pa.string()) for col in columns]
        try:
            for i in _TIME_COLUMNS:
                arrays[i] = _utc_micros(arrays[i])
        except (pa.ArrowInvalid, ValueError):
            rows = [i for i, row in enumerate(self._rows) if _timestamp_problem(row)]
            if not rows:  # pragma: no cover - Arrow and Python disagree on a timestamp
                raise
            first = self._rows[rows[0]].event_id
            raise CodecError("record.bad_timestamp",
                             f"{len(rows)} row(s) hold a timestamp that is not a valid date "
                             f"and time (first: event `{first}`, row {rows[0]}); "
                             "call RowBuilder.reject_invalid() to set them aside",
                             rows=rows) from None
        self._table = pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)
        return self._table


_MIN_MICROS = int((datetime(1, 1, 1, tzinfo=UTC) - EPOCH) / timedelta(microseconds=1))


def _utc_micros(strings: pa.Array) -> pa.Array:
    cast = strings.cast(UTC_MICROS)
    if len(cast) and pc.min(cast.cast(pa.int64())).as_py() < _MIN_MICROS:
        raise ValueError("year 0")  # Arrow reads year 0000; Python and the event model do not
    return cast


def _timestamp_problem(row: Row) -> CodecError | None:
    for label, text in (("timestamp", row.timestamp), ("ingested_at", row.ingested_at)):
        try:
            if not _TS_SHAPE.fullmatch(text):
                raise ValueError
            datetime.fromisoformat(text[:26])
        except ValueError:
            return CodecError("record.bad_timestamp",
                              f"`{label}` `{text[:80]}` is not a valid date and time",
                              event_id=row.event_id, path=label)
    return None


def _slow_row(image: Any, fallback_ingested_at: datetime | None) -> Row:
    """An item of another producer, normalised the way the event model would store it."""
    if not isinstance(image, Mapping):
        raise CodecError("record.not_an_event", f"an item image is a map, got {_kind(image)}")
    event_id = _id_text(image.get("event_id"))
    try:
        event_type = _plain_text(image.get("event_type"), "event_type", required=True)
        assert event_type is not None
        ts = _time_text(image.get("timestamp"), "timestamp")
        if ts is None:
            raise CodecError("record.bad_timestamp", "item has no `timestamp`")
        ingested = _time_text(image.get("ingested_at"), "ingested_at")
        if ingested is None:
            if fallback_ingested_at is None:
                raise CodecError("record.no_ingested_at",
                                 "item has no `ingested_at` and the caller gave no fallback "
                                 "(e.g. the stream record's ApproximateCreationDateTime)")
            ingested = format_ts(approximate_time(fallback_ingested_at) or fallback_ingested_at)
        source = _plain_text(image.get("source"), "source", required=False)
        subject = _plain_text(image.get("subject"), "subject", required=False)
        payload = _payload_text(image.get("event_payload"))
    except CodecError as exc:
        raise exc.with_context(event_id=event_id) from exc.__cause__
    # Always recomputed here: another producer's hash (if any) is not ours to trust.
    digest = content_hash(event_id, event_type, ts, payload, source, subject)
    return Row(event_id, event_type, ts, ingested, source, subject, payload, digest)


def _id_text(av: Any) -> str:
    if isinstance(av, Mapping) and len(av) == 1:
        if isinstance(av.get("S"), str) and av["S"]:
            return str(av["S"])
        if "N" in av:
            try:
                number = decode_number(av["N"])
            except CodecError as exc:
                raise exc.with_context(path="event_id") from None
            return str(number) if isinstance(number, int) else format(number, "f")
    raise CodecError("record.not_an_event",
                     "item has no `event_id` (a non-empty S or an N); not an eventlake event"
                     if av is None else "`event_id` is not a non-empty S or an N",
                     path="event_id")


def _plain_text(av: Any, label: str, *, required: bool) -> str | None:
    if av is None or (isinstance(av, Mapping) and av.get("NULL") is True and len(av) == 1):
        if required:
            raise CodecError("record.not_an_event",
                             f"item has no `{label}`; not an eventlake event", path=label)
        return None
    if isinstance(av, Mapping) and len(av) == 1 and isinstance(av.get("S"), str):
        if required and not av["S"]:
            raise CodecError("record.not_an_event", f"`{label}` is empty", path=label)
        return str(av["S"])
    rule = "record.not_an_event" if required else "record.bad_attribute"
    raise CodecError(rule, f"`{label}` must be a string (S), got {av_kind(av)}", path=label)


def _time_text(av: Any, label: str) -> str | None:
    if av is None or (isinstance(av, Mapping) and av.get("NULL") is True and len(av) == 1):
        return None
    rule = "record.bad_timestamp" if label == "timestamp" else "record.bad_ingested_at"
    if isinstance(av, Mapping) and len(av) == 1:
        if isinstance(av.get("S"), str):
            try:
                return format_ts(parse_timestamp(av["S"]))
            except InvalidEventError as exc:
                raise CodecError(rule, exc.detail, path=label) from exc
        if "N" in av:
            try:
                number = decode_number(av["N"])
            except CodecError as exc:
                raise CodecError(rule, exc.detail, path=label) from None
            try:
                when = approximate_time(number)
            except CodecError as exc:
                raise CodecError(rule, exc.detail, path=label) from exc
            assert when is not None
            return format_ts(when)
    raise CodecError(rule, f"`{label}` must be RFC 3339 text (S) or epoch seconds/ms (N), got "
                     f"{av_kind(av)}", path=label)


def _payload_text(av: Any) -> str:
    if av is None or (isinstance(av, Mapping) and av.get("NULL") is True and len(av) == 1):
        return "{}"  # as the event model stores an absent payload
    if isinstance(av, Mapping) and len(av) == 1:
        if "M" in av:
            return payload_json_from_map(av)
        if isinstance(av.get("S"), str):
            try:
                value = loads_exact(av["S"])
            except DuplicateKeyError as exc:
                # Another producer's text: which value was meant is unknown, so it is kept raw
                # in the quarantine rather than archived with one of the two silently dropped.
                raise CodecError("record.bad_payload",
                                 f"`event_payload` is JSON that repeats the key `{exc.key}` in "
                                 "one object; which value was meant is unknown",
                                 path="event_payload") from exc
            except (ValueError, RecursionError) as exc:
                raise CodecError("record.bad_payload",
                                 "`event_payload` is a string that is not JSON",
                                 path="event_payload") from exc
            if not isinstance(value, Mapping):
                raise CodecError("record.bad_payload",
                                 f"`event_payload` holds {_kind(value)}, not a JSON object",
                                 path="event_payload")
            try:
                return canonical_json(value)
            except InvalidEventError as exc:
                raise CodecError("record.bad_payload", exc.detail,
                                 path="event_payload") from exc
    raise CodecError("record.bad_payload",
                     f"`event_payload` must be JSON text (S) or a map (M), got {av_kind(av)}",
                     path="event_payload")

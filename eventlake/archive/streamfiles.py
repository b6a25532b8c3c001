"""What the stream archiver names its files, and the sequence ranges those names carry.

    stream-<first>-<last>-<digest>.parquet   rows whose records all have sequence numbers:
                                             their range, and a digest of their event_ids
    stream-x<digest>.parquet                 rows without (e.g. Kinesis-wrapped records):
                                             a digest of their ids, hashes and ingestion times

The same records get the same name back (an identical re-delivery rewrites its own file);
another shard whose numbers happen to be the same (they are ordered within a shard, not
unique across shards) gets another digest. Quarantine files follow the same two forms, named
from the quarantined records (`quarantine_name`). `name_range` reads a range back from a
name, for the overlap check (archive/streamwrite.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.events import canonical

_SEQ_NAME = re.compile(r"^stream-(\d+)-(\d+)(?:-[0-9a-f]+)?\.parquet$")


@dataclass(frozen=True, slots=True)
class Sequences:
    """The batch's sequence numbers as one Arrow text column (null where a record has none,
    or one that is not a number), so a partition's range is two kernel calls, not a Python
    pass over its rows."""

    numbers: pa.Array
    equal_width: bool
    """Every number has the same count of digits: text order is then numeric order."""
    all_numbers: bool
    """Every record has one."""

    @classmethod
    def of(cls, seqs: Sequence[str | None] | pa.Array) -> Sequences:
        numbers = seqs if isinstance(seqs, pa.Array) else pa.array(seqs, pa.string())
        # ASCII digits only, as `is_number`: they go into file names and through `int`.
        digits = pc.ascii_is_decimal(numbers)
        if not pc.all(digits).as_py():
            numbers = pc.if_else(digits, numbers, None)
        widths = pc.min_max(pc.binary_length(numbers))
        return cls(numbers, widths["min"] == widths["max"], numbers.null_count == 0)

    def range_of(self, records: pa.Array) -> tuple[str, str] | None:
        """(smallest, largest) sequence number of records `records` (batch indexes), compared
        as numbers; None when one of them has none."""
        taken = self.numbers.take(records)
        if taken.null_count:
            return None
        if self.equal_width:
            low, high = pc.min_max(taken).values()
            return low.as_py(), high.as_py()
        return seq_range(taken.to_pylist())


def is_number(seq: str) -> bool:
    """A sequence number usable in a file name and as a range bound: ASCII digits only
    (`str.isdigit` alone admits "²" and other digits that `int` or a file name refuse)."""
    return seq.isascii() and seq.isdigit()


def seq_range(seqs: list[str]) -> tuple[str, str]:
    """Smallest and largest of decimal sequence numbers (as numbers, not as text)."""
    if len(set(map(len, seqs))) == 1:  # the usual case: equal widths compare as text
        return min(seqs), max(seqs)
    return min(seqs, key=int), max(seqs, key=int)


def file_name(lo: str, hi: str, part: pa.Table) -> str:
    """`stream-<first seq>-<last seq>-<digest of the event_ids>`: an identical re-delivery
    gets its own name back; another shard whose sequence range happens to be the same (the
    numbers are ordered within a shard, not unique across shards) never overwrites it."""
    return f"stream-{lo}-{hi}-{ids_digest(part)[:12]}"


def content_name(part: pa.Table) -> str:
    """`stream-x<digest of each row's event_id, content_hash and ingested_at>`: the name of
    rows without sequence numbers. Not of the event_ids alone: an event deleted from the table
    and sent again (other content, a later ingestion) would get the first copy's name, and
    rewriting that file would lose the first copy (files are immutable: a name holds one set
    of rows)."""
    micros = pc.cast(pc.cast(part.column("ingested_at"), pa.int64()), pa.string())
    rows = pc.binary_join_element_wise(part.column("event_id"), part.column("content_hash"),
                                       micros, "\x00", null_handling="replace")
    return f"stream-x{_digest(rows)}"


def ids_digest(part: pa.Table) -> str:
    """`canonical.digest` (first 24 hex digits) of the rows' event_ids joined by newlines,
    joined in Arrow and hashed from its buffer (no Python string per id)."""
    return _digest(part.column("event_id"))


def _digest(texts: pa.Array | pa.ChunkedArray) -> str:
    """sha256 (first 24 hex digits) of `texts` joined by newlines, joined in Arrow."""
    flat = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(flat)], pa.int32()), flat),
                            "\n")
    return hashlib.sha256(joined[0].as_buffer()).hexdigest()[:24]


def name_range(base: str) -> tuple[int, int] | None:
    """The sequence range [first, last] a stream file's name (`base`, with `.parquet`)
    carries; None for any other name, `stream-x...` included."""
    match = _SEQ_NAME.match(base)
    return (int(match.group(1)), int(match.group(2))) if match else None


def quarantine_name(seqs: Sequence[str | None], identities: Sequence[str]) -> str:
    """The quarantine file of records with sequence numbers `seqs` (None where one has none)
    and `identities` (`canonical.raw_identity` of each), named from those records, not the
    batch: Lambda re-delivers a partly failed batch from a later record, and the records
    quarantined the first time must then rewrite their own file rather than land in a second
    one. Sequence numbers are not unique across shards, so a digest of the records follows
    them (as in the Parquet names): another shard quarantining records with the same numbers
    never overwrites this file."""
    numbers = [s for s in seqs if s is not None]
    digest = canonical.digest(chr(10).join(identities))[:24]
    if len(numbers) == len(seqs):
        lo, hi = seq_range(numbers)
        return f"stream-{lo}-{hi}-{digest[:12]}"
    return f"stream-x{digest}"

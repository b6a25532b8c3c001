"""The pyarrow datasets the views read a lake through when DuckDB's own reader cannot reach its
files (S3: no httpfs offline): one Parquet fragment per listed file, kept with its footer
between connections while the listing shows the same file.

pyarrow reads a fragment's footer (one ranged GET; for a file under 64 KiB the whole file) the
first time a scan opens it, keeps it in the fragment object, and from then on reads only the
column chunks a query asks for (one more GET). A fragment made afresh for every connection
made every connection pay the footer GET again: a warm `EventLake.sql` after a sweep wrote one
new file re-read every file's footer. So on S3 the fragments are kept per lake (`Lake` object),
by path, and reused while the listing reports the same size and LastModified:

    listing (path, size, LastModified)   kept fragment      dataset gets
    same as kept                         footer cached      the kept fragment (no footer GET)
    new path, or size/time changed       -                  a new one (its footer read once)
    no longer listed                     dropped            -

S3 sets LastModified itself (no client can), so an unchanged triple is the same object, a
same-second overwrite of the same size aside: lake files are never rewritten in place (names
carry their content's hash; compaction writes new names), the trust `query.warm` and the
verified-file shortcut of `views.install` already place in that triple. On local disk a
modification time can be set back (`cp -p`, `touch -r`): fragments are not kept there.

A kept fragment does not hide a file that vanished: a scan still opens the file to read its
column chunks, and that GET fails (NoSuchKey) the query, which `run_sql` lists again for. A
query needing no column at all (a bare `count(*)`) answers from the footer it holds, which is
the answer of the snapshot the connection was made from.

A child made by fork starts with no kept fragments (`_forget_in_child`): a lock a parent's
thread held at the fork would hang it, and it makes its own, as its own connections.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from eventlake.lake.layout import PARTITION

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

    from eventlake.lake.store import Lake, LakeFile

__all__ = ["KEPT_FRAGMENTS_LIMIT", "dataset", "fragments"]

KEPT_FRAGMENTS_LIMIT = 2_048
"""At most this many fragments are kept per lake; a listing with more files keeps those of the
newest partitions (by dt, then path, descending) and makes the rest afresh per connection. A
fragment whose footer a scan read holds ~24-38 KiB (pyarrow 26, a lake file of one row group:
the parsed footer, not its ~2 KiB on disk), so the kept ones stay under ~80 MiB a lake; 50,000
held ~1.8 GiB (tests/query/test_review34_fragments.py measures it)."""

_Key = tuple[int, datetime]
"""(size, LastModified) as listed: what makes a kept fragment still this object's."""


class _Kept:
    """One lake's kept fragments by path, with the listing they were made from."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_path: dict[str, tuple[_Key, ds.ParquetFileFragment]] = {}


_kept: weakref.WeakKeyDictionary[Lake, _Kept] = weakref.WeakKeyDictionary()
_kept_lock = threading.Lock()
_inherited: list[object] = []
"""What a child made by fork inherited: kept referenced, never used (as query/warm.py does with
connections). A lock another thread held at the fork stays held in the child for good, and the
parent's fragments carry its filesystem's clients: the child makes its own."""


def _forget_in_child() -> None:
    global _kept, _kept_lock
    _inherited.append((_kept, _kept_lock))
    _kept, _kept_lock = weakref.WeakKeyDictionary(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def fragments(lake: Lake, files: Sequence[LakeFile]) -> dict[str, ds.ParquetFileFragment]:
    """A fragment per listed file, by path: on S3 the lake's kept ones where the listing shows
    the same object (its footer is not read again), new ones otherwise; the kept set becomes
    this listing's. Each fragment carries what all its rows satisfy (`bounds`)."""
    import pyarrow.dataset as ds

    parquet = ds.ParquetFileFormat()

    def make(f: LakeFile) -> ds.ParquetFileFragment:
        return parquet.make_fragment(lake.fs_path(f.path), filesystem=lake.fs,
                                     partition_expression=bounds(f.dt), file_size=f.size)

    if not lake.is_s3:
        return {f.path: make(f) for f in files}
    with _kept_lock:
        kept = _kept.get(lake)
        if kept is None:
            kept = _kept[lake] = _Kept()
    out: dict[str, ds.ParquetFileFragment] = {}
    with kept.lock:
        old = kept.by_path
        new: dict[str, tuple[_Key, ds.ParquetFileFragment]] = {}
        # the newest partitions are kept when they do not all fit: queries look at recent days
        for f in sorted(files, key=lambda f: (f.dt, f.path), reverse=True):
            key = None if f.modified is None else (f.size, f.modified)
            entry = old.get(f.path)
            fragment = entry[1] if entry is not None and key is not None \
                and entry[0] == key else make(f)
            out[f.path] = fragment
            if key is not None and len(new) < KEPT_FRAGMENTS_LIMIT:
                new[f.path] = (key, fragment)
        kept.by_path = new
    return out


def dataset(lake: Lake, files: Iterable[LakeFile], made: Mapping[str, ds.ParquetFileFragment],
            schema: pa.Schema) -> ds.Dataset:
    """The files' fragments (from `made`, by path) as one dataset of `schema`: pyarrow skips
    fragments a filter excludes by their bounds without opening them."""
    import pyarrow.dataset as ds

    return ds.FileSystemDataset([made[f.path] for f in files], schema, ds.ParquetFileFormat(),
                                lake.fs)


def bounds(dt: str) -> ds.Expression:
    """What every row of a file of partition `dt` satisfies: its dt, and a timestamp on that
    UTC day."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from eventlake.events.schema import UTC_MICROS

    day = date.fromisoformat(dt)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return ((ds.field(PARTITION) == pa.scalar(day, pa.date32()))
            & (ds.field("timestamp") >= pa.scalar(start, UTC_MICROS))
            & (ds.field("timestamp") < pa.scalar(start + timedelta(days=1), UTC_MICROS)))

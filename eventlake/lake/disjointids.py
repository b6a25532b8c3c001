"""The ids of a disjoint-files manifest's files, kept next to it as one object, so that `verify`
checks k new files against one read instead of reading every verified file again:

    _eventlake/disjoint/dt=<dt>/<run>.ids.parquet    event_id (string), file (uint32: index
                                                      into the `eventlake.files` metadata, the
                                                      files' identities)

The exact ids, not hashes of them: there is no collision to settle by reading files, the check
is one vectorised `is_in`, and a digest of 64-bit hashes would be only 1.5-2x smaller (measured
on 1M ids: ~9.7 bytes an id against ~14 for ULIDs, ~20 for UUIDs; zstd Parquet).

A digest is written whole, under a name of its own, before the manifest that names it is
compare-and-swapped, and never changed: a manifest naming one names ids of exactly its files. A
crash between the two leaves an orphan nobody names (harmless; the writer deletes its own after a
lost swap, and the one a new manifest replaces; `delete_orphans`, run after each new digest,
deletes the partition's others once they are ORPHAN_AGE old, when no verify can still be about to
name them). Whoever reads a digest checks it names exactly
the manifest's files; one missing, unreadable or naming other files is not used (`read_digest`
answers None and the caller reads the files themselves).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from eventlake.lake.layout import STATE_DIR, check_dt
from eventlake.lake.store import Lake
from eventlake.logs import lazy_logger

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DIGEST_SUFFIX", "ORPHAN_AGE", "KnownIds", "delete_digest", "delete_orphans",
           "digest_key", "is_digest_key", "read_digest", "write_digest"]

_log = lazy_logger("eventlake.lake.disjoint")

DIGEST_SUFFIX = ".ids.parquet"
ORPHAN_AGE = timedelta(hours=1)
"""How old a digest no manifest names must be before `delete_orphans` deletes it: a verify
writes its digest moments before its manifest swap, so a younger one may be about to be named.
Ages are `now` (the caller's clock) less the store's modification time: a clock running far
ahead may delete a racer's digest, which only makes the next verify read the files again."""
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._=+@-]*{re.escape(DIGEST_SUFFIX)}")
"""A digest's base name: a run token and the suffix, a valid state key segment."""
_FILES = b"eventlake.files"
_DT = b"eventlake.dt"


def digest_key(dt: str, run: str) -> str:
    """The lake state key of a digest of partition `dt` written by run `run`."""
    return f"{_folder(dt)}/{run}{DIGEST_SUFFIX}"


def is_digest_key(dt: str, key: str) -> bool:
    """Whether `key` has the form of a digest of partition `dt` (`digest_key`'s): the only
    objects a manifest may name as its digest, so that an edited manifest never makes `verify`
    read, or delete, anything else (lake state, another partition's digest, an event file)."""
    folder, _, name = key.rpartition("/")
    return folder == _folder(dt) and _NAME.fullmatch(name) is not None


def _folder(dt: str) -> str:
    """The state folder of partition `dt`'s digests (one listing finds them all)."""
    return f"disjoint/dt={check_dt(dt)}"


@dataclass(frozen=True)
class KnownIds:
    """event_ids of verified files, each with the file it is in (`files[owners[i]]`, by
    `file_identity`). Ids are unique: the files are pairwise disjoint and hold each once."""

    files: tuple[str, ...]
    ids: pa.Array
    owners: pa.Array
    """uint32, one per id: its file's index in `files`."""

    @staticmethod
    def of(files: Sequence[tuple[str, pa.Array]]) -> KnownIds:
        """From (identity, event_id column) pairs."""
        import pyarrow as pa

        arrays = [a for _, a in files]
        return KnownIds(
            tuple(identity for identity, _ in files),
            pa.concat_arrays(arrays) if arrays else pa.array([], pa.string()),
            pa.concat_arrays([pa.repeat(pa.scalar(i, pa.uint32()), len(a))
                              for i, a in enumerate(arrays)]) if arrays
            else pa.array([], pa.uint32()))

    def plus(self, files: Sequence[tuple[str, pa.Array]]) -> KnownIds:
        """These and the ids of `files` (identity, event_id column)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not files:
            return self
        more = KnownIds.of(files)
        shift = len(self.files)
        return KnownIds(self.files + more.files, pa.concat_arrays([self.ids, more.ids]),
                        pa.concat_arrays([self.owners, pc.add(
                            more.owners, pa.scalar(shift, pa.uint32()))]))

    def only(self, keep: Iterable[str]) -> KnownIds:
        """The ids of the files among `keep` (identities); the others' rows dropped."""
        import pyarrow as pa
        import pyarrow.compute as pc

        keep = set(keep)
        if keep >= set(self.files):
            return self
        new_index = {old: new for new, old in enumerate(
            i for i, identity in enumerate(self.files) if identity in keep)}
        mask = pc.is_in(self.owners, value_set=pa.array(list(new_index), pa.uint32()))
        mapping = pa.array([new_index.get(i, 0) for i in range(len(self.files))], pa.uint32())
        return KnownIds(tuple(self.files[i] for i in new_index), self.ids.filter(mask),
                        mapping.take(self.owners.filter(mask)))


def write_digest(lake: Lake, dt: str, known: KnownIds) -> str:
    """Write `known` as a new digest of partition `dt`; returns its state key. Not atomic on
    local disk, and need not be: nobody reads a digest before a manifest names it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = digest_key(dt, secrets.token_hex(8))
    table = pa.table({"event_id": known.ids, "file": known.owners}).replace_schema_metadata({
        _FILES: json.dumps(list(known.files)).encode(), _DT: dt.encode()})
    path = lake.fs_path(f"{lake.root}/{STATE_DIR}/{key}")
    if not lake.is_s3:
        lake.fs.create_dir(path.rpartition("/")[0], recursive=True)
    with lake.fs.open_output_stream(path) as out:
        pq.write_table(table, out, compression="zstd")
    return key


def read_digest(lake: Lake, dt: str, key: str, files: frozenset[str]) -> KnownIds | None:
    """The digest `key` of partition `dt` when it names exactly `files` (a manifest's, by
    identity); None, logged, when it is missing, unreadable or names other files: the caller
    reads the files themselves. Raises what state IO raises (throttling: try again later)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not is_digest_key(dt, key):
        problem = "it is not a digest of this partition"
    else:
        found = lake.read_state(key)
        if found is None:
            problem = "it is missing"
        else:
            try:
                table = pq.read_table(pa.BufferReader(found.data))
                meta = table.schema.metadata or {}
                names = json.loads(meta[_FILES])
                if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                    raise TypeError("its file list is not a list of names")
                ids = table["event_id"].combine_chunks()
                owners = table["file"].combine_chunks()
                if ids.type != pa.string() or owners.type != pa.uint32():
                    raise TypeError(f"its columns are {table.schema.types}")
                if meta.get(_DT) != dt.encode() or ids.null_count or owners.null_count \
                        or (len(owners) and pc.max(owners).as_py() >= len(names)):
                    raise ValueError("its partition, ids or file indexes do not hold")
            except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
                problem = f"it is unreadable ({exc})"
            else:
                if len(set(names)) == len(names) and set(names) == files:
                    return KnownIds(tuple(names), ids, owners)
                problem = "it names other files than the manifest"
    _log.warning("not using the id digest `%s` of dt=%s (%s): verify reads the partition's "
                 "verified files instead", key, dt, problem)
    return None


def delete_digest(lake: Lake, key: str) -> None:
    """Best effort: a digest left behind is only an object nobody reads."""
    with suppress(Exception):
        lake.delete([f"{lake.root}/{STATE_DIR}/{key}"])


def delete_orphans(lake: Lake, dt: str, keep: str, *, now: datetime,
                   min_age: timedelta = ORPHAN_AGE) -> int:
    """Delete partition `dt`'s digests other than `keep` (the one its manifest now names) that
    are at least `min_age` old: left by a crash between a digest's write and its manifest's
    swap, or by a verify whose clean-up failed. Best effort (one listing); returns how many."""
    import pyarrow.fs as pafs

    try:
        folder = lake.fs_path(f"{lake.root}/{STATE_DIR}/{_folder(dt)}")
        infos = lake.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        kept = keep.rpartition("/")[2]
        old = [f"{lake.root}/{STATE_DIR}/{_folder(dt)}/{info.base_name}" for info in infos
               if info.type == pafs.FileType.File and info.base_name.endswith(DIGEST_SUFFIX)
               and info.base_name != kept and info.mtime is not None
               and now - info.mtime >= min_age]  # pyarrow's mtime: aware, UTC
        if old:
            lake.delete(old)
    except Exception as exc:  # a digest left behind is only an object nobody reads
        _log.info("could not delete old id digests of dt=%s: %s: %s", dt,
                  type(exc).__name__, exc)
        return 0
    return len(old)


"""Index entries -> the whole items the lake lacks: the read path of the sweep and the expiry
check (the writer, `archive_items`, takes what this yields).

    index entries (hot/index.py: event_id, keys, timestamp, content_hash, expires_at)
      -> chunks of `chunk_rows` entries
      -> key: (event_id, content_hash) in partition dt = the timestamp's UTC date
      -> anti-join against the lake's (event_id, content_hash) of those dates
           held with the same hash -> counted `read` and `already`, never fetched
           held with another hash  -> fetched: the writer quarantines it (an id reused)
           not held                -> fetched
           undecidable (no hash, a timestamp not in format_ts's layout) -> fetched: the
                                      writer decodes it like any item, or quarantines it
           whole already (the old index, during a migration) -> passed on as it is
      -> BatchGetItem (HotStore.fetch) -> whole items -> the writer, whose own anti-join runs
         again right before writing (the stream may have written some meanwhile)
      -> an entry whose item is gone when fetched (TTL deleted it after the index read):
         kept in `vanished`; the sweep's TTL guard reports it as at risk, unless a lake file
         holds it by then. Never skipped silently.

An entry found held is in a lake file already: files are immutable and compaction keeps their
rows, so the watermark may pass it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from eventlake.archive.writer import DEFAULT_CHUNK_ROWS, ArchiveCounts, event_keys
from eventlake.hot.index import entry_key, is_whole
from eventlake.hot.store import HotStore, Item
from eventlake.lake.store import Lake

__all__ = ["lacking_items"]

def lacking_items(lake: Lake, hot: HotStore, pages: Iterable[list[Item]], *,
                  counts: ArchiveCounts, vanished: list[Item],
                  chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[list[Item]]:
    """The whole items of `pages`' entries that the lake lacks (the module docstring). The
    entries found archived are added to `counts` (read, already); those whose items were
    gone when fetched are appended to `vanished`."""
    chunk: list[Item] = []
    for page in pages:
        chunk.extend(page)
        if len(chunk) >= chunk_rows:
            yield from _lacking(lake, hot, chunk, counts, vanished)
            chunk = []
    if chunk:
        yield from _lacking(lake, hot, chunk, counts, vanished)


def _lacking(lake: Lake, hot: HotStore, chunk: list[Item], counts: ArchiveCounts,
             vanished: list[Item]) -> Iterator[list[Item]]:
    whole = [entry for entry in chunk if is_whole(entry)]
    decided: list[tuple[Item, tuple[str, str, str]]] = []
    fetch: list[Item] = []
    for entry in chunk:
        if is_whole(entry):
            continue
        key = entry_key(entry)
        if key is None:
            fetch.append(entry)
        else:
            decided.append((entry, key))
    if decided:
        held = _held(lake, [key for _, key in decided])
        for (entry, _), archived in zip(decided, held, strict=True):
            if not archived:
                fetch.append(entry)
        skipped = sum(held)
        counts.read += skipped
        counts.already += skipped
    if whole:
        yield whole
    if fetch:
        fetched = hot.fetch([entry["event_id"]["S"] for entry in fetch])
        gone = set(fetched.vanished)
        vanished.extend(entry for entry in fetch if entry["event_id"]["S"] in gone)
        items = [fetched.items[entry["event_id"]["S"]] for entry in fetch
                 if entry["event_id"]["S"] not in gone]
        if items:
            yield items


def _held(lake: Lake, keys: list[tuple[str, str, str]]) -> list[bool]:
    """For each (event_id, dt, hash): whether a lake file of dt holds that exact event."""
    ids = pc.unique(pa.array([k[0] for k in keys], pa.string()))
    present = lake.read_hashes({k[1] for k in keys}, ids=ids)  # only these ids' rows
    if not present.num_rows:
        return [False] * len(keys)
    wanted = pa.array([f"{k[0]}\x00{k[2]}" for k in keys], pa.string())
    return [bool(v) for v in pc.is_in(wanted, value_set=event_keys(present)).to_pylist()]

"""The largest index shard count the lake has seen in force, so that lowering it hides nothing.

    <root>/_eventlake/index.json   {"index_shards_max", "table", "updated_at", "previous"}

The index's shard count is the table's (tablesettings.py), and a deploy may lower it on a live
table. Events written before carry shard numbers up to the old count: a reader that queries
only the new count misses them, and every guard, reading the same way, stays green. So the
lake remembers the largest count it has seen in force, and every reader of the index that has
the lake (the sweep, the expiry check, the TTL guard, `events_hot`, reconcile, `status`)
queries that many shards per day (`HotStore.read_at_least`). Writers may use the lower count:
its shards are a subset. The ingest Lambda only writes, and reads no lake.

    table's count vs record   sweep / `eventlake init`              readers
    no record                 record the table's count              the table's count
    above the record          raise it (compare-and-swap)           the table's count
    below the record          keep it                               the record, WARNING once

The record never goes down: the shards above a lowered count hold events written before the
change until retention has passed (and a long-running writer may still use the old count), and
reading an empty shard costs one Query.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from eventlake.errors import StorageError
from eventlake.events.times import format_ts
from eventlake.hot.store import HotStore
from eventlake.hot.tablesettings import TABLE_TAGS
from eventlake.lake.layout import STATE_DIR
from eventlake.lake.state import LakeState, StateConflictError

__all__ = ["INDEX_KEY", "ShardRecord", "read_recorded_shards", "read_shard_record",
           "remember_shards"]

INDEX_KEY = "index.json"
_ATTEMPTS = 10
"""Compare-and-swap rounds before giving up (only sweeps and `init` write the record)."""
_log = logging.getLogger("eventlake.lake.shards")


@dataclass(frozen=True)
class ShardRecord:
    """The largest index shard count the lake has seen in force; `version` for the next swap."""

    index_shards_max: int
    version: str


def read_shard_record(lake: LakeState) -> ShardRecord | None:
    """The lake's record, or None when nothing is known yet (a lake made before it)."""
    found = lake.read_state(INDEX_KEY)
    if found is None:
        return None
    data, version = found
    try:
        shards = json.loads(data)["index_shards_max"]
        if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= 100:
            raise ValueError(f"`index_shards_max` is {shards!r}, not an integer from 1 to 100")
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(
            f"`{STATE_DIR}/{INDEX_KEY}` of lake `{lake.root}` is not readable ({exc}): restore "
            'it, or write {"index_shards_max": N} into it, N the largest index shard count '
            "the table was ever written with (deleting it would let a lowered count hide the "
            "events of the shards above it)") from exc
    return ShardRecord(shards, version)


def remember_shards(lake: LakeState, hot: HotStore) -> list[str]:
    """For the sweep and `eventlake init`: raise the lake's record to the table's shard count
    when that is larger (or nothing is recorded), then make `hot` read as many shards as the
    record says. Returns what changed (empty when nothing did)."""
    table = hot.table_settings().index_shards
    record = read_shard_record(lake)
    changes: list[str] = []
    for _ in range(_ATTEMPTS):
        if record is not None and record.index_shards_max >= table:
            break
        data = json.dumps({"index_shards_max": table, "table": hot.table,
                           "updated_at": format_ts(hot.now()),
                           "previous": record.index_shards_max if record else None},
                          sort_keys=True).encode()
        try:
            version = lake.write_state(INDEX_KEY, data,
                                       expected=record.version if record else None)
        except StateConflictError:  # another sweep or init wrote it first: look again
            record = read_shard_record(lake)
            continue
        record = ShardRecord(table, version)
        changes.append(f"recorded {table} index shards in lake `{lake.root}` "
                       f"({STATE_DIR}/{INDEX_KEY}: readers query at least that many)")
        break
    else:
        raise StorageError(f"`{STATE_DIR}/{INDEX_KEY}` of lake `{lake.root}` kept changing "
                           f"while recording {table} index shards: run again")
    _read_at_least(lake, hot, record)
    return changes


def read_recorded_shards(lake: LakeState, hot: HotStore) -> int:
    """For readers of the index: make `hot` query at least the shards the lake has recorded
    (read once per store); returns how many it queries per day."""
    if hot.read_floor is None:
        _read_at_least(lake, hot, read_shard_record(lake))
    return hot.shards_to_read()


def _read_at_least(lake: LakeState, hot: HotStore, record: ShardRecord | None) -> None:
    if record is None:
        return  # nothing known yet: the table's count (the next sweep records it)
    recorded, table = record.index_shards_max, hot.table_settings().index_shards
    if hot.read_at_least(recorded) and recorded > table:
        extra = f"shard {table}" if recorded == table + 1 else f"shards {table} to {recorded - 1}"
        _log.warning(
            "table `%s` records %d index shards (tag `%s`), fewer than the %d lake `%s` has seen "
            "in force (%s/%s): events written with the larger count stay readable, because "
            "readers keep querying %s (they hold events written before the change until "
            "retention has passed); nothing to do", hot.table, table, TABLE_TAGS["index_shards"],
            recorded, lake.root, STATE_DIR, INDEX_KEY, extra)

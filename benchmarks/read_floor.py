"""The floor of the read-units benchmark (read_units.py): what the index entries a sweep read
are made of (the table key, the index keys, the projected attributes) and what reading them
would cost with a keys-only index, with ids as long as the benchmark's and as the real data
sets' median, per read and over an event's life. No projection choice reads less than its
keys; a compact layout of other keys than DESIGN.md's would (`COMPACT`, priced, not built)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Collection
from pathlib import Path
from typing import Any

REALCASES = Path("/work/shared/realcases/datasets")
REAL_IDS = {"GitHub Archive": ("pinot__gharchive-2021-07-21-few-hours.jsonl", "id"),
            "CloudTrail": ("plaso__aws_cloudtrail.jsonl", "EventId")}
"""Real data sets (outside the repository; left out when absent): file, the events' id field."""
KEYS = ("event_id", "ingest_shard", "ingest_key")
"""An entry's keys: the table's (event_id) and the index's (hot/index.py)."""
COMPACT_SORT_KEY_BYTES = 8 + 8 + 5 + 16
"""A compact layout's sort key, one binary value: ingested_at and timestamp as 8-byte
microseconds, expires_at in 5 bytes, the first 16 bytes of the content hash."""
COMPACT = ("a compact layout, not built: keys `s` = <UTC day>#<shard>, "
           f"`k` = {COMPACT_SORT_KEY_BYTES} bytes, the id not repeated")
"""What an index could read if its layout were not DESIGN.md's: one-letter key names, the sort
key a packed binary value holding everything the sweep decides on, keys only. Not built: its
key attributes are new, so DynamoDB could not backfill it from existing items (see README)."""


def real_id_lengths() -> dict[str, int]:
    """The median event id length of each real data set found on this machine."""
    out = {}
    for label, (name, field) in REAL_IDS.items():
        path = REALCASES / name
        if path.exists():
            with path.open(encoding="utf-8") as f:
                ids = [str(json.loads(row)[field]) for row in f if row.strip()]
            out[f"{label} ({len(ids)} ids)"] = int(statistics.median(map(len, ids)))
    return out


def floor(entries: list[dict[str, Any]], reads: float, life_before: dict[str, float],
          sweep_before: dict[str, float] | None = None
          ) -> tuple[list[list[str]], list[list[str]], dict[str, float]]:
    """The after-sweep's index entries by part, what one read of 1,000 of them costs with this
    index and with a keys-only one (ids as long as now, and as the real data sets' median), and
    the same over an event's `reads` reads; against `life_before` (payload -> the before
    path's lifetime per 1,000) and `sweep_before` (payload -> the before sweep's cost per 1,000
    more archived events), the most any projection could gain, and what `COMPACT` would."""
    from eventlake.hot.capacity import UNIT_BYTES, item_size

    def mean_size(names: Collection[str]) -> float:
        return statistics.mean(item_size({k: e[k] for k in e if k in names}) for e in entries)

    keys = set(KEYS)
    projected = sorted({k for e in entries for k in e} - keys)
    size = mean_size(keys | set(projected))
    parts = [["table key (event_id)", f"{mean_size({'event_id'}):.1f}"],
             ["index keys (ingest_shard, ingest_key)",
              f"{mean_size({'ingest_shard', 'ingest_key'}):.1f}"],
             [f"projected ({', '.join(projected)})", f"{mean_size(set(projected)):.1f}"],
             ["entry", f"{size:.1f}"]]

    def per_1000(entry_bytes: float) -> float:  # eventually consistent; page rounding aside
        return 1000 * entry_bytes / UNIT_BYTES / 2

    def keys_only(id_length: int) -> float:
        """A keys-only entry's bytes with ids of `id_length` characters (ingest_key ends
        with the id)."""
        new = "x" * id_length
        sizes = []
        for e in entries:
            event_id, key = e["event_id"]["S"], e["ingest_key"]["S"]
            if not key.endswith(f"#{event_id}"):
                raise ValueError(f"index entry of `{event_id}`: ingest_key `{key}` does not "
                                 "end with `#<event_id>` (hot/index.py's layout)")
            sizes.append(item_size({"event_id": {"S": new}, "ingest_shard": e["ingest_shard"],
                                    "ingest_key": {"S": key[:-len(event_id)] + new}}))
        return statistics.mean(sizes)

    def compact() -> float:
        """The bytes of an entry of `COMPACT`, a layout not built, with these ids and shards."""
        return statistics.mean(item_size({"event_id": e["event_id"], "s": e["ingest_shard"],
                                          "k": {"B": bytes(COMPACT_SORT_KEY_BYTES)}})
                               for e in entries)

    id_now = round(statistics.median(len(e["event_id"]["S"]) for e in entries))
    choices = {"this index (keys + projected)": size,
               f"keys only, ids of {id_now} chars (these)": keys_only(id_now),
               **{f"keys only, {name}: median id {n} chars": keys_only(n)
                  for name, n in real_id_lengths().items()},
               COMPACT: compact()}
    rows = [[label, f"{per_1000(entry_bytes):.1f}", f"{per_1000(entry_bytes) * reads:.1f}"]
            for label, entry_bytes in choices.items()]
    best = per_1000(keys_only(id_now)) * reads
    packed = per_1000(compact()) * reads
    for payload, before in (sweep_before or {}).items():
        rows.append([f"before's sweep per 1,000 more at {payload} / one keys-only read",
                     f"{before / per_1000(keys_only(id_now)):,.1f}x", ""])
        rows.append([f"before's sweep per 1,000 more at {payload} / one compact-layout read",
                     f"{before / per_1000(compact()):,.1f}x", ""])
    for payload, before in life_before.items():
        rows.append([f"before's life at {payload} / keys-only life (the most a projection "
                     "can gain)", "", f"{before / best:,.1f}x"])
        rows.append([f"before's life at {payload} / the compact layout's life", "",
                     f"{before / packed:,.1f}x"])
    summary = {"rru_floor_entry_bytes": size, "rru_floor_read_projected": per_1000(size),
               "rru_floor_read_keys_only": per_1000(keys_only(id_now)),
               "rru_floor_life_keys_only": best,
               "rru_floor_read_compact": per_1000(compact())}
    return parts, rows, summary

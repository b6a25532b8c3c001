"""The floor of the read-units benchmark (read_units.py): what the index entries a sweep read
are made of (the table key, the index keys) and what one read of 1,000 of them costs, per read
and over an event's life, next to what the same entries would cost in the layouts before
(by_ingested_at_v2: DESIGN.md's keys `ingest_shard`, `ingest_key` and three projected
attributes; and those keys alone), and with ids as long as the real data sets' median. The
index is keys only: no projection reads less than its keys, and its keys are the id once, a
14-byte shard and a 53-byte binary sort key (hot/index.py)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

REALCASES = Path("/work/shared/realcases/datasets")
REAL_IDS = {"GitHub Archive": ("pinot__gharchive-2021-07-21-few-hours.jsonl", "id"),
            "CloudTrail": ("plaso__aws_cloudtrail.jsonl", "EventId")}
"""Real data sets (outside the repository; left out when absent): file, the events' id field."""
KEYS = ("event_id", "s", "k")
"""An entry of by_ingested_at_v3: the table's key (event_id) and the index's (hot/index.py)."""
PREVIOUS_KEYS = ("event_id", "ingest_shard", "ingest_key")
"""DESIGN.md's index keys, by_ingested_at_v2's: the sort key `<ingested_at>#<id>` repeats the id."""
THIS = "this index (by_ingested_at_v3: keys only, s + a 53-byte k)"
PREVIOUS = ("by_ingested_at_v2 (keys ingest_shard, ingest_key + timestamp, content_hash, "
            "expires_at)")
DESIGN_KEYS = "keys only with DESIGN.md's keys (ingest_shard, ingest_key)"


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
    """The after-sweep's index entries (by_ingested_at_v3's, as DynamoDB returned them) by
    part; what one read of 1,000 of them costs, and the same over an event's `reads` reads, in
    this index, in the layouts before it (the same entries decoded: `index.decode_entry`), and
    with ids as long as the real data sets' median; against `life_before` (payload -> the
    before path's lifetime per 1,000) and `sweep_before` (payload -> the before sweep's cost
    per 1,000 more archived events), this index's gain."""
    from eventlake.hot.capacity import UNIT_BYTES, item_size
    from eventlake.hot.index import decode_entry

    for e in entries:
        if set(e) != set(KEYS):
            raise ValueError(f"index entry of `{e.get('event_id', {}).get('S')}` holds "
                             f"{sorted(e)}; "
                             f"by_ingested_at_v3's entries are {list(KEYS)} (hot/index.py)")

    def mean(sizes: list[int]) -> float:
        return statistics.mean(sizes)

    def per_1000(entry_bytes: float) -> float:  # eventually consistent; page rounding aside
        return 1000 * entry_bytes / UNIT_BYTES / 2

    decoded = [decode_entry(e) for e in entries]
    size = mean([item_size(e) for e in entries])
    table_key = mean([item_size({"event_id": e["event_id"]}) for e in entries])
    index_keys = mean([item_size({"s": e["s"], "k": e["k"]}) for e in entries])
    parts = [["table key (event_id)", f"{table_key:.1f}"],
             ["index keys (s, k)", f"{index_keys:.1f}"], ["entry", f"{size:.1f}"]]

    def with_id_length(n: int) -> float:
        """This index's entry bytes with ids of `n` characters (the id is there once)."""
        return mean([item_size({**e, "event_id": {"S": "x" * n}}) for e in entries])

    id_now = round(statistics.median(len(e["event_id"]["S"]) for e in entries))
    choices = {THIS: size,
               PREVIOUS: mean([item_size(d) for d in decoded]),
               DESIGN_KEYS: mean([item_size({k: d[k] for k in PREVIOUS_KEYS}) for d in decoded]),
               **{f"this index, {name}: median id {n} chars (these: {id_now})": with_id_length(n)
                  for name, n in real_id_lengths().items()}}
    rows = [[label, f"{per_1000(entry_bytes):.1f}", f"{per_1000(entry_bytes) * reads:.1f}"]
            for label, entry_bytes in choices.items()]
    read = per_1000(size)
    for payload, before in (sweep_before or {}).items():
        rows.append([f"before's sweep per 1,000 more at {payload} / one read of this index",
                     f"{before / read:,.1f}x", ""])
    for payload, before in life_before.items():
        rows.append([f"before's life at {payload} / this index's life", "",
                     f"{before / (read * reads):,.1f}x"])
    summary = {"rru_floor_entry_bytes": size, "rru_floor_read": read,
               "rru_floor_life": read * reads,
               "rru_floor_read_previous": per_1000(choices[PREVIOUS]),
               "rru_floor_read_design_keys": per_1000(choices[DESIGN_KEYS])}
    return parts, rows, summary

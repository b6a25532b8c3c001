"""Export: a week of events from the compacted lake on moto S3 to one Parquet object, through
`EventLake.export`, against awswrangler reading the same week (partition filter) and writing a
Parquet dataset. Both outputs are read back and compared (event_id + content_hash) first."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow.dataset as ds
import pyarrow.fs

from benchmarks.peers.data import settings
from benchmarks.peers.harness import Peer, interleave, markdown, ms, timed


def _read(uri: str) -> list[tuple[str, str]]:
    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    data = ds.dataset(path, filesystem=fs, format="parquet").to_table(
        columns=["event_id", "content_hash"])
    data = data.sort_by("event_id")
    return list(zip(data.column("event_id").to_pylist(), data.column("content_hash").to_pylist(),
                    strict=True))


def run(peer: Peer, root: str, bucket: str, start: str, end: str, rounds: int
        ) -> tuple[str, dict[str, float]]:
    from eventlake import EventLake
    from eventlake.replay.select import Selection

    lake = EventLake(settings(root))
    first = datetime.combine(date.fromisoformat(start), datetime.min.time(), UTC)
    last = datetime.combine(date.fromisoformat(end), datetime.min.time(), UTC) + timedelta(days=1)
    selection = Selection(from_ts=first, to_ts=last, cold_only=True)
    ours_out = f"s3://{bucket}/exports/eventlake/week.parquet"
    theirs_out = f"s3://{bucket}/exports/awswrangler"
    counts: dict[str, Any] = {}

    def ours() -> float:
        return timed(lambda: counts.update(eventlake=lake.export(selection, ours_out,
                                                                 overwrite=True)))

    def theirs() -> float:
        seconds, n = peer.call("export_awswrangler", root=root, out=theirs_out, start=start,
                               end=end)
        counts["awswrangler"] = n
        return seconds

    candidates = {"eventlake": ours, "awswrangler": theirs}
    for once in candidates.values():
        once()
    expected = _read(ours_out)
    assert expected and _read(theirs_out) == expected, "exports differ"
    assert counts["awswrangler"] == len(expected), counts
    times = interleave(candidates, rounds)
    base = times.median("eventlake")
    rows = [[f"eventlake `EventLake.export` ({len(expected):,} events, one Parquet object)",
             ms(base), times.spread("eventlake"), "1.00x"],
            ["awswrangler `s3.read_parquet` + `s3.to_parquet`", ms(times.median("awswrangler")),
             times.spread("awswrangler"), f"{times.median('awswrangler') / base:.2f}x"]]
    text = (f"### Export of one week, moto S3 -> moto S3 (median of {rounds} interleaved rounds, "
            "rows checked equal)\n\n"
            + markdown(["export", "median", "spread", "time vs eventlake"], rows))
    return text, {"peers_export_awswrangler_vs_eventlake": times.median("awswrangler") / base}

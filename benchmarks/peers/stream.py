"""Stream batch -> Parquet: eventlake's stream handler against the idiomatic Powertools consumer
(BatchProcessor + the DynamoDB stream data classes) writing with pyarrow or pandas, and a bare
loop over the AttributeValues + the same pyarrow write (the floor for a Python consumer).

Every candidate writes one zstd Parquet file per day into a fresh folder; all outputs are read
back and compared with eventlake's, row for row (cast to the lake's schema), before timing.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.peers.data import payload_bytes, settings, stream_event
from benchmarks.peers.harness import Peer, interleave, markdown, ms, timed
from eventlake.events.schema import EVENT_SCHEMA, SORT_KEYS

RECORDS = 10_000
ROUNDS = 11


def bare_loop(event: dict[str, Any], root: Path) -> None:
    """Read the AttributeValues straight into columns; the same pyarrow sort and write."""
    from datetime import datetime

    cols: dict[str, list[Any]] = {name: [] for name in EVENT_SCHEMA.names}
    for record in event["Records"]:
        if record["eventName"] != "INSERT":
            continue
        image = record["dynamodb"]["NewImage"]
        cols["event_id"].append(image["event_id"]["S"])
        cols["event_type"].append(image["event_type"]["S"])
        cols["timestamp"].append(datetime.fromisoformat(image["timestamp"]["S"]))
        cols["ingested_at"].append(datetime.fromisoformat(image["ingested_at"]["S"]))
        source, subject = image.get("source"), image.get("subject")
        cols["source"].append(source["S"] if source else None)
        cols["subject"].append(subject["S"] if subject else None)
        cols["event_payload"].append(image["event_payload"]["S"])
        cols["content_hash"].append(image["content_hash"]["S"])
    data = pa.table(cols, schema=EVENT_SCHEMA)
    dts = pc.strftime(data.column("timestamp"), format="%Y-%m-%d")
    for dt in pc.unique(dts).to_pylist():
        folder = root / f"dt={dt}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(data.filter(pc.equal(dts, dt)).sort_by(SORT_KEYS),
                       folder / "batch.parquet", compression="zstd")


def read_back(root: Path) -> pa.Table:
    """Every row under `root` (any depth), in the lake's schema, sorted by event_id."""
    files = sorted(p for p in root.rglob("*.parquet") if "_eventlake" not in p.parts)
    parts = [pq.read_table(p).select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA) for p in files]
    return pa.concat_tables(parts).sort_by([("event_id", "ascending")])


def _one_size(peer: Peer, work: Path, size: str, schema: str, rows: list[list[str]],
              ratios: dict[str, float]) -> None:
    from eventlake.handlers import stream
    from eventlake.lake.store import Lake

    event = stream_event(0, RECORDS, size=size)
    path = work / f"event-{size}.json"
    path.write_text(json.dumps(event))
    peer.call("warm", event=str(path))
    outs = {k: work / size / k for k in ("eventlake", "bare", "pt_pyarrow", "pt_pandas")}
    count = [0]

    def eventlake_round() -> float:
        count[0] += 1
        root = outs["eventlake"] / f"r{count[0]}"
        lake = Lake(settings(str(root)))
        lake.create_marker(table="bench-no-table")
        stream.reset(lake)
        answer: dict[str, Any] = {}
        seconds = timed(lambda: answer.update(stream.handler(event)))
        assert answer == {"batchItemFailures": []}, answer
        return seconds

    def bare_round() -> float:
        shutil.rmtree(outs["bare"], ignore_errors=True)
        return timed(lambda: bare_loop(event, outs["bare"]))

    def peer_round(task: str, out: Path, **extra: Any) -> float:
        shutil.rmtree(out, ignore_errors=True)
        seconds, n = peer.call(task, event=str(path), out=str(out), **extra)
        assert n == RECORDS, (task, n)
        return seconds

    candidates = {
        "eventlake": eventlake_round,
        "bare": bare_round,
        "pt_pyarrow": lambda: peer_round("stream_powertools_pyarrow",
                                         outs["pt_pyarrow"], schema=schema),
        "pt_pandas": lambda: peer_round("stream_powertools_pandas", outs["pt_pandas"]),
    }
    for run_once in candidates.values():  # one round first: outputs checked equal
        run_once()
    expected = read_back(outs["eventlake"] / "r1")
    assert expected.num_rows == RECORDS
    for name in ("bare", "pt_pyarrow", "pt_pandas"):
        got = read_back(outs[name])
        assert got.equals(expected), f"{name}'s rows differ from eventlake's ({size})"
    times = interleave(candidates, ROUNDS)
    label = f"~{payload_bytes(event):,.0f} B"
    base = times.median("eventlake")
    for name, title in (("eventlake", "eventlake stream handler"),
                        ("pt_pyarrow", "Powertools BatchProcessor + pyarrow"),
                        ("pt_pandas", "Powertools BatchProcessor + pandas"),
                        ("bare", "bare loop + the same pyarrow write")):
        m = times.median(name)
        rows.append([f"{title}, {label} payloads", ms(m), times.spread(name),
                     f"{RECORDS / m:,.0f}", f"{m / base:.2f}x"])
        ratios[f"peers_stream_{size}_{name}_vs_eventlake"] = m / base


def run(peer: Peer) -> tuple[str, dict[str, float]]:
    from eventlake.handlers import stream

    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="eventlake-bench-peers-",
                                 dir=shm if shm.is_dir() else None))
    schema = base64.b64encode(EVENT_SCHEMA.serialize().to_pybytes()).decode()
    rows: list[list[str]] = []
    ratios: dict[str, float] = {}
    try:
        for size in ("small", "large"):
            _one_size(peer, work, size, schema, rows, ratios)
    finally:
        stream.reset(None)
        shutil.rmtree(work, ignore_errors=True)
    table = markdown(["stream batch -> Parquet (10,000 records)", "median", "spread",
                      "records/s", "time vs eventlake"], rows)
    return (f"### Stream batch -> Parquet ({RECORDS:,} INSERT records, median of {ROUNDS} "
            "interleaved rounds, outputs checked equal)\n\n" + table), ratios

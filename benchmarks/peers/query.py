"""Queries: a full count by type and day, a one-week count and a one-week JSON average, through
`EventLake.sql` (a fresh call each time, as a user makes it) against bare DuckDB, Polars, pandas
(local disk) and Polars, awswrangler (moto S3), on a compacted and a stream-fragmented lake.

Bare DuckDB runs in this process (the same duckdb eventlake uses); on S3 it has no row: httpfs
cannot be installed here. Answers are compared (sorted, floats to 9 digits) before timing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.peers.data import settings
from benchmarks.peers.harness import Peer, Timings, interleave, markdown, ms, normalise, timed

QUERIES = {
    "count_by_type_day": ("full count by type and day",
                          "SELECT event_type, dt, count(*) FROM {src} GROUP BY ALL"),
    "week_count": ("one-week count",
                   "SELECT count(*) FROM {src} WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'"),
    "week_json_avg": ("one-week JSON average",
                      "SELECT avg(CAST(json_extract_string(event_payload, '$.cart_total') AS "
                      "DOUBLE)) FROM {src} WHERE dt BETWEEN DATE '{start}' AND DATE '{end}'"),
}


def eventlake_sql(root: str, query: str, start: str, end: str) -> Callable[[], Any]:
    from eventlake import EventLake

    lake = EventLake(settings(root))
    sql = QUERIES[query][1].format(src="events", start=start, end=end)
    return lambda: lake.sql(sql, hot=False).to_pylist()


def bare_duckdb(root: str, query: str, start: str, end: str) -> Callable[[], Any]:
    src = f"read_parquet('{root}/events/*/*.parquet', hive_partitioning=true)"
    sql = QUERIES[query][1].format(src=src, start=start, end=end)
    return lambda: duckdb.connect().execute(sql).fetchall()


def _one_query(peer: Peer, peers: list[str], lake_name: str, root: str, query: str, *,
               s3: bool, rounds: int, start: str, end: str, rows: list[list[str]],
               ratios: dict[str, float]) -> None:
    title = QUERIES[query][0]
    where = "moto S3" if s3 else "local disk"
    answers: dict[str, Any] = {}
    ours = eventlake_sql(root, query, start, end)

    def ours_round(ours: Callable[[], Any] = ours) -> float:
        return timed(lambda: answers.update(eventlake=[list(r.values())
                                                       for r in ours()]))

    candidates: dict[str, Callable[[], float]] = {"eventlake": ours_round}
    for name in peers:
        if name == "duckdb":
            bare = bare_duckdb(root, query, start, end)
            candidates[name] = (lambda bare=bare: timed(
                lambda: answers.update(duckdb=bare())))
            continue

        def peer_round(name: str = name, query: str = query) -> float:
            seconds, result = peer.call(f"query_{name}", root=root, query=query,
                                        start=start, end=end)
            answers[name] = result
            return seconds

        candidates[name] = peer_round
    for run_once in candidates.values():  # warm-up round, answers checked equal
        run_once()
    expected = normalise(answers["eventlake"])
    assert expected, f"eventlake answered nothing to {query} on {root}"
    for name in peers:
        assert normalise(answers[name]) == expected, (
            f"{name} answers {query} on {root} differently: {answers[name][:5]} vs "
            f"{expected[:5]}")
    times: Timings = interleave(candidates, rounds)
    base = times.median("eventlake")
    for name in candidates:
        label = {"eventlake": "eventlake `EventLake.sql`", "duckdb": "bare DuckDB",
                 "polars": "Polars", "pandas": "pandas",
                 "awswrangler": "awswrangler"}[name]
        m = times.median(name)
        rows.append([f"{title}, {lake_name}, {where}: {label}", ms(m), times.spread(name),
                     f"{m / base:.2f}x"])
        key = f"peers_query_{'s3' if s3 else 'local'}_{lake_name}_{query}_{name}"
        ratios[key + "_vs_eventlake"] = m / base


def run_lakes(peer: Peer, lakes: dict[str, str], *, s3: bool, rounds: int, start: str,
              end: str) -> tuple[list[list[str]], dict[str, float]]:
    """Rows of the table for each lake (name -> root) and query; ratios for the summary."""
    peers = ["polars", "awswrangler"] if s3 else ["duckdb", "polars", "pandas"]
    rows: list[list[str]] = []
    ratios: dict[str, float] = {}
    for lake_name, root in lakes.items():
        for query in QUERIES:
            _one_query(peer, peers, lake_name, root, query, s3=s3, rounds=rounds,
                       start=start, end=end, rows=rows, ratios=ratios)
    return rows, ratios


def header(rounds_local: int, rounds_s3: int, local: str, s3: str) -> str:
    return (f"### Queries (local: {local}, median of {rounds_local} interleaved rounds; moto S3: "
            f"{s3}, median of {rounds_s3}; answers checked equal)\n\n")


def table(rows: list[list[str]]) -> str:
    return markdown(["query, lake, storage: engine", "median", "spread", "time vs eventlake"],
                    rows)


def upload(root: Path, bucket: str, prefix: str) -> str:
    """Copy a local lake (state files included) to s3://bucket/prefix, then verify it there as
    the sweep would (the copied manifests name the local files' times, which S3's LastModified
    does not match: unverified, every multi-file day would be read de-duplicated); its URI."""
    import boto3

    from benchmarks.peers.data import settings
    from eventlake.lake.disjoint import verify
    from eventlake.lake.store import Lake

    s3 = boto3.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")
    uri = f"s3://{bucket}/{prefix}"
    lake = Lake(settings(uri))
    verify(lake, sorted({f.dt for f in lake.list_files()}))
    return uri

"""The peers' side of `python -m benchmarks peers`: runs in the peers' own venv (`.venv-peers`,
`make venv-peers`), never imports eventlake, and times only its own work.

Protocol: one JSON request a line on stdin, `{"task": NAME, "args": {...}}`; one JSON answer a
line on stdout, `{"seconds": S, "result": R}` or `{"error": TRACEBACK}`. The parent interleaves
requests with eventlake's own rounds, so machine noise hits both alike. Inputs (a Lambda event
on disk) are loaded once and cached outside the timed part; every answer is checked against
eventlake's by the parent before any time counts.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

TASKS: dict[str, Callable[..., Any]] = {}
SORT_KEYS = [("event_type", "ascending"), ("timestamp", "ascending"), ("event_id", "ascending")]
COLUMNS = ["event_id", "event_type", "timestamp", "ingested_at", "source", "subject",
           "event_payload", "content_hash"]


def task(fn: Callable[..., Any]) -> Callable[..., Any]:
    TASKS[fn.__name__] = fn
    return fn


@cache
def _event(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        loaded: dict[str, Any] = json.load(f)
    return loaded


@cache
def _schema(encoded: str) -> Any:
    import pyarrow as pa

    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded)))


@task
def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ["aws-lambda-powertools", "awswrangler", "polars", "pandas", "pyarrow", "duckdb"]
    return {n: version(n) for n in names} | {"python": sys.version.split()[0]}


@task
def warm(event: str) -> int:
    """Load the event and import every peer library (not timed by the parent)."""
    import awswrangler  # noqa: F401
    import pandas  # noqa: F401
    import polars  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    from aws_lambda_powertools.utilities.batch import BatchProcessor  # noqa: F401

    return len(_event(event)["Records"])


# --- stream batch -> Parquet ------------------------------------------------------------------

def _powertools_rows(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The idiomatic Powertools consumer: BatchProcessor + the DynamoDB stream data classes."""
    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
        DynamoDBRecord,
    )

    rows: list[dict[str, Any]] = []

    def record_handler(record: DynamoDBRecord) -> None:
        image = record.dynamodb.new_image if record.dynamodb else None
        if record.event_name is None or record.event_name.name != "INSERT" or not image:
            return
        rows.append({
            "event_id": image["event_id"], "event_type": image["event_type"],
            "timestamp": datetime.fromisoformat(image["timestamp"]),
            "ingested_at": datetime.fromisoformat(image["ingested_at"]),
            "source": image.get("source"), "subject": image.get("subject"),
            "event_payload": image["event_payload"], "content_hash": image["content_hash"],
        })

    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    response = process_partial_response(event=event, record_handler=record_handler,
                                        processor=processor, context=None)  # type: ignore[arg-type]
    if response.get("batchItemFailures"):
        raise RuntimeError(f"powertools reported failures: {response}")
    return rows


@task
def stream_powertools_pyarrow(event: str, out: str, schema: str) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    data = pa.Table.from_pylist(_powertools_rows(_event(event)), schema=_schema(schema))
    dts = pc.strftime(data.column("timestamp"), format="%Y-%m-%d")
    for dt in pc.unique(dts).to_pylist():
        folder = os.path.join(out, f"dt={dt}")
        os.makedirs(folder, exist_ok=True)
        part = data.filter(pc.equal(dts, dt)).sort_by(SORT_KEYS)
        pq.write_table(part, os.path.join(folder, "batch.parquet"), compression="zstd")
    return data.num_rows


@task
def stream_powertools_pandas(event: str, out: str) -> int:
    import pandas as pd

    df = pd.DataFrame(_powertools_rows(_event(event)), columns=COLUMNS)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    df["ingested_at"] = pd.to_datetime(df["ingested_at"], utc=True)
    for dt, part in df.groupby(df["timestamp"].dt.strftime("%Y-%m-%d")):
        folder = os.path.join(out, f"dt={dt}")
        os.makedirs(folder, exist_ok=True)
        part.sort_values(["event_type", "timestamp", "event_id"]).to_parquet(
            os.path.join(folder, "batch.parquet"), compression="zstd", index=False)
    return len(df)


# --- queries ----------------------------------------------------------------------------------
# Each engine answers the same three questions; rows come back as lists of plain values.

def _storage_options() -> dict[str, str]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    return {"aws_endpoint_url": endpoint, "aws_region": os.environ.get("AWS_DEFAULT_REGION",
                                                                       "us-east-1"),
            "aws_allow_http": "true"} if endpoint else {}


def _week(start: str, end: str) -> Any:
    from datetime import date

    return date.fromisoformat(start), date.fromisoformat(end)


@task
def query_duckdb(root: str, query: str, start: str, end: str) -> list[list[Any]]:
    import duckdb

    src = f"read_parquet('{root}/events/*/*.parquet', hive_partitioning=true)"
    sql = {
        "count_by_type_day": f"SELECT event_type, dt, count(*) FROM {src} GROUP BY ALL",
        "week_count": f"SELECT count(*) FROM {src} WHERE dt BETWEEN '{start}' AND '{end}'",
        "week_json_avg": "SELECT avg(CAST(json_extract_string(event_payload, '$.cart_total') "
                         f"AS DOUBLE)) FROM {src} WHERE dt BETWEEN '{start}' AND '{end}'",
    }[query]
    return [list(r) for r in duckdb.sql(sql).fetchall()]


@task
def query_polars(root: str, query: str, start: str, end: str) -> list[list[Any]]:
    import polars as pl

    lf = pl.scan_parquet(f"{root}/events/**/*.parquet", hive_partitioning=True,
                         storage_options=_storage_options() or None)
    first, last = _week(start, end)
    week = lf.filter(pl.col("dt").is_between(first, last))
    if query == "count_by_type_day":
        out = lf.group_by("event_type", "dt").agg(pl.len())
    elif query == "week_count":
        out = week.select(pl.len())
    else:
        out = week.select(pl.col("event_payload").str.json_path_match("$.cart_total")
                          .cast(pl.Float64).mean())
    return [list(r) for r in out.collect().rows()]


def _pandas_filters(query: str, start: str, end: str) -> Any:
    if query == "count_by_type_day":
        return None
    return [("dt", ">=", start), ("dt", "<=", end)]  # hive partition values are strings


def _pandas_answer(df: Any, query: str) -> list[list[Any]]:
    if query == "count_by_type_day":
        counts = df.groupby(["event_type", "dt"], observed=True).size()
        return [[t, d, int(n)] for (t, d), n in counts.items()]
    if query == "week_count":
        return [[len(df)]]
    values = df["event_payload"].map(lambda text: json.loads(text)["cart_total"])
    return [[float(values.astype(float).mean())]]


@task
def query_pandas(root: str, query: str, start: str, end: str) -> list[list[Any]]:
    import pandas as pd

    columns = ["event_type"] if query != "week_json_avg" else ["event_payload"]
    df = pd.read_parquet(f"{root}/events", columns=[*columns, "dt"],
                         filters=_pandas_filters(query, start, end))
    df["dt"] = df["dt"].astype(str)
    return _pandas_answer(df, query)


@task
def query_awswrangler(root: str, query: str, start: str, end: str) -> list[list[Any]]:
    import awswrangler as wr

    columns = ["event_type"] if query != "week_json_avg" else ["event_payload"]
    kwargs: dict[str, Any] = {}
    if query != "count_by_type_day":
        kwargs["partition_filter"] = lambda p: start <= p["dt"] <= end
    df = wr.s3.read_parquet(f"{root}/events/", dataset=True, columns=columns, **kwargs)
    df["dt"] = df["dt"].astype(str)
    return _pandas_answer(df, query)


# --- export -----------------------------------------------------------------------------------

@task
def export_awswrangler(root: str, out: str, start: str, end: str) -> int:
    """A week of events to one Parquet dataset on S3: read (partition filter) + write."""
    import awswrangler as wr

    df = wr.s3.read_parquet(f"{root}/events/", dataset=True,
                            partition_filter=lambda p: start <= p["dt"] <= end)
    wr.s3.to_parquet(df.drop(columns=["dt"]), f"{out}/", dataset=True, mode="overwrite",
                     compression="zstd")
    return len(df)


def main() -> int:
    for line in sys.stdin:
        request = json.loads(line)
        try:
            fn = TASKS[request["task"]]
            gc.collect()
            started = time.perf_counter()
            result = fn(**request.get("args", {}))
            answer = {"seconds": time.perf_counter() - started, "result": result}
        except Exception:
            answer = {"error": traceback.format_exc()}
        sys.stdout.write(json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

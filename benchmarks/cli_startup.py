"""`eventlake sql --cold-only` on a small local lake, as a user runs it (a new process each
time), against `python -c 'import duckdb; duckdb.sql(...)'` over the same files (issue 12: within
1.3x). Both print the same CSV, checked before any time counts; rounds are interleaved.

The lake (3,000 events, 3 days, 5 files, no copies, so a bare read_parquet counts alike) is
written to a temporary folder. `python -X importtime -m eventlake.cli.main sql ...` shows where
the start-up time goes.

eventlake's modules are byte-compiled first (`compileall`, into the gitignored __pycache__
folders), as `pip install` does for an installed package and as Python does on a first import:
a process started with PYTHONDONTWRITEBYTECODE=1 (these machines set it) on a fresh clone would
otherwise compile every module on every call (~30 ms here), a cost no installed eventlake pays
(duckdb's and the standard library's modules are compiled already).
"""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from benchmarks.common import interleaved, median
from eventlake.query.table import aligned

ROUNDS = 15
QUERY = "SELECT event_type, count(*) AS n FROM {src} GROUP BY 1 ORDER BY 1"
BARE = """
import csv, sys, duckdb
rows = duckdb.sql({query!r}).fetchall()
out = csv.writer(sys.stdout, lineterminator="\\n")
out.writerow(["event_type", "n"])
out.writerows(rows)
"""
EVENTLAKE = "import sys; from eventlake.cli.main import main; sys.exit(main())"


def build(root: Path) -> None:
    """3,000 events over 3 days in 5 files, as the sweep writes them."""
    from eventlake.config import Settings
    from eventlake.events.schema import EVENT_SCHEMA
    from eventlake.lake.store import Lake

    lake = Lake(Settings.from_env(table="events", lake_uri=str(root)))
    lake.create_marker(table="events")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    n = 3000
    table = pa.table({
        "event_id": [f"e{i:06d}" for i in range(n)],
        "event_type": [f"type{i % 5}" for i in range(n)],
        "timestamp": [start + timedelta(minutes=i) for i in range(n)],
        "ingested_at": [start + timedelta(minutes=i, seconds=1) for i in range(n)],
        "source": ["shop"] * n, "subject": [None] * n,
        "event_payload": [json.dumps({"n": i}) for i in range(n)],
        "content_hash": [f"h{i}" for i in range(n)]}, schema=EVENT_SCHEMA)
    for k in range(3):
        lake.write(table.slice(k * 1000, 1000), f"sweep-{k}")


def run() -> dict[str, float]:
    package = Path(__file__).resolve().parents[1] / "eventlake"
    if not compileall.compile_dir(str(package), quiet=1):
        raise RuntimeError(f"could not byte-compile {package}")
    with tempfile.TemporaryDirectory(prefix="eventlake-cli-bench-") as tmp:
        root = Path(tmp) / "lake"
        build(root)
        glob = f"{root}/events/*/*.parquet"
        bare_sql = QUERY.format(src=f"read_parquet('{glob}', hive_partitioning = true)")
        package_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "EVENTLAKE_TABLE": "events", "EVENTLAKE_LAKE_URI": str(root),
               "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
               "PYTHONPATH": os.pathsep.join(
                   [package_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        commands = {
            "python -c 'import duckdb; duckdb.sql(...)'":
                [sys.executable, "-c", BARE.format(query=bare_sql)],
            "eventlake sql --cold-only": [sys.executable, "-c", EVENTLAKE, "sql", "--cold-only",
                                          "--format", "csv", QUERY.format(src="events")],
            "python -c pass (the floor)": [sys.executable, "-c", "pass"],
        }

        def call(argv: list[str]) -> str:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            return done.stdout

        outputs = {name: call(argv) for name, argv in commands.items()}
        bare, ours, _ = outputs.values()
        if bare != ours:
            raise AssertionError(f"outputs differ:\n{bare}\n---\n{ours}")
        times = interleaved({name: (lambda a=argv: call(a)) for name, argv in
                             commands.items()}, ROUNDS)
    names = list(commands)
    base = median(times[names[0]])
    print(f"\n## cli_startup: one process per call, {ROUNDS} interleaved rounds "
          "(shared machine: noisy; eventlake byte-compiled first, as an install is)")
    rows = [[name, f"{median(t) * 1000:.0f}", f"{min(t) * 1000:.0f}-{max(t) * 1000:.0f}",
             f"{median(t) / base:.2f}x"] for name, t in times.items()]
    for line in aligned(["command", "median ms", "min-max ms", "vs duckdb"], rows,
                        [False, True, True, True]):
        print(line)
    return {"cli_startup.eventlake_sql_vs_duckdb": median(times[names[1]]) / base}

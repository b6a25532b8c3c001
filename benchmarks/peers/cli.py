"""The `eventlake sql` command against `python -c 'import duckdb; ...'`: a small query (one
day's count) on the local compacted lake, each a fresh process, wall time from outside."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.peers.harness import interleave, markdown, ms, timed

ROUNDS = 11


def run(root: str, day: str) -> tuple[str, dict[str, float]]:
    eventlake = str(Path(sys.executable).with_name("eventlake"))
    env = dict(os.environ, EVENTLAKE_LAKE_URI=root, EVENTLAKE_TABLE="bench-no-table")
    ours = [eventlake, "sql", "--cold-only", "--format", "csv",
            f"SELECT count(*) AS n FROM events WHERE dt = DATE '{day}'"]
    bare_sql = (f"SELECT count(*) AS n FROM read_parquet('{root}/events/*/*.parquet', "
                f"hive_partitioning=true) WHERE dt = DATE '{day}'")
    bare = [sys.executable, "-c",
            f"import duckdb; print(duckdb.sql({bare_sql!r}).fetchall()[0][0])"]
    outputs: dict[str, str] = {}

    def command(name: str, argv: list[str]) -> float:
        def go() -> None:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if done.returncode:
                raise RuntimeError(f"{argv[:2]} failed ({done.returncode}): {done.stderr}")
            outputs[name] = done.stdout.strip().splitlines()[-1]
        return timed(go)

    candidates = {"eventlake": lambda: command("eventlake", ours),
                  "duckdb": lambda: command("duckdb", bare)}
    for once in candidates.values():
        once()
    assert outputs["eventlake"] == outputs["duckdb"] and int(outputs["duckdb"]) > 0, outputs
    times = interleave(candidates, ROUNDS)
    base = times.median("duckdb")
    rows = [["`eventlake sql` (count of one day, compacted local lake)",
             ms(times.median("eventlake")), times.spread("eventlake"),
             f"{times.median('eventlake') / base:.2f}x"],
            ["`python -c 'import duckdb; ...'` (same query, bare read_parquet)", ms(base),
             times.spread("duckdb"), "1.00x"]]
    text = (f"### CLI start-up + small query (wall time of a fresh process, median of {ROUNDS} "
            "interleaved rounds, answers checked equal)\n\n"
            + markdown(["command", "median", "spread", "time vs bare DuckDB"], rows))
    return text, {"peers_cli_vs_bare_duckdb": times.median("eventlake") / base}

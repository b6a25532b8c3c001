"""`python -m benchmarks [name ...]`: run the benchmarks (all by default) and print ratios.

Each benchmark measures its baseline in the same run, interleaved with the candidate, and
checks that both produce the same output before any time counts.
"""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = {
    "stream_handler": "benchmarks.stream_handler",
    "query_lake": "benchmarks.query_lake",
    "sweep_memory": "benchmarks.sweep_memory",
    "bulk_put": "benchmarks.bulk_put",
    "replay": "benchmarks.replay",
    "read_units": "benchmarks.read_units",
    "peers": "benchmarks.peers",
    "cost": "benchmarks.cost",
    "cli_startup": "benchmarks.cli_startup",
    "warm_sql": "benchmarks.warm_sql",
}
OPT_IN = {"peers", "cost"}
"""Run only when named: peers needs `.venv-peers` (`make venv-peers`) and takes minutes; cost
prices a moto run (`make bench-peers`, `make bench-cost`; flags: `python -m benchmarks.peers
--help`, `python -m benchmarks.cost --help`)."""


def main(argv: list[str]) -> int:
    names = argv or [n for n in BENCHMARKS if n not in OPT_IN]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    results: dict[str, float] = {}
    started = time.perf_counter()
    for name in names:
        results.update(importlib.import_module(BENCHMARKS[name]).run())
    print(f"\n## summary ({time.perf_counter() - started:.0f} s)")
    for key, value in results.items():
        print(f"{key}: {value:,.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

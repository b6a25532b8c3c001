"""Timing helpers shared by the benchmarks: interleaved rounds, medians. Results tables print
through `eventlake.query.table.aligned`, like every table of the project."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any


def interleaved(candidates: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Run each candidate once per round, alternating, so machine noise hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            gc.collect()  # nobody pays for the garbage the previous candidate left behind
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return times


def reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS (ru_maxrss, VmHWM) to the current RSS, where allowed (a
    benchmark child measuring its own work, not its imports); False where it is not."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def median(values: list[float]) -> float:
    return statistics.median(values)


def without_index_keys(item: dict[str, Any]) -> dict[str, Any]:
    """An item without the index keys `s` and `k` (eventlake/hot/index.py): the item as stored
    before by_ingested_at_v3, for benchmarks whose baselines read every attribute."""
    return {name: value for name, value in item.items() if name not in ("s", "k")}

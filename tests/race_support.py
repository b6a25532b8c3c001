"""Readers racing a writer: one harness for every "readers in a loop while X runs" test."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

Check = Callable[[], list[str]]
"""One read and its verdict: what was wrong (empty when the read was right)."""


def read_while(work: Callable[[], None], checks: Mapping[str, Check], *,
               min_reads: int = 3, wait_s: float = 60.0) -> tuple[Counter[str], list[str]]:
    """Run `work` while a thread loops over `checks`; after `work`, keep reading until each
    check has run `min_reads` times (or something failed, or `wait_s` passed). Returns how
    often each check ran and every failure, an exception in a read included (with its text)."""
    stop = threading.Event()
    reads: Counter[str] = Counter()
    failures: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            for name, check in checks.items():
                try:
                    failures.extend(f"{name}: {problem}" for problem in check())
                except Exception as exc:  # the test fails on any error, with its text
                    failures.append(f"{name}: {type(exc).__name__}: {exc}")
                reads[name] += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        work()
        deadline = time.monotonic() + wait_s
        while (min(reads[n] for n in checks) < min_reads and not failures
               and time.monotonic() < deadline):
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    return reads, failures

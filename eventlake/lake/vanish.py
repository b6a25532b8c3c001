"""Files vanishing under readers: compaction deletes the files it merged, so a reader that
listed them may find one gone. Its rows are in the merged file, which a fresh listing finds:

    reader    list: s1 s2 ------------------- read s2: gone -> list again: C -> read C
    compact        write C (s1+s2) -- delete s1 s2

This module owns that rule for every reader of the lake (Lake's reads, `dedup`, the stream's
overlap check, the query layer's DuckDB connections): what a vanished file looks like
(`file_vanished`), and `retry_on_vanish`, which runs a read again, with a fresh listing, up to
`VANISH_ATTEMPTS` times before giving up with TransientError (safe to retry later).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from eventlake.errors import TransientError
from eventlake.logs import lazy_logger

__all__ = ["VANISH_ATTEMPTS", "file_vanished", "retry_on_vanish", "vanish_backoff",
           "vanished_too_often"]

T = TypeVar("T")


_log = lazy_logger("eventlake.lake.vanish")

VANISH_ATTEMPTS = 8
"""Listings a reader takes when files it listed keep vanishing (compaction deleting them): 1.27 s
of pauses in all (10 ms, doubling). Five (0.15 s) were too few on a loaded 2-core machine: a
query slower than a compaction round met a vanished file on every attempt and gave up while
compaction was still running (tests/query/test_query.py's readers-while-compacting test)."""


def file_vanished(exc: BaseException) -> bool:
    """Whether a read error (pyarrow, local disk) says the file is gone."""
    # S3 names a deleted object NoSuchKey on GET with a body, RESOURCE_NOT_FOUND on a bare 404
    # (seen when an object vanishes between opening it and reading its ranges).
    text = str(exc)
    return (isinstance(exc, FileNotFoundError) or "NO_SUCH_KEY" in text
            or "RESOURCE_NOT_FOUND" in text)


def retry_on_vanish(attempt: Callable[[], T], *,
                    errors: type[BaseException] | tuple[type[BaseException], ...] = OSError,
                    vanished: Callable[[BaseException], bool] = file_vanished,
                    during: str = "while reading", reraise_last: bool = False) -> T:
    """`attempt()` (it lists the lake itself), again while it fails with one of `errors` that
    `vanished` says is a listed file gone: up to VANISH_ATTEMPTS attempts, a short pause
    between them (a compaction's deletes take milliseconds to finish).

    Then TransientError ("lake files vanished N times `during` ..."), or with `reraise_last`
    the last error itself, for a caller that reports errors its own way.
    """
    for number in range(1, VANISH_ATTEMPTS + 1):
        if number > 1:
            time.sleep(vanish_backoff(number))
        try:
            return attempt()
        except errors as exc:
            if not vanished(exc):
                raise
            if number == VANISH_ATTEMPTS:
                if reraise_last:
                    raise
                raise vanished_too_often(exc, during) from exc
            _log.info("a lake file vanished %s (%s); listing again", during, exc)
    raise AssertionError("unreachable")  # pragma: no cover


def vanish_backoff(attempt: int) -> float:
    """Seconds to wait before attempt number `attempt` (2, 3, ...): 10 ms, doubling."""
    return 0.01 * 2.0 ** (attempt - 2)


def vanished_too_often(exc: BaseException, during: str = "while reading") -> TransientError:
    """The error of a reader that met vanishing files VANISH_ATTEMPTS times."""
    return TransientError(f"lake files vanished {VANISH_ATTEMPTS} times {during} "
                          f"(compaction running?); safe to retry: {exc}")

"""Retrying a read while files it listed vanish (compaction deleting them)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType, SimpleNamespace

import pytest

import eventlake.lake.vanish as vanish
from eventlake.errors import TransientError
from eventlake.lake.vanish import VANISH_ATTEMPTS, retry_on_vanish, vanish_backoff


def failing(times: int, error: BaseException) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "read"

    return calls, attempt


def test_a_vanished_file_makes_the_read_run_again() -> None:
    calls, attempt = failing(2, FileNotFoundError("gone"))

    assert retry_on_vanish(attempt) == "read"
    assert len(calls) == 3


def test_other_errors_are_not_retried() -> None:
    calls, attempt = failing(1, PermissionError("denied"))

    with pytest.raises(PermissionError):
        retry_on_vanish(attempt)
    assert len(calls) == 1


def pauses_recorded(monkeypatch: pytest.MonkeyPatch, module: ModuleType = vanish
                    ) -> list[float]:
    """The pauses between attempts `module` makes (`time.sleep`), recorded instead of slept."""
    pauses: list[float] = []
    monkeypatch.setattr(module, "time", SimpleNamespace(sleep=pauses.append))
    return pauses


EVERY_PAUSE = [vanish_backoff(n) for n in range(2, VANISH_ATTEMPTS + 1)]
"""The pauses before attempts 2 to VANISH_ATTEMPTS."""


def test_files_vanishing_every_time_give_up_with_a_transient_error_or_the_error_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pauses = pauses_recorded(monkeypatch)
    calls, attempt = failing(99, FileNotFoundError("gone"))
    with pytest.raises(TransientError, match=f"vanished {VANISH_ATTEMPTS} times under the query"):
        retry_on_vanish(attempt, during="under the query")
    assert len(calls) == VANISH_ATTEMPTS
    assert pauses == EVERY_PAUSE
    pauses.clear()

    calls, attempt = failing(99, FileNotFoundError("gone"))
    with pytest.raises(FileNotFoundError):
        retry_on_vanish(attempt, reraise_last=True)
    assert len(calls) == VANISH_ATTEMPTS
    assert pauses == EVERY_PAUSE

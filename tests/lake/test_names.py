"""The writers' file names: a window's name reads back as the window it was written from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from eventlake.lake.names import Window, WindowKind, is_own_file, parse_window, window_name

SINCE = datetime(2026, 3, 1, 23, 59, 59, 123456, tzinfo=UTC)
UNTIL = datetime(2026, 3, 2, 0, 15, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize("kind", ["sweep", "expiry"])
def test_a_window_file_name_reads_back_as_its_window(kind: WindowKind) -> None:
    name = window_name(kind, SINCE, UNTIL)
    file_name = f"{name}-0003-0123456789ab.parquet"  # the writer's chunk and ids digest

    assert name == f"{kind}-20260301T235959123456-20260302T001500000001"
    assert parse_window(file_name) == Window(kind, SINCE, UNTIL)
    assert is_own_file(file_name)


def test_a_window_is_named_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert window_name("sweep", SINCE.astimezone(paris), UNTIL) == window_name(
        "sweep", SINCE, UNTIL)


@pytest.mark.parametrize("file_name", [
    "stream-1-2-0123456789ab.parquet", "backfill-000of004-0000-0123456789ab.parquet",
    "compacted-0123456789abcdef-1-of-2.parquet", "repair-2026-03-01-2026-03-02-x.parquet",
    "sweep-20260301T235959123456.parquet", "removed-0000-0123456789ab.parquet",
])
def test_names_without_a_window_have_none(file_name: str) -> None:
    assert parse_window(file_name) is None
    assert is_own_file(file_name)


@pytest.mark.parametrize("file_name", [
    "part-0.parquet", "sweeping-1.parquet", "sweep-1.json", "dt=2026-03-01/sweep-1.parquet",
])
def test_other_writers_files_are_not_eventlakes(file_name: str) -> None:
    assert not is_own_file(file_name)

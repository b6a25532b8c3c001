"""What the flow tests share: one Prefect engine for the session (a temporary server takes
~10 s to start: every engine run of every flow test file uses this one), and the lake the flows
build from EVENTLAKE_*."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from eventlake import EventLake


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def env_lake(mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EventLake:
    """The lake the flows will build from EVENTLAKE_* (they read the environment)."""
    monkeypatch.setenv("EVENTLAKE_TABLE", "flow-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.setenv("EVENTLAKE_INDEX_SHARDS", "2")
    lake = EventLake.from_env()
    lake.init()
    return lake

"""Fixtures of the flow tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventlake import EventLake


@pytest.fixture
def env_lake(mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EventLake:
    """The lake the flows will build from EVENTLAKE_* (they read the environment)."""
    monkeypatch.setenv("EVENTLAKE_TABLE", "flow-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.setenv("EVENTLAKE_INDEX_SHARDS", "2")
    lake = EventLake.from_env()
    lake.init()
    return lake

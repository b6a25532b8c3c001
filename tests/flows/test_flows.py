"""The Prefect flows on Prefect's real engine (a temporary server for the session), over moto
in-process and a local lake: each flow runs its library function and leaves an artifact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from archive_support import record_on_table
from prefect.artifacts import Artifact
from prefect.testing.utilities import prefect_test_harness

from eventlake import EventLake
from eventlake.archive.ttlguard import TtlGuardError
from eventlake.events.model import parse_event
from eventlake.hot.store import HotStore
from eventlake.local.stack import expire_ttl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def env_lake(prefect_server: None, mocked_aws: None, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> EventLake:
    """The lake the flows will build from EVENTLAKE_* (they read the environment)."""
    monkeypatch.setenv("EVENTLAKE_TABLE", "flow-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.setenv("EVENTLAKE_INDEX_SHARDS", "2")
    lake = EventLake.from_env()
    lake.init()
    return lake


def events(n: int, prefix: str = "f") -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [{"event_id": f"{prefix}-{i:04d}", "event_type": ("a", "b")[i % 2],
             "timestamp": (now - timedelta(days=i % 3, minutes=i)).isoformat(),
             "event_payload": {"i": i}} for i in range(n)]


def artifact_markdown(key: str) -> str:
    artifact = Artifact.get(key)
    assert artifact is not None, f"no artifact `{key}`"
    return str(artifact.data)


def test_the_archive_flow_sweeps_everything_and_reports_it(env_lake: EventLake) -> None:
    from flows.archive import archive

    env_lake.put_many(events(30))

    result = archive(settle_seconds=0)

    assert result["counts"]["archived"] == 30
    assert sorted(env_lake.cold.read(columns=["event_id"]).column("event_id").to_pylist()) \
        == [f"f-{i:04d}" for i in range(30)]
    markdown = artifact_markdown("eventlake-archive")
    assert "| archived (new) | 30 |" in markdown and "smallest TTL margin" in markdown

    again = archive(settle_seconds=0)
    assert again["counts"]["archived"] == 0


def test_the_archive_flow_fails_loudly_when_the_ttl_guard_trips(
        env_lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.archive import archive

    # given 5 events ingested 2 h ago with a 1-day retention (22 h left) and a 23 h safety
    # margin, and a settle lag (3 h) that leaves them to the stream path, which is down
    monkeypatch.setenv("EVENTLAKE_RETENTION_DAYS", "1")
    monkeypatch.setenv("EVENTLAKE_TTL_SAFETY_HOURS", "23")
    lake = EventLake.from_env()
    record_on_table(lake.clients, lake.settings)  # the table was initialised with 1 day
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    store = HotStore(lake.settings, lake.clients, clock=lambda: two_hours_ago)
    assert {r.outcome.value for r in store.put_many(
        [parse_event(e) for e in events(5, "risk")])} == {"created"}

    # when the flow sweeps
    with pytest.raises(TtlGuardError) as err:
        archive(settle_seconds=3 * 3600)

    # then it fails naming how many events and how many hours remain, and says so in the
    # run's artifact
    assert err.value.at_risk == 5
    assert "5" in str(err.value) and "22.0 h" in str(err.value)
    assert "TTL guard failed" in artifact_markdown("eventlake-archive")


def test_the_compact_flow_merges_small_files(env_lake: EventLake) -> None:
    from flows.archive import archive
    from flows.compact import compact

    for batch in range(4):  # four sweeps: four small files per partition
        env_lake.put_many(events(8, f"c{batch}"))
        archive(settle_seconds=0)
    before = len(env_lake.cold.list_files())

    result = compact(min_files=2)

    after = env_lake.cold.list_files()
    assert len(after) == len({f.dt for f in after}) < before
    assert result["files_in"] == before
    assert env_lake.cold.read().num_rows == 32
    assert "files out" in artifact_markdown("eventlake-compact")


def test_the_compact_flow_fails_after_reporting_a_partition_it_could_not_read(
        env_lake: EventLake) -> None:
    from eventlake.lake.compact import CompactionFailedError
    from flows.archive import archive
    from flows.compact import compact

    # given small files in the lake, and a file of another tool in one partition
    for batch in range(2):
        env_lake.put_many(events(8, f"x{batch}"))
        archive(settle_seconds=0)
    dt = env_lake.cold.list_files()[0].dt
    bad = Path(env_lake.cold.root) / "events" / f"dt={dt}" / "export.parquet"
    bad.write_bytes(b"PAR1 not parquet")

    # when the flow runs, it fails naming the file, and the run's artifact says so too
    with pytest.raises(CompactionFailedError) as err:
        compact(min_files=2)
    assert f"`{bad}`" in str(err.value)
    assert err.value.report.failed[0]["dt"] == dt
    markdown = artifact_markdown("eventlake-compact")
    assert "partitions failed | 1" in markdown and str(bad) in markdown


def test_the_reconcile_flow_repairs_what_is_missing_then_reports_clean(
        env_lake: EventLake) -> None:
    from flows.archive import archive
    from flows.reconcile import reconcile

    env_lake.put_many(events(12, "r"))
    archive(settle_seconds=0)
    # a lake file lost behind our back
    victim = env_lake.cold.list_files()[0]
    env_lake.cold.delete([victim.path])

    repaired = reconcile(days=1, repair=True)
    clean = reconcile(days=1, repair=False)

    assert repaired["repaired"] > 0
    assert clean["repaired"] == 0
    assert env_lake.cold.read().num_rows == 12
    assert "lost" in artifact_markdown("eventlake-reconcile")


def test_the_backfill_flow_archives_the_whole_table_once(env_lake: EventLake) -> None:
    from flows.backfill import backfill

    env_lake.put_many(events(10, "b"))

    first = backfill(segments=3)
    second = backfill(segments=3)

    assert (first["archived"], second["archived"], second["already"]) == (10, 0, 10)


def test_expired_events_are_still_answered_from_the_lake_after_ttl(env_lake: EventLake) -> None:
    from flows.archive import archive

    env_lake.put_many(events(6, "ttl"))
    archive(settle_seconds=0)

    deleted = expire_ttl(env_lake.clients, env_lake.settings.table,
                         now=datetime.now(UTC) + timedelta(days=365))

    assert sorted(deleted) == [f"ttl-{i:04d}" for i in range(6)]
    rows = env_lake.cold.read().to_pylist()
    assert sorted(r["event_id"] for r in rows) == sorted(deleted)
    assert all(json.loads(r["event_payload"])["i"] in range(6) for r in rows)


@pytest.mark.parametrize("name", ["compact", "reconcile"])
def test_a_scheduled_run_on_a_worker_never_configured_fails_saying_what_to_set(
        prefect_server: None, mocked_aws: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    import importlib

    # given a worker with no EVENTLAKE_* set, whose working directory even holds a default
    # lake (`./eventlake-data`) and whose account holds the default table
    monkeypatch.chdir(tmp_path)
    EventLake.from_env().init()
    flow = getattr(importlib.import_module(f"flows.{name}"), name)

    # when the deployment's flow runs
    state = flow(return_state=True)

    # then the run fails, naming the variables and where a worker gets them
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "EVENTLAKE_TABLE and EVENTLAKE_LAKE_URI are not set on this worker" in message
    assert "job_variables" in message


def test_the_archive_flow_fails_after_reporting_an_event_id_reused_with_other_content(
        env_lake: EventLake) -> None:
    from eventlake.archive.report import SweepNeedsAttentionError
    from flows.archive import archive

    # given an archived event, deleted from the table (as TTL does), then sent again under the
    # same id with other content (DynamoDB cannot see the lake, so it accepts it)
    [first] = events(1, "reused")
    assert env_lake.put(first).outcome.value == "created"
    assert archive(settle_seconds=0)["counts"]["archived"] == 1
    env_lake.clients.dynamodb.delete_item(TableName=env_lake.settings.table,
                                          Key={"event_id": {"S": "reused-0000"}})
    assert env_lake.put({**first, "event_payload": {"i": 99}}).outcome.value == "created"

    # when the scheduled flow sweeps, then the run fails (after its report), naming the id
    with pytest.raises(SweepNeedsAttentionError, match="`reused-0000`"):
        archive(settle_seconds=0)
    assert "| event_ids reused (quarantined) | 1 |" in artifact_markdown("eventlake-archive")
    assert [e.rule for e in env_lake.cold.read_quarantine()] == ["event.id_reused"]

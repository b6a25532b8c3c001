"""The Prefect flows, over moto in-process and a local lake.

One run per flow family on Prefect's real engine (a temporary server for the session), checking
the values a run leaves: its result or failed state, and its artifact. Everything else runs the
flow's body as plain Python (`flow.fn`, its tasks' `.fn`, `publish` recorded): what the flows
compute and report is the same, without an engine run each.
"""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from archive_support import record_on_table
from botocore.exceptions import ClientError
from flow_support import artifact
from prefect import Task

from eventlake import EventLake
from eventlake.archive.report import SweepNeedsAttentionError
from eventlake.archive.ttlguard import TtlGuardError
from eventlake.errors import ConfigError, TransientError
from eventlake.events.model import parse_event
from eventlake.hot.store import HotStore
from eventlake.lake.compact import CompactionFailedError
from eventlake.local.stack import expire_ttl

FAMILIES = ("archive", "compact", "reconcile", "backfill")


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[dict[str, Any], str | None]]:
    """No engine: every flow module's tasks run as plain functions, and `publish` records
    (artifact key -> its rows and note) instead of creating an artifact."""
    recorded: dict[str, tuple[dict[str, Any], str | None]] = {}

    def publish(key: str, title: str, rows: dict[str, Any], note: str | None = None) -> None:
        recorded[key] = (rows, note)

    for family in FAMILIES:
        module = importlib.import_module(f"flows.{family}")
        monkeypatch.setattr(module, "publish", publish)
        for name, value in vars(module).items():
            if isinstance(value, Task):
                monkeypatch.setattr(module, name, value.fn)
    return recorded


def flow_fn(family: str) -> Any:
    """The body of flow `family` (flows/<family>.py), to call as a plain function."""
    return getattr(importlib.import_module(f"flows.{family}"), family).fn


def events(n: int, prefix: str = "f") -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [{"event_id": f"{prefix}-{i:04d}", "event_type": ("a", "b")[i % 2],
             "timestamp": (now - timedelta(days=i % 3, minutes=i)).isoformat(),
             "event_payload": {"i": i}} for i in range(n)]


# --- on the engine: one run per family --------------------------------------------------------

@pytest.mark.slow
def test_the_archive_flow_run_sweeps_everything_and_reports_it(
        prefect_server: None, env_lake: EventLake) -> None:
    from flows.archive import archive

    env_lake.put_many(events(30))

    state = archive(settle_seconds=0, return_state=True)

    assert state.is_completed()
    result = state.result()
    assert (result["counts"]["read"], result["counts"]["archived"],
            result["counts"]["already"]) == (30, 30, 0)
    assert sorted(env_lake.cold.read(columns=["event_id"]).column("event_id").to_pylist()) \
        == [f"f-{i:04d}" for i in range(30)]
    rows, _ = artifact("eventlake-archive")
    assert {k: rows[k] for k in ("events read", "archived (new)", "already in lake",
                                 "quarantined", "event_ids reused (quarantined)",
                                 "unarchived now")} \
        == {"events read": "30", "archived (new)": "30", "already in lake": "0",
            "quarantined": "0", "event_ids reused (quarantined)": "0", "unarchived now": "0"}
    assert rows["files written"] == str(len(result["counts"]["files"])) != "0"


@pytest.mark.slow
def test_the_compact_flow_run_fails_after_reporting_a_partition_it_could_not_read(
        prefect_server: None, env_lake: EventLake) -> None:
    from flows.compact import compact

    # given small files in the lake, and a file of another tool in one partition
    for batch in range(2):
        env_lake.put_many(events(8, f"x{batch}"))
        env_lake.archive(settle_seconds=0)
    dt = env_lake.cold.list_files()[0].dt
    bad = Path(env_lake.cold.root) / "events" / f"dt={dt}" / "export.parquet"
    bad.write_bytes(b"PAR1 not parquet")

    # when the flow runs
    state = compact(min_files=2, return_state=True)

    # then the run fails naming the file, and the run's artifact says so too
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, CompactionFailedError)
    assert f"`{bad}`" in str(error)
    assert error.report.failed[0]["dt"] == dt
    rows, markdown = artifact("eventlake-compact")
    assert rows["partitions failed"] == "1"
    assert rows["partitions compacted"] == str(len(error.report.partitions))
    assert f"- dt={dt} not compacted: " in markdown and str(bad) in markdown


@pytest.mark.slow
def test_the_reconcile_flow_run_repairs_what_is_missing(
        prefect_server: None, env_lake: EventLake) -> None:
    from flows.reconcile import reconcile

    env_lake.put_many(events(12, "r"))
    env_lake.archive(settle_seconds=0)
    # a lake file lost behind our back
    victim = env_lake.cold.list_files()[0]
    env_lake.cold.delete([victim.path])
    lost = 12 - env_lake.cold.read().num_rows
    assert lost > 0

    state = reconcile(days=1, repair=True, return_state=True)

    assert state.is_completed()
    assert state.result()["repaired"] == lost
    assert env_lake.cold.read().num_rows == 12
    rows, _ = artifact("eventlake-reconcile")
    assert (rows["repaired"], rows["lost"], rows["different"]) == (str(lost), "0", "0")


@pytest.mark.slow
def test_the_backfill_flow_run_archives_the_whole_table(
        prefect_server: None, env_lake: EventLake) -> None:
    from flows.backfill import backfill

    env_lake.put_many(events(10, "b"))

    state = backfill(segments=3, return_state=True)

    assert state.is_completed()
    assert state.result() == {"segments": 3, "scanned": 10, "archived": 10, "already": 0,
                              "quarantined": 0, "conflicts": 0}
    rows, _ = artifact("eventlake-backfill")
    assert (rows["items scanned"], rows["archived (new)"]) == ("10", "10")


# --- the flows' bodies, without the engine ----------------------------------------------------

def test_a_second_archive_finds_nothing_new(env_lake: EventLake, published: Any) -> None:
    env_lake.put_many(events(30))
    assert flow_fn("archive")(settle_seconds=0)["counts"]["archived"] == 30

    again = flow_fn("archive")(settle_seconds=0)

    # (it reads the clock-skew look-back again: what it finds is already in the lake)
    assert (again["counts"]["archived"], again["counts"]["already"]) == (0, again["counts"]["read"])
    rows, note = published["eventlake-archive"]
    assert (rows["archived (new)"], rows["already in lake"], note) \
        == (0, again["counts"]["already"], None)
    assert env_lake.cold.read().num_rows == 30


def test_the_archive_flow_fails_loudly_when_the_ttl_guard_trips(
        env_lake: EventLake, monkeypatch: pytest.MonkeyPatch, published: Any) -> None:
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
        flow_fn("archive")(settle_seconds=3 * 3600)

    # then it fails naming how many events and how many hours remain, and says so in the
    # run's artifact
    assert err.value.at_risk == 5
    assert "5" in str(err.value) and "22.0 h" in str(err.value)
    rows, note = published["eventlake-archive"]
    assert note is not None and note.startswith("**TTL guard failed:** ")
    assert rows["unarchived now"] == 5


def test_the_archive_flow_fails_after_reporting_an_event_id_reused_with_other_content(
        env_lake: EventLake, published: Any) -> None:
    # given an archived event, deleted from the table (as TTL does), then sent again under the
    # same id with other content (DynamoDB cannot see the lake, so it accepts it)
    [first] = events(1, "reused")
    assert env_lake.put(first).outcome.value == "created"
    assert flow_fn("archive")(settle_seconds=0)["counts"]["archived"] == 1
    env_lake.clients.dynamodb.delete_item(TableName=env_lake.settings.table,
                                          Key={"event_id": {"S": "reused-0000"}})
    assert env_lake.put({**first, "event_payload": {"i": 99}}).outcome.value == "created"

    # when the scheduled flow sweeps, then the run fails (after its report), naming the id
    with pytest.raises(SweepNeedsAttentionError, match="`reused-0000`"):
        flow_fn("archive")(settle_seconds=0)
    rows, note = published["eventlake-archive"]
    assert rows["event_ids reused (quarantined)"] == 1
    assert note is not None and "`reused-0000`" in note
    assert [e.rule for e in env_lake.cold.read_quarantine()] == ["event.id_reused"]


def test_the_compact_flow_merges_small_files(env_lake: EventLake, published: Any) -> None:
    for batch in range(4):  # four sweeps: four small files per partition
        env_lake.put_many(events(8, f"c{batch}"))
        env_lake.archive(settle_seconds=0)
    before = len(env_lake.cold.list_files())

    result = flow_fn("compact")(min_files=2)

    after = env_lake.cold.list_files()
    assert len(after) == len({f.dt for f in after}) < before
    assert (result["files_in"], result["files_out"]) == (before, len(after))
    assert env_lake.cold.read().num_rows == 32
    rows, note = published["eventlake-compact"]
    assert (rows["files in"], rows["files out"], rows["partitions failed"], note) \
        == (before, len(after), 0, None)


def test_a_reconcile_after_a_repair_reports_clean(env_lake: EventLake, published: Any) -> None:
    env_lake.put_many(events(12, "r"))
    env_lake.archive(settle_seconds=0)
    env_lake.cold.delete([env_lake.cold.list_files()[0].path])
    assert flow_fn("reconcile")(days=1, repair=True)["repaired"] > 0

    clean = flow_fn("reconcile")(days=1, repair=False)

    assert (clean["repaired"], clean["lost"], clean["different"]) == (0, 0, 0)
    rows, _ = published["eventlake-reconcile"]
    assert (rows["repaired"], rows["lost"], rows["different"]) == (0, 0, 0)


def test_a_reconcile_that_finds_lost_events_fails(env_lake: EventLake, published: Any) -> None:
    from flows.reconcile import ReconcileFailed

    env_lake.put_many(events(12, "r"))
    env_lake.archive(settle_seconds=0)
    env_lake.cold.delete([env_lake.cold.list_files()[0].path])
    lost = 12 - env_lake.cold.read().num_rows

    with pytest.raises(ReconcileFailed, match=f"^{lost} event"):
        flow_fn("reconcile")(days=1, repair=False)
    rows, _ = published["eventlake-reconcile"]
    assert (rows["lost"], rows["repaired"]) == (lost, 0)


def test_a_second_backfill_finds_everything_already_archived(
        env_lake: EventLake, published: Any) -> None:
    env_lake.put_many(events(10, "b"))
    assert flow_fn("backfill")(segments=3)["archived"] == 10

    second = flow_fn("backfill")(segments=3)

    assert (second["archived"], second["already"]) == (0, 10)
    rows, note = published["eventlake-backfill"]
    assert (rows["archived (new)"], rows["already in lake"], note) == (0, 10, None)


def test_expired_events_are_still_answered_from_the_lake_after_ttl(env_lake: EventLake) -> None:
    env_lake.put_many(events(6, "ttl"))
    env_lake.archive(settle_seconds=0)

    deleted = expire_ttl(env_lake.clients, env_lake.settings.table,
                         now=datetime.now(UTC) + timedelta(days=365))

    assert sorted(deleted) == [f"ttl-{i:04d}" for i in range(6)]
    rows = env_lake.cold.read().to_pylist()
    assert sorted(r["event_id"] for r in rows) == sorted(deleted)
    assert sorted(json.loads(r["event_payload"])["i"] for r in rows) == list(range(6))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_scheduled_run_on_a_worker_never_configured_fails_saying_what_to_set(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, published: Any,
        family: str) -> None:
    # given a worker with no EVENTLAKE_* set, whose working directory even holds a default
    # lake (`./eventlake-data`) and whose account holds the default table
    monkeypatch.chdir(tmp_path)
    EventLake.from_env().init()

    # when the deployment's flow runs, then it fails, naming the variables and where a worker
    # gets them, before it publishes anything
    with pytest.raises(ConfigError) as err:
        flow_fn(family)()
    message = str(err.value)
    assert "EVENTLAKE_TABLE and EVENTLAKE_LAKE_URI are not set on this worker" in message
    assert "job_variables" in message
    assert published == {}


@pytest.mark.parametrize(("error", "retried"), [
    (ConfigError("EVENTLAKE_TABLE and EVENTLAKE_LAKE_URI are not set on this worker"), False),
    (ValueError("a data error"), False),
    (TransientError("throttled"), True),
    (OSError("connection reset"), True),
    (ClientError({"Error": {"Code": "ThrottlingException"}}, "Query"), True),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v))
def test_a_task_retries_io_trouble_only(error: BaseException, retried: bool) -> None:
    # a worker never configured, a guard or a data error fails the run at once; retrying
    # would wait 10 + 30 + 90 s to repeat the same answer
    from prefect.states import Failed

    from flows.common import retry_transient

    assert retry_transient(None, None, Failed(data=error)) is retried  # type: ignore[arg-type]

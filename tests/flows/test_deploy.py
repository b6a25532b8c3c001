"""Deployments carry their settings: `prefect deploy` refuses without a table and a lake, and a
worker that has no EVENTLAKE_* of its own runs the flows against the deployed ones.

The step itself (flows/deploy.py) is checked as a function; then, for real, on the session's
Prefect server: `prefect deploy --all` in a copy of the project, the deployments read back
through the client, and `prefect deployment run` + `prefect worker start --run-once` (each a
process of its own, as an operator runs them) against a moto server and an S3 lake on it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flow_support import artifact

from eventlake import EventLake, Settings
from eventlake.errors import ConfigError
from eventlake.local.stack import MotoServer
from flows.deploy import carry_settings, settings_to_carry

ROOT = Path(__file__).parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "eventlake-process"
DEPLOYMENTS = ("archive", "compact", "reconcile", "backfill", "replay", "export")


# --- the build step, as a function --------------------------------------------------------

def test_a_deploy_without_table_and_lake_is_refused_saying_how_to_set_them(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        settings_to_carry({"AWS_REGION": "eu-west-1"}, cwd=tmp_path)

    message = str(err.value)
    assert "EVENTLAKE_TABLE and EVENTLAKE_LAKE_URI are not set in this shell" in message
    assert "EVENTLAKE_TABLE=my-events EVENTLAKE_LAKE_URI=s3://" in message
    assert "prefect deploy --all" in message


def test_a_deploy_with_only_the_table_names_the_lake(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"EVENTLAKE_LAKE_URI is not set in this shell"):
        settings_to_carry({"EVENTLAKE_TABLE": "shop-events"}, cwd=tmp_path)


def test_an_invalid_value_is_refused_at_deploy_naming_its_variable(tmp_path: Path) -> None:
    env = {"EVENTLAKE_TABLE": "shop-events", "EVENTLAKE_LAKE_URI": "s3://b/lake",
           "EVENTLAKE_RETENTION_DAYS": "a month"}

    with pytest.raises(ConfigError, match=r"EVENTLAKE_RETENTION_DAYS='a month' is not valid"):
        settings_to_carry(env, cwd=tmp_path)


def test_a_deployment_carries_what_was_set_and_no_secret(tmp_path: Path) -> None:
    env = {"EVENTLAKE_TABLE": "shop-events", "EVENTLAKE_LAKE_URI": "s3://shop-lake/events",
           "EVENTLAKE_INDEX_SHARDS": "4", "EVENTLAKE_CLOCK_CORRECTION": "false",
           "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://localhost:4566",
           "AWS_ACCESS_KEY_ID": "AKIA...", "AWS_SECRET_ACCESS_KEY": "secret",
           "AWS_PROFILE": "ops", "EVENTLAKE_EXPORT_SALT": "pepper", "PATH": "/usr/bin"}

    carried = settings_to_carry(env, cwd=tmp_path)

    assert carried == {"home": str(tmp_path.resolve()), "env": {
        "EVENTLAKE_TABLE": "shop-events", "EVENTLAKE_LAKE_URI": "s3://shop-lake/events",
        "EVENTLAKE_INDEX_SHARDS": "4", "EVENTLAKE_CLOCK_CORRECTION": "false",
        "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://localhost:4566",
        "EVENTLAKE_HOME": str(tmp_path.resolve())}}
    # a run reading only what was carried has the deployer's settings
    assert repr(Settings.from_env(carried["env"])) == repr(Settings.from_env(env))


def test_the_region_is_carried_even_when_eventlake_defaulted_it(tmp_path: Path) -> None:
    # a worker in another region must not move the deployment to its own
    env = {"EVENTLAKE_TABLE": "shop-events", "EVENTLAKE_LAKE_URI": "s3://shop-lake/events"}

    assert settings_to_carry(env, cwd=tmp_path)["env"]["AWS_REGION"] == Settings().region


def test_a_relative_local_lake_is_carried_as_the_path_the_deployer_meant(
        tmp_path: Path) -> None:
    # the runs start in EVENTLAKE_HOME, not where `prefect deploy` ran
    env = {"EVENTLAKE_TABLE": "shop-events", "EVENTLAKE_LAKE_URI": "data/lake",
           "EVENTLAKE_HOME": "/srv/eventlake"}

    carried = settings_to_carry(env, cwd=tmp_path)

    assert carried["env"]["EVENTLAKE_LAKE_URI"] == str(tmp_path.resolve() / "data" / "lake")
    assert carried["home"] == carried["env"]["EVENTLAKE_HOME"] == "/srv/eventlake"


def test_a_relative_home_is_refused(tmp_path: Path) -> None:
    env = {"EVENTLAKE_TABLE": "shop-events", "EVENTLAKE_LAKE_URI": "s3://b/lake",
           "EVENTLAKE_HOME": "eventlake"}

    with pytest.raises(ConfigError, match=r"EVENTLAKE_HOME=`eventlake` is not an absolute"):
        settings_to_carry(env, cwd=tmp_path)


def test_the_step_ends_prefect_deploy_with_the_message_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # SystemExit: Prefect's CLI exits with it as it is; any other exception becomes a
    # traceback that ends in "An exception occurred."
    monkeypatch.setenv("EVENTLAKE_TABLE", "shop-events")

    with pytest.raises(SystemExit) as stop:
        carry_settings()

    assert str(stop.value.code).startswith("prefect deploy: EVENTLAKE_LAKE_URI is not set")


# --- for real: prefect deploy, the server, a worker in a fresh environment ------------------

@dataclass
class Project:
    """A copy of the project (prefect.yaml, flows/) and the environment to run Prefect's CLI
    from it: the session's server, this checkout's code, and no EVENTLAKE_* or AWS_*."""

    home: Path
    env: dict[str, str]

    def prefect(self, *args: str, extra: dict[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PREFECT, *args], cwd=cwd or self.home,
                              env={**self.env, **(extra or {})}, capture_output=True,
                              text=True, timeout=240, check=False)


@pytest.fixture(scope="module")
def project(prefect_server: None, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The project copied as a user's checkout, and the process work pool it deploys to."""
    from prefect.settings import PREFECT_API_URL

    home = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "prefect.yaml", home)
    shutil.copytree(ROOT / "flows", home / "flows",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTLAKE_", "AWS_"))}
    env.update(PREFECT_API_URL=str(PREFECT_API_URL.value()),
               PREFECT_HOME=str(tmp_path_factory.mktemp("prefect-home")),
               PYTHONPATH=str(ROOT))
    made = Project(home, env)
    pool = made.prefect("work-pool", "create", POOL, "--type", "process", "--overwrite")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    return made


def test_prefect_deploy_without_the_settings_exits_with_the_message(project: Project) -> None:
    deploy = project.prefect("deploy", "--all")

    output = deploy.stdout + deploy.stderr
    assert deploy.returncode == 1, output
    assert "EVENTLAKE_TABLE and EVENTLAKE_LAKE_URI are not set in this shell" in output
    assert "successfully created" not in output
    assert "Traceback" not in output


@dataclass
class Deployed:
    """The project deployed with a table and an S3 lake on the moto server."""

    project: Project
    lake: EventLake
    endpoint: str
    output: str


def events(prefix: str, n: int = 8) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [{"event_id": f"{prefix}-{i}", "event_type": "order_placed",
             "timestamp": (now - timedelta(days=i % 2, minutes=i)).isoformat(),
             "event_payload": {"i": i}} for i in range(n)]


@pytest.fixture(scope="module")
def deployed(project: Project, moto_server: MotoServer) -> Deployed:
    """Given a table and an S3 lake holding A and B (archived, two files a partition) and C
    (hot only), `prefect deploy --all` run with the settings."""
    name = uuid.uuid4().hex[:10]
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    with pytest.MonkeyPatch.context() as env:
        for key, value in aws.items():
            env.setenv(key, value)
        lake = EventLake(Settings.from_env(
            {}, table=f"deployed-{name}", lake_uri=f"s3://lake-{name}/events",
            endpoint_url=moto_server.endpoint_url, index_shards=2))
        lake.init()
        for batch in ("a", "b"):
            lake.put_many(events(batch))
            lake.archive(settle_seconds=0)
        lake.put_many(events("c"))
    settings = {"EVENTLAKE_TABLE": lake.settings.table,
                "EVENTLAKE_LAKE_URI": lake.settings.lake_uri, "EVENTLAKE_INDEX_SHARDS": "2",
                "AWS_ENDPOINT_URL": moto_server.endpoint_url, "AWS_REGION": "us-east-1"}
    deploy = project.prefect("deploy", "--all", extra=settings)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    return Deployed(project, lake, moto_server.endpoint_url, deploy.stdout)


def test_each_deployment_carries_the_table_lake_endpoint_and_home(deployed: Deployed) -> None:
    from prefect.client.orchestration import get_client

    home = str(deployed.project.home.resolve())
    with get_client(sync_client=True) as client:
        found = {name: client.read_deployment_by_name(f"eventlake-{name}/{name}")
                 for name in DEPLOYMENTS}

    for name, deployment in found.items():
        assert deployment.job_variables == {"env": {
            "EVENTLAKE_TABLE": deployed.lake.settings.table,
            "EVENTLAKE_LAKE_URI": deployed.lake.settings.lake_uri,
            "EVENTLAKE_INDEX_SHARDS": "2", "AWS_ENDPOINT_URL": deployed.endpoint,
            "AWS_REGION": "us-east-1", "EVENTLAKE_HOME": home}}, name
        assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {
            "directory": home}}], name
        assert deployment.work_pool_name == POOL
    # the schedules start at once: none is paused by the deploy
    scheduled = {n: d for n, d in found.items() if d.schedules}
    assert set(scheduled) == {"archive", "compact", "reconcile", "export"}
    assert all(s.active for d in scheduled.values() for s in d.schedules)
    assert not any(d.paused for d in found.values())
    assert deployed.output.count("eventlake: the deployments' runs get") == 1


def run_on_a_fresh_worker(deployed: Deployed, name: str, *params: str) -> None:
    """`prefect deployment run` of `name`, then one pass of a process worker whose environment
    holds no EVENTLAKE_* and no AWS_* but its credentials; the run must end Completed."""
    from prefect.client.orchestration import get_client

    project = deployed.project
    run = project.prefect("deployment", "run", f"eventlake-{name}/{name}",
                          *[arg for p in params for arg in ("-p", p)])
    assert run.returncode == 0, run.stdout + run.stderr
    match = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout)
    assert match, run.stdout
    identity = {"AWS_ACCESS_KEY_ID": "worker", "AWS_SECRET_ACCESS_KEY": "worker"}
    worker = project.prefect("worker", "start", "--pool", POOL, "--run-once", extra=identity,
                             cwd=project.home.parent)
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(uuid.UUID(match.group(1))).state
    assert state is not None and state.is_completed(), (
        f"{name}: {state}\n{worker.stdout[-4000:]}\n{worker.stderr[-4000:]}")


@pytest.mark.slow
@pytest.mark.integration
def test_a_worker_without_eventlake_settings_runs_archive_compact_and_reconcile_as_deployed(
        deployed: Deployed) -> None:
    lake = deployed.lake

    def ids() -> list[str]:
        return sorted(lake.cold.read(columns=["event_id"]).column("event_id").to_pylist())

    everything = sorted(str(e["event_id"]) for batch in "abc" for e in events(batch))
    assert ids() == sorted(i for i in everything if not i.startswith("c-"))

    # archive: C, hot only until now, reaches the lake
    run_on_a_fresh_worker(deployed, "archive", "settle_seconds=0")
    assert ids() == everything

    # compact: the partitions' several files become one each, no event lost or doubled
    before = lake.cold.list_files()
    assert len(before) > len({f.dt for f in before})
    run_on_a_fresh_worker(deployed, "compact", "min_files=2")
    after = lake.cold.list_files()
    assert len(after) == len({f.dt for f in after})
    assert ids() == everything

    # reconcile: a file lost from the lake is found missing against the table and repaired
    lost = after[0]
    lake.cold.delete([lost.path])
    missing = len(everything) - len(ids())
    assert missing > 0
    run_on_a_fresh_worker(deployed, "reconcile", "days=2")
    assert ids() == everything
    rows, _ = artifact("eventlake-reconcile")
    assert (rows["repaired"], rows["lost"], rows["different"]) == (str(missing), "0", "0")

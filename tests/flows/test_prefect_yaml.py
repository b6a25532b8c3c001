"""prefect.yaml is valid: Prefect's own model accepts it, every entrypoint imports to a flow,
every schedule parses, every parameter is one the flow takes, archive/compact run one at a time."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule

ROOT = Path(__file__).parents[2]


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return loaded


def deployments() -> list[dict[str, Any]]:
    return list(config()["deployments"])


def test_prefect_accepts_the_file() -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(config())
    assert [d.name for d in model.deployments] == ["archive", "compact", "reconcile", "backfill",
                                                      "replay", "export"]


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["name"])
def test_each_entrypoint_imports_to_a_flow_taking_its_parameters(
        deployment: dict[str, Any]) -> None:
    path, _, name = deployment["entrypoint"].partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    target = getattr(module, name)
    assert isinstance(target, Flow)
    accepted = set(inspect.signature(target.fn).parameters)
    assert set(deployment.get("parameters", {})) <= accepted


@pytest.mark.parametrize("deployment", [d for d in deployments() if d.get("schedules")],
                         ids=lambda d: d["name"])
def test_each_schedule_parses(deployment: dict[str, Any]) -> None:
    for schedule in deployment["schedules"]:
        CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))


def test_schedules_are_the_documented_cadence() -> None:
    crons = {d["name"]: [s["cron"] for s in d.get("schedules", [])] for d in deployments()}
    assert crons == {"archive": ["*/15 * * * *"], "compact": ["7 * * * *"],
                     "reconcile": ["30 3 * * *"], "backfill": [],
                     "replay": [], "export": ["45 1 * * *"]}


def test_archive_and_compact_never_run_twice_at_once() -> None:
    limits = {d["name"]: d["concurrency_limit"]["limit"] for d in deployments()
              if "concurrency_limit" in d}
    assert limits["archive"] == limits["compact"] == 1


def test_every_deployment_uses_the_process_work_pool() -> None:
    assert {d["work_pool"]["name"] for d in deployments()} == {"eventlake-process"}


def test_the_replay_deployment_runs_on_demand_and_says_how() -> None:
    from flows.replay import replay

    [deployment] = [d for d in deployments() if d["name"] == "replay"]
    assert not deployment.get("schedules")
    assert f"prefect deployment run {replay.name}/replay -p from_ts=" in deployment["description"]
    assert "-p target=" in deployment["description"]


def test_the_settings_step_runs_before_every_deployment_and_feeds_its_env_and_directory() -> None:
    from flows.deploy import carry_settings

    loaded = config()
    [step] = loaded["build"]
    [(path, inputs)] = step.items()
    module, _, name = path.rpartition(".")
    assert getattr(importlib.import_module(module), name) is carry_settings
    assert inputs == {"id": "eventlake"}
    assert loaded["pull"] == [{"prefect.deployments.steps.set_working_directory": {
        "directory": "{{ eventlake.home }}"}}]
    for deployment in deployments():
        assert deployment["work_pool"]["job_variables"] == {"env": "{{ eventlake.env }}"}, \
            deployment["name"]


def test_no_setting_is_left_to_the_worker_environment_at_run_time() -> None:
    # `{{ $VAR }}` is read where the step runs: an unset one becomes "" at deploy time, or is
    # looked up again on the worker (the crash of a deployment made without EVENTLAKE_HOME)
    assert "{{ $" not in yaml.safe_dump(config())

"""What a deployment carries to its runs: `prefect deploy`'s build step `carry_settings`.

    prefect deploy --all  ── build: carry_settings ── reads this shell's EVENTLAKE_* / AWS_*,
                                 │                    refuses when the table or lake is unset
                                 ├─ env  -> each deployment's job_variables.env
                                 └─ home -> its pull step (set_working_directory)
    worker (any shell)   ── a run's process gets that env and cwd, whatever the worker has

Why job_variables.env filled at deploy time, rather than a Prefect Variable or Block: the values
travel with the deployment (shown in the UI, replaced by the next deploy), the worker needs nothing
but AWS credentials, and they are the same variables the CLI and the Lambdas read. A Variable
would be one more object to create before deploying, shared by every deployment of the server.
Why a build step, rather than `{{ $EVENTLAKE_TABLE }}` placeholders in prefect.yaml: Prefect
replaces a placeholder whose variable is unset by "" and deploys anyway (the failure shows only
when a run starts), and an empty AWS_ENDPOINT_URL or AWS_REGION in a run's environment reaches
botocore and pyarrow, which read those variables themselves (eventlake reads blank as
unset). The step carries what is set, validated, and stops the deploy naming what is missing.

Secrets are never carried (the deployment's variables are stored in clear by the server): AWS
credentials come from the worker's own identity (its role, profile or environment), and
EVENTLAKE_EXPORT_SALT from the worker's environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import TypedDict

from eventlake.config import Settings, redact
from eventlake.errors import ConfigError
from flows.common import REQUIRED

HOME = "EVENTLAKE_HOME"
"""The directory the runs start in (holding prefect.yaml and flows/): the export's relative
`out_dir` is under it. Default: the directory `prefect deploy` runs in."""

_announced: set[tuple[tuple[str, str], ...]] = set()


class Carried(TypedDict):
    """The step's output, for prefect.yaml's `{{ eventlake.env }}` and `{{ eventlake.home }}`."""

    env: dict[str, str]
    """The variables each run gets (job_variables.env)."""
    home: str
    """The directory each run starts in (the pull step's set_working_directory)."""


def carry_settings() -> Carried:
    """The build step (prefect.yaml `build:`): `settings_to_carry()` of this shell. A refusal
    ends `prefect deploy` with its message and exit code 1, as Prefect's own CLI errors do
    (SystemExit: any other exception is printed as a traceback ending in "An exception
    occurred.", the message lost in the middle)."""
    try:
        carried = settings_to_carry()
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc
    _announce(carried["env"])
    return carried


def settings_to_carry(environ: Mapping[str, str] | None = None,
                      cwd: Path | None = None) -> Carried:
    """What the deployments carry, from `environ` (default: this process's environment) as
    seen from `cwd` (default: the directory `prefect deploy` runs in).

    `env` holds every Settings variable set here (EVENTLAKE_TABLE and EVENTLAKE_LAKE_URI
    required, a relative local lake made absolute), AWS_REGION always (the region this shell's
    eventlake would use) and EVENTLAKE_HOME. ConfigError when the table or the lake is unset, or
    a value is invalid: `prefect deploy` then stops before creating the deployment."""
    env = os.environ if environ is None else environ
    here = (cwd or Path.cwd()).resolve()
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        raise ConfigError(f"prefect deploy: {exc}; fix it in this shell and deploy again") \
            from exc
    unset = [settings.env_name(name) for name in REQUIRED if name not in settings.explicit]
    if unset:
        raise ConfigError(missing_message(unset))
    carried: dict[str, str] = {}
    for f in fields(Settings):
        if f.name in settings.explicit and f.name != "region":
            carried[settings.env_name(f.name)] = _text(getattr(settings, f.name))
    carried["AWS_REGION"] = settings.region
    carried["EVENTLAKE_LAKE_URI"] = _absolute_lake(settings.lake_uri, here)
    home = (env.get(HOME) or "").strip() or str(here)
    if not Path(home).is_absolute():
        raise ConfigError(f"prefect deploy: {HOME}=`{home}` is not an absolute path: the runs "
                          "start in it, on the worker's machine; give the absolute directory "
                          "that holds prefect.yaml and flows/ there (or leave it unset for "
                          f"`{here}`)")
    carried[HOME] = home
    return Carried(env=carried, home=home)


def missing_message(unset: list[str]) -> str:
    """Why `prefect deploy` refuses, and how to go on."""
    names = " and ".join(unset)
    verb = "is" if len(unset) == 1 else "are"
    return (f"prefect deploy: {names} {verb} not set in this shell. Each deployment carries "
            "its table and lake to its runs (job_variables.env), so a worker needs no "
            "EVENTLAKE_* of its own; set them and deploy again, e.g. "
            "`EVENTLAKE_TABLE=my-events EVENTLAKE_LAKE_URI=s3://my-bucket/lake "
            "AWS_REGION=eu-west-1 prefect deploy --all` (README: Prefect)")


def _text(value: object) -> str:
    """A setting as its variable spells it (`true`, not `True`)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _absolute_lake(lake_uri: str, here: Path) -> str:
    """A relative local lake as an absolute path: the runs start in EVENTLAKE_HOME, not here."""
    if "://" in lake_uri or Path(lake_uri).is_absolute():
        return lake_uri
    return str((here / lake_uri).resolve())


def _announce(carried: dict[str, str]) -> None:
    """Print what the deployments carry, once per `prefect deploy` (the step runs once per
    deployment)."""
    key = tuple(sorted(carried.items()))
    if key in _announced:
        return
    _announced.add(key)
    shown = ", ".join(f"{name}={redact(value)}" for name, value in sorted(carried.items()))
    print(f"eventlake: the deployments' runs get {shown}")

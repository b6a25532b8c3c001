"""What the flows share: the EventLake they work on, retry rules, and artifact helpers."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State, TaskRun

from eventlake import EventLake, Settings
from eventlake.errors import ConfigError, TransientError

IO_RETRIES = 3
IO_RETRY_DELAYS: list[float] = [10.0, 30.0, 90.0]
REQUIRED = ("table", "lake_uri")
"""Settings a scheduled run never takes from the defaults: the CLI's defaults suit a laptop
(`eventlake demo`), but a worker left unconfigured would check and report on a lake nobody
uses, and its runs would end COMPLETED."""


def lake() -> EventLake:
    """The lake of this run, configured like every eventlake entry point (EVENTLAKE_*);
    ConfigError when the table or the lake was never set on this worker."""
    settings = Settings.from_env()
    unset = [name for name in REQUIRED if name not in settings.explicit]
    if unset:
        names = " and ".join(settings.env_name(name) for name in unset)
        defaults = ", ".join(f"`{getattr(settings, name)}`" for name in unset)
        raise ConfigError(
            f"{names} {'is' if len(unset) == 1 else 'are'} not set on this worker: a scheduled "
            f"run would use the default{'s' if len(unset) > 1 else ''} ({defaults}), a table "
            "and lake nobody configured; deploy with them set (`prefect deploy --all` "
            "carries them to the runs in job_variables.env) or set them in the worker's "
            "environment (README: Prefect)")
    return EventLake(settings)


def retry_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry I/O trouble (throttling, timeouts, 5xx); a guard, lock or data error is final:
    retrying it would only repeat the same answer."""
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, TransientError):
        return True
    from eventlake.aws import is_transient

    return isinstance(exc, BaseException) and (is_transient(exc) or isinstance(exc, OSError))


def publish(key: str, title: str, rows: dict[str, Any], note: str | None = None) -> None:
    """A markdown artifact: a two-column table of the run's numbers (and a note)."""
    lines = [f"# {title}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows.items()]
    if note:
        lines += ["", note]
    create_markdown_artifact(key=key, markdown="\n".join(lines), description=title)


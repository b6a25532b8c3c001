"""`run_demo` called in-process (by a test, a notebook, EventLake's user) leaves the calling
process as it found it, also when the demo stops half-way: the environment variables it sets
(the local stack's endpoint and credentials, the demo's table and lake, Prefect's analytics
switch and its server's start-up wait) and the `eventlake` logger's level."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from eventlake.api import EventLake
from eventlake.cli import demo


class _Failed(Exception):
    """A demo step that failed."""


@pytest.mark.parametrize("error", [_Failed("a failed step"), KeyboardInterrupt()],
                         ids=["a failed step", "Ctrl-C"])
@pytest.mark.parametrize("step", ["init", "put_many"])
def test_a_demo_that_stops_half_way_leaves_the_environment_as_it_was(
        step: str, error: BaseException, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    # given a demo whose `step` raises
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(EventLake, step, fail)
    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", raising=False)
    before = dict(os.environ)
    level = logging.getLogger("eventlake").level

    # when it runs, and stops there
    with pytest.raises(type(error)):
        demo.run_demo(events=5, keep=str(tmp_path / "demo"))

    # then the environment and the logger are exactly as before
    assert dict(os.environ) == before
    assert logging.getLogger("eventlake").level == level


def test_a_demo_sets_every_variable_it_needs_before_its_first_step(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # given a demo stopped at its first step, seeing the environment there
    seen: dict[str, str] = {}

    def look(self: EventLake) -> None:
        seen.update(os.environ)
        raise _Failed

    monkeypatch.setattr(EventLake, "init", look)
    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", raising=False)

    with pytest.raises(_Failed):
        demo.run_demo(events=5, keep=str(tmp_path / "demo"))

    # then what the later steps need was set there (so the one `finally` restores it all)
    assert seen["EVENTLAKE_TABLE"] == "eventlake-demo"
    assert seen["EVENTLAKE_LAKE_URI"] == str((tmp_path / "demo" / "lake").resolve())
    assert seen["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    # Prefect's temporary server gets 120 s to start, not 20 (a busy machine took longer)
    assert seen["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "120"
    assert seen["AWS_ENDPOINT_URL"].startswith("http://")
    assert "EVENTLAKE_TABLE" not in os.environ



@pytest.mark.parametrize("user_set", [None, "45"], ids=["no wait set", "the user's wait"])
def test_prefect_already_imported_still_gets_the_demo_s_start_up_wait_at_the_sweep(
        user_set: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # given a process that imported Prefect before the demo (a notebook, this test run), so
    # Prefect has read its variables already; and a user who set the wait, or not
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as WAIT
    from prefect.settings import temporary_settings

    import flows.archive

    if user_set is None:
        monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", raising=False)
    else:
        monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", user_set)
    seen: dict[str, int] = {}

    def sweep(**kwargs: object) -> None:
        seen["wait"] = WAIT.value()
        raise _Failed

    monkeypatch.setattr(flows.archive, "archive", sweep)

    # (Prefect's setting at its default, 20 s, whatever this machine's environment says)
    with temporary_settings(restore_defaults={WAIT}):
        before = WAIT.value()
        # when the demo reaches its sweep step (the one that runs a Prefect flow)
        with pytest.raises(_Failed):
            demo.run_demo(events=5, keep=str(tmp_path / "demo"))
        after = WAIT.value()

    # then Prefect's own setting, the one its client waits by, was 120 s there, or the wait the
    # user set (which Prefect, imported before, had not read); after the step it is back
    assert before == 20
    assert seen["wait"] == (120 if user_set is None else int(user_set))
    assert after == before

"""The README's commands run as written.

- Blocks fenced as ```` ```sh demo-lake ```` are what a user types after `make demo`, in a new
  shell from the clone: they run here, through bash, on a small lake built the way the demo
  builds its own (`demo-lake/lake`, the demo's shop events, archived), with `.venv` and `sql/`
  where a clone has them.
- Every `eventlake put` line of the README (records of another shape) runs against moto.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from eventlake import EventLake, Settings
from eventlake.cli.demo import sample_events
from eventlake.cli.main import main

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MARKER = "sh demo-lake"


def blocks(info: str) -> list[str]:
    """The README's fenced blocks whose info string is `info`."""
    return re.findall(rf"^```{re.escape(info)}\n(.*?)^```", README, flags=re.M | re.S)


def commands(block: str) -> list[str]:
    """A block's command lines, `\\` continuations joined, comments and blanks left out."""
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_has_commands_to_run_on_the_demos_lake() -> None:
    lines = [line for block in blocks(MARKER) for line in commands(block)]

    assert lines[0].startswith(". .venv/bin/activate")
    used = {shlex.split(line)[1] for line in lines if line.startswith("eventlake ")}
    assert {"sql", "schema", "replay", "export"} <= used


@pytest.fixture
def clone_after_demo(mocked_aws: None, tmp_path: Path) -> Path:
    """A folder laid out like the clone after `make demo`: `demo-lake/lake` (the demo's events,
    archived; the table is gone with the demo's moto), `.venv` and `sql/`."""
    lake = EventLake(Settings.from_env(table="readme-demo",
                                       lake_uri=str(tmp_path / "demo-lake" / "lake")))
    lake.init()
    lake.put_many(sample_events(120))
    lake.archive(settle_seconds=0)
    (tmp_path / ".venv").symlink_to(sys.prefix)
    (tmp_path / "sql").symlink_to(ROOT / "sql")
    return tmp_path


@pytest.mark.parametrize("block", blocks(MARKER))
def test_the_demo_lake_blocks_run_as_written(clone_after_demo: Path, block: str) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EVENTLAKE_", "AWS_", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))

    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=clone_after_demo,
                          env=env, capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    assert "order_placed" in done.stdout  # the query over the demo's events answered
    for line in commands(block):  # every file a command writes is there, and not empty
        for out in re.findall(r"(?:--out |jsonl:)(\S+)", line):
            assert (clone_after_demo / out).stat().st_size > 0, line


def put_lines() -> list[str]:
    return [line for block in blocks("bash") for line in commands(block)
            if line.startswith("eventlake put ") and "--map" in line]


def test_the_readme_shows_put_with_a_field_map_for_gh_archive_and_cloudtrail() -> None:
    assert any("gharchive" in line for line in put_lines())
    assert any("cloudtrail" in line for line in put_lines())


@pytest.mark.parametrize("line", put_lines())
def test_the_readme_put_examples_store_every_record(
        mocked_aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path, line: str) -> None:
    monkeypatch.setenv("EVENTLAKE_TABLE", "readme-put")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.chdir(ROOT)
    assert main(["init"]) == 0
    capsys.readouterr()

    code = main(shlex.split(line)[1:])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.search(r"created [1-9]", out) and "invalid 0" in out

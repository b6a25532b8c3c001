"""The sweep-memory benchmark's stand-in hot store still does what the sweep asks of a HotStore
(benchmarks/sweep_memory.py): a small sweep through it archives every generated event, so the
benchmark (minutes, run by hand) cannot silently stop running when the sweep's use of the hot
store changes."""

from __future__ import annotations

from pathlib import Path

from benchmarks import sweep_memory
from eventlake.lake.store import Lake


def test_a_small_sweep_through_the_stand_in_archives_every_generated_event(
        tmp_path: Path) -> None:
    settings = sweep_memory._settings(tmp_path / "lake")
    hot = sweep_memory.GeneratedHotStore(settings, 300)

    sweep_memory._run("sweep", Lake(settings), hot, settings)  # raises unless all archived

    ids = Lake(settings).read(columns=["event_id"])["event_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 300 == hot.generated

"""The sweep over an S3 lake (moto's HTTP server): leases and the watermark by S3 conditional
writes (If-None-Match / If-Match), the same guarantees as on local disk."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from archive_support import NOW, World, hours, s3_world

from eventlake.archive.lease import SweepLockedError
from eventlake.archive.report import SweepReport
from eventlake.lake.store import Lake
from eventlake.lake.watermark import read_watermark

pytestmark = pytest.mark.integration


@pytest.fixture
def world(server_env: str) -> World:
    return s3_world()


def test_a_sweep_on_s3_archives_once_and_survives_a_crash_before_the_watermark(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = world.ingest([f"e-{i}" for i in range(6)], NOW - hours(2))
    monkeypatch.setattr("eventlake.archive.sweep.advance_watermark",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError, match="killed"):
        world.sweep(NOW)
    monkeypatch.undo()
    assert read_watermark(world.lake) is None
    report = world.sweep(NOW + timedelta(minutes=1))
    assert (report.counts.archived, report.counts.already) == (0, 6)
    assert world.stored_rows() == Counter(ids)
    assert read_watermark(world.lake).at == NOW + timedelta(minutes=1)  # type: ignore[union-attr]
    assert world.lake.root.startswith("s3://")


def test_two_sweeps_on_s3_started_together_run_one_at_a_time(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.ingest(["a", "b"], NOW - hours(1))
    from eventlake.archive import sweep as archive

    loser_done = threading.Event()
    real = archive.read_watermark

    def slow_read_watermark(lake: Lake) -> Any:
        loser_done.wait(timeout=10)
        return real(lake)

    monkeypatch.setattr(archive, "read_watermark", slow_read_watermark)
    start = threading.Barrier(2, timeout=10)
    outcomes: list[SweepReport | SweepLockedError] = []

    def run() -> None:
        start.wait()
        try:
            outcomes.append(world.sweep(NOW))
        except SweepLockedError as exc:
            outcomes.append(exc)
            loser_done.set()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(type(o).__name__ for o in outcomes) == ["SweepLockedError", "SweepReport"]
    assert world.stored_rows() == Counter(["a", "b"])

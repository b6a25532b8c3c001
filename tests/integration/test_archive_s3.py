"""The sweep over an S3 lake (moto's HTTP server): leases and the watermark by S3 conditional
writes (If-None-Match / If-Match), the same guarantees as on local disk."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from archive_support import NOW, World, hours, race_two_sweeps

from eventlake.lake.watermark import read_watermark

pytestmark = pytest.mark.integration


def test_a_sweep_on_s3_archives_once_and_survives_a_crash_before_the_watermark(
        s3_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = s3_world.ingest([f"e-{i}" for i in range(6)], NOW - hours(2))
    with monkeypatch.context() as killed:
        killed.setattr("eventlake.archive.sweep.advance_watermark",
                       lambda *a, **k: (_ for _ in ()).throw(OSError("killed")))
        with pytest.raises(OSError, match="killed"):
            s3_world.sweep(NOW)
    assert read_watermark(s3_world.lake) is None
    report = s3_world.sweep(NOW + timedelta(minutes=1))
    assert (report.counts.archived, report.counts.already) == (0, 6)
    assert s3_world.stored_rows() == Counter(ids)
    assert read_watermark(s3_world.lake).at == NOW + timedelta(minutes=1)  # type: ignore[union-attr]
    assert s3_world.lake.root.startswith("s3://")


def test_two_sweeps_on_s3_started_together_run_one_at_a_time(
        s3_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    s3_world.ingest(["a", "b"], NOW - hours(1))
    reports, refusals = race_two_sweeps(s3_world, monkeypatch, NOW)
    assert (len(reports), len(refusals)) == (1, 1)
    assert reports[0].counts.archived == 2
    assert s3_world.stored_rows() == Counter(["a", "b"])

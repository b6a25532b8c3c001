"""The quarantine's summary (`Lake.summarize_quarantine`, behind `eventlake status`): bounded
reads, hand-planted files named rather than fatal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from eventlake.config import Settings
from eventlake.lake.store import Lake, QuarantineEntry


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


def day(n: int) -> datetime:
    return datetime(2026, 11, n, 12, tzinfo=UTC)


def entry(n: int, rule: str = "stream.modify") -> QuarantineEntry:
    return QuarantineEntry(f"reason {n}", rule, {"eventID": f"e-{n}"})


def test_an_empty_quarantine_summarizes_to_nothing(lake: Lake) -> None:
    summary = lake.summarize_quarantine()
    assert (summary.files, summary.files_read, summary.records) == (0, 0, 0)
    assert summary.rules == () and summary.newest is None


def test_the_summary_reads_only_the_newest_files_and_says_so(lake: Lake) -> None:
    # given three days of quarantine, one file a day
    for n in (1, 2, 3):
        lake.quarantine([entry(n), entry(10 + n, "record.not_an_event")], f"batch-{n}",
                        now=day(n))

    # when summarized reading at most two files
    summary = lake.summarize_quarantine(max_files=2)

    # then the newest two days are counted, and the third is listed, not read
    assert (summary.files, summary.files_read, summary.records) == (3, 2, 4)
    assert [(r.rule, r.records, r.newest, r.reason) for r in summary.rules] == [
        ("record.not_an_event", 2, day(3), "reason 13"), ("stream.modify", 2, day(3), "reason 3")]
    assert summary.newest == day(3)


def test_a_hand_planted_file_is_named_not_counted_and_the_rest_still_counts(lake: Lake) -> None:
    # given a quarantine file and a planted file that is not quarantine JSON Lines
    lake.quarantine([entry(1)], "batch-1", now=day(1))
    planted = Path(lake.root) / "_quarantine" / "dt=2026-11-02" / "notes.jsonl"
    planted.parent.mkdir(parents=True)
    planted.write_text("not json\n")

    summary = lake.summarize_quarantine()

    assert (summary.files, summary.records) == (2, 1)
    [problem] = summary.unreadable
    assert problem.startswith(f"{planted}: JSONDecodeError")
    assert summary.as_dict()["unreadable"] == [problem]

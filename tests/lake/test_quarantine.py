"""The quarantine's readers (`Lake.read_quarantine`, `Lake.summarize_quarantine` behind
`eventlake status`): each record once however many files hold it, bounded reads, hand-planted
files named rather than fatal."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from eventlake.config import Settings
from eventlake.lake.quarantine import record_key
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


def test_each_line_carries_the_key_readers_de_duplicate_on(lake: Lake) -> None:
    # given records of the awkward kinds a stream delivers
    record = {"eventID": "e-1", "blob": b"\x00\xff", "n": Decimal("1.10"), "tags": {"b", "a"},
              "when": datetime(2026, 11, 1, tzinfo=UTC), "text": "Grüße \u2028 ✓", "big": 10**30}
    path = lake.quarantine([QuarantineEntry("bad", "rule.x", record)], "awkward", now=day(1))

    # then the key written is the one every reader computes from the record as stored, so
    # another engine counting `distinct key` agrees with eventlake
    [line] = Path(path).read_text(encoding="utf-8").split("\n")[:-1]
    stored = json.loads(line)
    assert stored["key"] == record_key(stored["record"])
    assert stored["record"]["text"] == "Grüße \u2028 ✓" and stored["record"]["big"] == 10**30
    [back] = lake.read_quarantine()
    assert record_key(back.record) == stored["key"]


def test_two_records_that_differ_only_in_one_value_are_both_kept(lake: Lake) -> None:
    lake.quarantine([entry(1), QuarantineEntry("reason 1", "stream.modify", {"eventID": "e-1 "})],
                    "near", now=day(1))
    assert len(lake.read_quarantine()) == 2
    assert lake.summarize_quarantine().repeats == 0


def test_the_summary_counts_a_record_quarantined_again_once_and_says_so(lake: Lake) -> None:
    # given a record quarantined on two days, and again in a file read later
    lake.quarantine([entry(1), entry(2)], "whole", now=day(1))
    lake.quarantine([entry(1)], "half", now=day(2))
    lake.quarantine([entry(2, "stream.modify")], "other-half", now=day(2))

    summary = lake.summarize_quarantine()

    # then each record counts once, as first quarantined, and the repeats are told
    assert (summary.records, summary.repeats) == (2, 2)
    [rule] = summary.rules
    assert (rule.records, rule.newest) == (2, day(1))


@pytest.mark.parametrize("field, value", [("reason", 5), ("rule", ["a"]), ("source", None),
                                          ("quarantined_at", 17)])
def test_a_planted_line_whose_fields_are_not_text_is_named_not_counted(
        lake: Lake, field: str, value: object) -> None:
    # given a quarantine file, and a planted one whose line is JSON with a field of another
    # kind (a number for the reason, a list for the rule, ...) beside a well-formed one
    lake.quarantine([entry(1)], "batch-1", now=day(1))
    line = {"reason": "r", "rule": "stream.modify", "source": "stream",
            "quarantined_at": day(2).isoformat(), "record": {"eventID": "e-2"}}
    planted = Path(lake.root) / "_quarantine" / "dt=2026-11-02" / "planted.jsonl"
    planted.parent.mkdir(parents=True)
    planted.write_text(json.dumps({**line, field: value}) + "\n")

    # when summarized (and printed: the status's text formats each field as text)
    summary = lake.summarize_quarantine()

    # then the planted file is named with the field at fault, and the rest counts
    assert (summary.records, [r.rule for r in summary.rules]) == (1, ["stream.modify"])
    [problem] = summary.unreadable
    assert problem.startswith(f"{planted}: ") and f"`{field}`" in problem
    with pytest.raises(ValueError, match=f"`{field}`"):
        lake.read_quarantine()


def test_the_newest_files_read_are_the_last_written_not_the_last_named(lake: Lake) -> None:
    # given a day of more quarantine files than are read, the last written named first (the
    # names of the sweep's and compaction's files are digests: their order is not time's)
    for name, hour in (("b-sweep", 10), ("c-compaction", 11), ("a-stream", 12)):
        at = datetime(2026, 11, 5, hour, tzinfo=UTC)
        path = lake.quarantine([QuarantineEntry(f"at {hour}", "stream.modify", {"n": hour})],
                               name, now=at)
        os.utime(path, (at.timestamp(), at.timestamp()))

    # when summarized reading at most two files
    summary = lake.summarize_quarantine(max_files=2)

    # then the two read are the last two written: the newest record is the one shown
    assert (summary.files, summary.files_read, summary.records) == (3, 2, 2)
    assert summary.newest == datetime(2026, 11, 5, 12, tzinfo=UTC)
    assert summary.rules[0].reason == "at 12"

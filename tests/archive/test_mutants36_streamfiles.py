"""A sequence number that is not a number, the case mutation testing found unchecked
(mutants35/36: `is_number`'s `and` read as `or`): such a record is named by content, never by
its text, so a batch mixing one with a real number still quarantines (a text "range" would
not parse as numbers, fail the quarantine write, and fail every re-delivery of the batch)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from stream_support import batch, new_lake

from eventlake.archive.stream import archive_event
from eventlake.archive.streamfiles import is_number


def _modifies(*seqs: str) -> dict[str, Any]:
    """The fixture batch's MODIFY record, once per sequence number in `seqs`."""
    modify = next(r for r in batch()["Records"] if r["eventName"] == "MODIFY")
    records = []
    for seq in seqs:
        record = copy.deepcopy(modify)
        record["dynamodb"]["SequenceNumber"] = seq
        records.append(record)
    return {"Records": records}


def test_a_word_is_not_a_sequence_number() -> None:
    assert not is_number("abc")
    assert not is_number("²")
    assert is_number("0123")


def test_records_with_a_word_for_a_sequence_number_quarantine_under_a_content_name(
        tmp_path: Path) -> None:
    # given a batch whose two modified records carry "abc" and "10" as sequence numbers
    lake = new_lake(tmp_path / "lake")
    # when it is archived
    report = archive_event(lake, _modifies("abc", "10"))
    # then both are quarantined, in a file named by their content, and nothing failed
    assert report.error is None and report.failed_from is None
    assert report.quarantined == 2
    assert report.quarantine_file is not None and "/stream-x" in report.quarantine_file

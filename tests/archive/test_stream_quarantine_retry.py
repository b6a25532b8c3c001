"""The stream path under a hostile review (review20): what a partly failed batch quarantines.

Lambda re-delivers a partly failed batch from the record it reported; the records after that
point come again, so whatever the first attempt did with them is done twice unless it is
idempotent. Quarantine files are named from the records they hold, so a record quarantined
once with the whole batch and again with the re-delivery's smaller set landed in two files.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from stream_support import batch, new_lake, seq_of

from eventlake.archive.stream import archive_event
from eventlake.handlers import stream as stream_handler
from eventlake.lake.store import Lake, QuarantineEntry

OCT31 = "2026-10-31"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return new_lake(tmp_path / "lake")


def with_modify_first(event: dict[str, Any]) -> dict[str, Any]:
    """The fixture batch with a MODIFY (a copy of record 5, another sequence number) in front:
    quarantined records on both sides of record 1, the first oct-31 INSERT."""
    modify = copy.deepcopy(event["Records"][5])
    modify["dynamodb"]["SequenceNumber"] = "400000000000000000100"
    modify["eventID"] = "modify-first"
    return {**event, "Records": [modify, *event["Records"]]}


def fail_partition(lake: Lake, monkeypatch: pytest.MonkeyPatch, dt: str) -> None:
    real = lake.write_partition

    def write_partition(dt_: str, table: Any, name: str, **kwargs: Any) -> Any:
        if dt_ == dt:
            raise OSError(5, "I/O error")
        return real(dt_, table, name, **kwargs)

    monkeypatch.setattr(lake, "write_partition", write_partition)


def quarantined_sequences(lake: Lake) -> list[str]:
    return sorted(e.record["dynamodb"]["SequenceNumber"] for e in lake.read_quarantine())


def test_records_quarantined_around_the_retry_point_are_quarantined_once(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a batch with MODIFYs before and after its first oct-31 INSERT, and oct-31 failing
    event = with_modify_first(batch())
    real = lake.write_partition
    fail_partition(lake, monkeypatch, OCT31)
    first = archive_event(lake, event)
    assert first.failed_from == seq_of(event, 2)

    # when Lambda re-delivers from the reported record and the lake has healed
    monkeypatch.setattr(lake, "write_partition", real)
    again = archive_event(lake, {"Records": event["Records"][2:]})

    # then each MODIFY is quarantined exactly once: the one before the retry point with the
    # batch, the one after it with the re-delivery (it was in two files)
    assert again.failed_from is None
    assert quarantined_sequences(lake) == [seq_of(event, 0), seq_of(event, 6)]
    assert (first.quarantined, again.quarantined) == (1, 1)


def test_a_failed_quarantine_before_a_failed_partition_retries_from_the_quarantine(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a batch whose oct-31 partition fails and whose quarantine fails too
    event = with_modify_first(batch())
    fail_partition(lake, monkeypatch, OCT31)

    def no_quarantine(*args: Any, **kwargs: Any) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lake, "quarantine", no_quarantine)

    # when the batch is archived
    report = archive_event(lake, event)

    # then the retry starts at the earliest record not durable (the MODIFY at 0), and the
    # error says so
    assert report.failed_from == seq_of(event, 0)
    assert report.error is not None and "quarantine write failed" in report.error
    assert report.quarantined == 0 and report.quarantine_file is None


class Timeout(BaseException):
    """Lambda ending the invocation mid-write: nothing returned, nothing after it ran."""


def test_a_batch_cut_short_while_writing_parquet_is_quarantined_once_when_re_delivered(
        lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an invocation that times out while writing its oct-31 partition
    event = with_modify_first(batch())
    real = lake.write_partition

    def write_partition(dt: str, table: Any, name: str, **kwargs: Any) -> Any:
        if dt == OCT31:
            raise Timeout
        return real(dt, table, name, **kwargs)

    monkeypatch.setattr(lake, "write_partition", write_partition)
    with pytest.raises(Timeout):
        archive_event(lake, event)

    # then nothing was quarantined yet: the quarantine is written after the Parquet
    assert lake.read_quarantine() == []

    # when Lambda delivers the whole batch again (a function error), twice
    monkeypatch.setattr(lake, "write_partition", real)
    archive_event(lake, event)
    archive_event(lake, event)

    # then each MODIFY is quarantined once
    assert quarantined_sequences(lake) == [seq_of(event, 0), seq_of(event, 6)]


# -- a batch re-delivered bisected (BisectBatchOnFunctionError) ----------------------------------

def invoke(event: dict[str, Any]) -> dict[str, Any]:
    return stream_handler.handler(event, SimpleNamespace(aws_request_id="req-bisect"))


def test_a_batch_re_delivered_bisected_after_its_quarantine_was_written_counts_each_record_once(
        lake: Lake) -> None:
    # given a batch with a MODIFY in each half, archived by the Lambda up to its quarantine
    # file, which then crashed (a timeout after the write): Lambda saw a function error
    event = with_modify_first(batch())
    stream_handler.reset(lake)
    try:
        invoke(copy.deepcopy(event))
        assert len(lake.list_quarantine()) == 1

        # when Lambda re-delivers it bisected in two (each half names its file from its own
        # quarantined records: two more files)
        half = len(event["Records"]) // 2
        for part in (event["Records"][:half], event["Records"][half:]):
            assert invoke({**event, "Records": copy.deepcopy(part)}) == {
                "batchItemFailures": []}
    finally:
        stream_handler.reset()

    # then the files hold each MODIFY twice, but every reader counts it once
    assert len(lake.list_quarantine()) == 3
    assert quarantined_sequences(lake) == [seq_of(event, 0), seq_of(event, 6)]
    summary = lake.summarize_quarantine()
    assert summary.records == 2
    assert [(r.rule, r.records) for r in summary.rules] == [("stream.modify", 2)]


def test_a_record_quarantined_again_on_another_day_or_by_another_writer_counts_once(
        lake: Lake) -> None:
    # given the batch's quarantine written just before midnight, its bisected halves' just
    # after, and the same record planted under another name (the sweep's, say)
    event = with_modify_first(batch())
    first, second = event["Records"][0], event["Records"][6]
    entry = QuarantineEntry("immutable event modified", "stream.modify", first)
    other = QuarantineEntry("immutable event modified", "stream.modify", second)
    lake.quarantine([entry, other], "stream-whole", now=datetime(2026, 11, 1, 23, 59, tzinfo=UTC))
    lake.quarantine([entry], "stream-half-1", now=datetime(2026, 11, 2, 0, 1, tzinfo=UTC))
    lake.quarantine([other], "stream-half-2", now=datetime(2026, 11, 2, 0, 1, tzinfo=UTC))
    lake.quarantine([entry, entry], "planted", now=datetime(2026, 11, 3, tzinfo=UTC))

    # then each record is read once, as first quarantined
    back = lake.read_quarantine()
    assert [e.record["eventID"] for e in back] == [first["eventID"], second["eventID"]]
    assert {e.quarantined_at for e in back} == {datetime(2026, 11, 1, 23, 59, tzinfo=UTC)}
    assert lake.summarize_quarantine().records == 2
    # and a reader of one day alone sees that day's records, each once
    assert len(lake.read_quarantine(date(2026, 11, 2), date(2026, 11, 3))) == 2

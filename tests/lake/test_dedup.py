"""The one first-copy rule: which row of each event_id is kept, whatever orders the rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from eventlake.lake.dedup import first_copies, first_of_each

T0 = datetime(2024, 3, 10, tzinfo=UTC)


def test_without_a_rank_the_first_row_of_each_event_id_is_kept() -> None:
    ids = pa.array(["b", "a", "b", "c", "a"])

    assert first_of_each(ids).to_pylist() == [True, True, False, True, False]


def test_a_rank_chooses_the_row_with_its_least_value_then_the_first() -> None:
    ids = pa.array(["b", "a", "b", "a", "a"])
    record = pa.array([7, 3, 2, 1, 1])  # e.g. the stream record each row came from

    assert first_of_each(ids, record).to_pylist() == [False, False, True, True, False]


def test_no_rows_keep_nothing() -> None:
    assert first_of_each(pa.array([], pa.string())).to_pylist() == []


def test_readers_keep_the_earliest_ingested_copy_and_name_differing_ones() -> None:
    keys = pa.table({"event_id": ["e1", "e1", "e2", "e2"],
                     "ingested_at": [T0 + timedelta(seconds=5), T0, T0, T0],
                     "content_hash": ["h1", "h2", "h3", "h3"]})

    keep, conflicts = first_copies(keys)

    assert keep.to_pylist() == [False, True, True, False]
    assert conflicts == ["e1"]

"""Edges of the first-copy rule that mutation testing found unchecked (mutants35): a lone row
and no rows at all. Each must give a mask the caller can filter its table with, keeping every
event once."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from eventlake.lake.dedup import first_copies, first_of_each

T0 = datetime(2024, 3, 10, tzinfo=UTC)


def _keys(n: int) -> pa.Table:
    return pa.table({"event_id": pa.array([f"e{i}" for i in range(n)], pa.string()),
                     "ingested_at": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
                     "content_hash": pa.array([f"h{i}" for i in range(n)], pa.string())})


def test_a_lone_row_is_kept_and_conflicts_with_nothing() -> None:
    keys = _keys(1)

    keep, conflicts = first_copies(keys)

    assert keys.filter(keep)["event_id"].to_pylist() == ["e0"]
    assert conflicts == []


def test_no_rows_give_a_boolean_mask_that_filters_the_empty_table() -> None:
    keys = _keys(0)

    keep, conflicts = first_copies(keys)

    assert keep.type == pa.bool_()
    assert keys.filter(keep).num_rows == 0
    assert conflicts == []


def test_first_of_each_on_no_rows_is_a_boolean_mask_that_filters() -> None:
    empty = pa.table({"event_id": pa.array([], pa.string())})

    keep = first_of_each(empty["event_id"])

    assert keep.type == pa.bool_()
    assert empty.filter(keep).num_rows == 0

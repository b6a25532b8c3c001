"""Where rows and files go: partitions by the UTC date of `timestamp`, `dt=` names, file names."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from eventlake.lake.layout import (
    LakeDataError,
    check_dt,
    check_name,
    dt_filter,
    dt_of_dir,
    dts_of,
    split_by_dt,
)


def rows(*moments: datetime) -> pa.Table:
    return pa.table({"event_id": [f"e{i}" for i in range(len(moments))],
                     "event_type": ["order.created"] * len(moments),
                     "timestamp": pa.array(moments, pa.timestamp("us", tz="UTC")),
                     "row": list(range(len(moments)))})


def test_split_by_dt_groups_rows_by_utc_date_in_date_order_with_extra_columns() -> None:
    table = rows(datetime(2024, 3, 11, 1, tzinfo=UTC), datetime(2024, 3, 10, 23, tzinfo=UTC),
                 datetime(2024, 3, 11, 0, tzinfo=UTC))

    parts = split_by_dt(table)

    assert [(dt, part["row"].to_pylist()) for dt, part in parts] == [
        ("2024-03-10", [1]), ("2024-03-11", [2, 0])]
    assert sorted(dts_of(table)) == ["2024-03-10", "2024-03-11"]
    assert split_by_dt(table.slice(0, 0)) == []


def test_partition_and_file_names() -> None:
    assert dt_of_dir("dt=2024-03-10") == "2024-03-10"
    assert dt_of_dir("dt=2024-02-30") is None
    assert check_dt("2024-03-10") == "2024-03-10"
    assert check_name("batch-1", ".parquet") == "batch-1.parquet"
    keep = dt_filter(date(2024, 3, 9), datetime(2024, 3, 10, 23, tzinfo=UTC), None)
    assert [keep(d) for d in ("2024-03-08", "2024-03-09", "2024-03-10", "2024-03-11")] == [
        False, True, True, False]
    with pytest.raises(LakeDataError, match="YYYY-MM-DD"):
        check_dt("2024-3-10")
    with pytest.raises(LakeDataError, match="not valid"):
        check_name("../escape", ".parquet")

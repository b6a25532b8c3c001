"""The column-wise fast path (eventlake/codec/columns.py): the checks over whole columns decide
exactly what the per-row checks would, and a record failing one goes the row-wise path alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlake.codec import RowBuilder, lambda_insert_columns
from eventlake.codec.columns import _TS_REGEX, _in_layout
from eventlake.config import Settings
from eventlake.events.model import parse_event
from eventlake.hot.store import HotStore

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
STORE = HotStore(Settings(), clients=None, recorded={})  # type: ignore[arg-type]  # to_item only
GOOD = "2026-11-01T08:00:00.000000Z"


def _items(n: int = 3) -> list[dict[str, Any]]:
    events = [parse_event({"event_id": f"evt-{i}", "event_type": "order.placed",
                           "timestamp": f"2026-11-01T0{i}:00:00Z", "event_payload": {"n": i},
                           **({"source": "shop", "subject": f"order/{i}"} if i % 2 else {})},
                          now=NOW) for i in range(n)]
    return [STORE.to_item(e, NOW + timedelta(microseconds=i)) for i, e in enumerate(events)]


def _records(images: list[Any]) -> list[dict[str, Any]]:
    return [{"eventID": str(i), "eventName": "INSERT", "eventSource": "aws:dynamodb",
             "dynamodb": {"Keys": {"event_id": {"S": f"k{i}"}}, "SequenceNumber": str(100 + i),
                          "NewImage": image}} for i, image in enumerate(images)]


def _row_wise(images: list[Any]) -> pa.Table:
    builder = RowBuilder()
    for image in images:
        builder.add_image(image)
    return builder.to_table()


def _regex_verdict(values: list[str | None]) -> bool:
    """What the per-row check says of a whole column: every value matches `_TS_REGEX`."""
    matched = pc.match_substring_regex(pa.array(values, pa.string()), _TS_REGEX)
    return bool(pc.all(pc.fill_null(matched, False)).as_py())


NEAR_MISSES = [
    GOOD.replace("T", " "), GOOD.replace("Z", "z"), GOOD[:-1] + "+", GOOD + "\n", GOOD[:-2] + "Z",
    GOOD[:-1] + "0Z", GOOD.replace(".", ","), GOOD.replace("-", "/", 1),
    GOOD.replace(":", "-", 1), "2026-11-01T08:00:00+00:00Z"[:27], "٢026-11-01T08:00:00.000000Z",
    "２026-11-01T08:00:00.000000Z", "2026-11-01T08:00:00.00000éZ", "", " " * 27,
    "2026-11-01T08:00:00.000000ZX"[1:], "2026-13-45T99:99:99.999999Z",  # layout only
]


@pytest.mark.parametrize("odd", NEAR_MISSES, ids=range(len(NEAR_MISSES)))
def test_the_whole_column_layout_check_agrees_with_the_regex_on_near_misses(odd: str) -> None:
    values = [GOOD, odd, GOOD]

    assert _in_layout(pa.array(values, pa.string())) == _regex_verdict(values)


def test_a_column_of_two_values_whose_lengths_sum_to_the_layout_s_is_refused() -> None:
    # given values of 26 and 28 bytes whose bytes, back to back, are exactly two good values
    values = [GOOD[:-1], "Z" + GOOD]
    assert "".join(values) == GOOD * 2

    # then the column is refused, as the regex refuses each value
    assert _in_layout(pa.array(values, pa.string())) is False
    assert _regex_verdict(values) is False


def test_a_sliced_column_is_checked_from_its_own_first_value() -> None:
    column = pa.array(["garbage", GOOD, GOOD, "x"], pa.string())

    assert _in_layout(column.slice(1, 2)) is True
    assert _in_layout(column.slice(0, 2)) is False
    assert _in_layout(column.slice(2, 2)) is False


@settings(deadline=None)  # a shared machine: no per-example deadline (timing is not tested)
@given(st.lists(st.one_of(
    st.just(GOOD),
    st.builds(lambda i, c: GOOD[:i] + c + GOOD[i + 1:], st.integers(0, 26),
              st.characters(codec="utf-8")),
    st.text(max_size=30)), min_size=1, max_size=6))
def test_the_whole_column_layout_check_agrees_with_the_regex(values: list[str]) -> None:
    assert _in_layout(pa.array(values, pa.string())) == _regex_verdict(values)


def _broken(image: dict[str, Any], attribute: str, value: Any) -> dict[str, Any]:
    return {**image, attribute: value}


BREAKS = {
    "payload S null": ("event_payload", {"S": None}),
    "id empty": ("event_id", {"S": ""}),
    "id S null": ("event_id", {"S": None}),
    "type empty": ("event_type", {"S": ""}),
    "hash 63 long": ("content_hash", {"S": "0" * 63}),
    "hash S null": ("content_hash", {"S": None}),
    "timestamp another layout": ("timestamp", {"S": "2026-11-01T08:00:00Z"}),
    "ingested_at another layout": ("ingested_at", {"S": "2026-11-01 12:00:00.000000Z"}),
    "timestamp Feb 30": ("timestamp", {"S": "2026-02-30T08:00:00.000000Z"}),
    "ingested_at year 0": ("ingested_at", {"S": "0000-11-01T12:00:00.000000Z"}),
}


@pytest.mark.parametrize(("attribute", "value"), BREAKS.values(), ids=BREAKS.keys())
def test_a_record_failing_one_check_goes_the_row_wise_path_alone(attribute: str,
                                                                 value: Any) -> None:
    # given three eventlake INSERTs, the middle one broken in one attribute
    items = _items()
    records = _records([items[0], _broken(items[1], attribute, value), items[2]])

    # when the batch is gathered column-wise
    fast = lambda_insert_columns(records)

    # then the two good ones are taken, with their sequence numbers, and the broken one is left
    # to the row-wise path, which normalises or quarantines it
    assert (fast.indexes, fast.rest) == ([0, 2], [1])
    assert fast.table.equals(_row_wise([items[0], items[2]]))
    assert fast.seqs == ["100", "102"]
    assert fast.sequences.to_pylist() == fast.seqs


def test_a_batch_passing_every_check_carries_its_sequence_numbers_as_arrow_text() -> None:
    items = _items(4)

    fast = lambda_insert_columns(_records(items))

    assert (fast.indexes, fast.rest) == ([0, 1, 2, 3], [])
    assert fast.table.equals(_row_wise(items))
    assert fast.sequences.to_pylist() == fast.seqs == ["100", "101", "102", "103"]


def test_a_record_without_a_text_sequence_number_goes_the_row_wise_path_alone() -> None:
    # given a batch whose middle record has a null SequenceNumber (the rest are fine)
    records = _records(_items())
    records[1]["dynamodb"]["SequenceNumber"] = None

    fast = lambda_insert_columns(records)

    assert (fast.indexes, fast.rest) == ([0, 2], [1])
    assert fast.sequences.to_pylist() == fast.seqs == ["100", "102"]

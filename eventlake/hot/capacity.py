"""Read request units by DynamoDB's published sizing rules, from the items a call returned
(moto reports a constant ConsumedCapacity of 1.0, so benchmarks and cost estimates count here).

    item size    sum over attributes of len(name) + the value's size (UTF-8 bytes):
                 S/B its length · N (significant digits + 1) // 2 + 1 · BOOL/NULL 1 ·
                 L/M 3 + one per element + the elements' sizes · SS/NS/BS their members
    Query        the sum of the returned items' sizes (of an index: the projected
                 attributes), rounded up to 4 KB, one unit per 4 KB; at least one unit
    BatchGetItem each item rounded up to 4 KB on its own; a key not found costs one unit
    eventually consistent reads cost half (indexes are always eventually consistent)

Sources: "Item sizes and formats" and "Read/write capacity mode" of the DynamoDB Developer
Guide (docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html,
.../read-write-operations.html), and "Global secondary indexes: provisioned throughput
considerations" for Query on an index (read 2026-11).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

__all__ = ["UNIT_BYTES", "batch_get_units", "item_size", "query_units", "value_size"]

UNIT_BYTES = 4096


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one AttributeValue (without its name)."""
    [(kind, body)] = value.items()
    if kind in ("S", "B"):
        return len(body.encode("utf-8")) if isinstance(body, str) else len(body)
    if kind == "N":
        return _number_size(body)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in body)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + value_size(v) for k, v in body.items())
    if kind == "SS":
        return sum(len(v.encode("utf-8")) for v in body)
    if kind == "NS":
        return sum(_number_size(v) for v in body)
    if kind == "BS":
        return sum(len(v) for v in body)
    raise ValueError(f"unknown AttributeValue type `{kind}`")


def _number_size(text: str) -> int:
    digits = Decimal(text).normalize().as_tuple().digits  # leading/trailing zeros trimmed
    return (len(digits) + 1) // 2 + 1


def item_size(item: dict[str, Any]) -> int:
    """Bytes of an item (or index entry) as DynamoDB counts them for reads."""
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def query_units(items: Iterable[dict[str, Any]], *, consistent: bool = False) -> float:
    """Read units of one Query (or Scan) call that returned `items`."""
    units = max(1, math.ceil(sum(item_size(i) for i in items) / UNIT_BYTES))
    return units if consistent else units / 2


def batch_get_units(items: Iterable[dict[str, Any]], missing: int = 0, *,
                    consistent: bool = False) -> float:
    """Read units of one BatchGetItem call that returned `items` and found `missing` keys
    absent."""
    units = sum(max(1, math.ceil(item_size(i) / UNIT_BYTES)) for i in items) + missing
    return units if consistent else units / 2

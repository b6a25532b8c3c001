"""The read-units benchmark's arithmetic (benchmarks/read_units.py, read_floor.py): what its
meter counts per call by DynamoDB's sizing rules, the line through two volumes (fixed cost per
run, cost per 1,000 events), and the floor's parts and keys-only costs, against hand-computed
values. (The benchmark itself runs on moto for minutes: `python -m benchmarks read_units`.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.hooks import HierarchicalEmitter

from benchmarks import read_floor
from benchmarks.read_floor import floor, real_id_lengths
from benchmarks.read_units import VOLUMES, ReadMeter, line


def metered() -> tuple[ReadMeter, HierarchicalEmitter]:
    emitter = HierarchicalEmitter()
    return ReadMeter(SimpleNamespace(meta=SimpleNamespace(events=emitter))), emitter


def call(emitter: HierarchicalEmitter, op: str, params: dict[str, Any],
         parsed: dict[str, Any]) -> None:
    """One call as botocore reports it: the parameters, then the parsed response."""
    context: dict[str, Any] = {}
    emitter.emit(f"before-parameter-build.dynamodb.{op}", params=params, context=context,
                 model=SimpleNamespace(name=op))
    emitter.emit(f"after-call.dynamodb.{op}", parsed=parsed, context=context,
                 model=SimpleNamespace(name=op))


def item(payload_bytes: int) -> dict[str, dict[str, str]]:
    return {"event_id": {"S": "e1"}, "event_payload": {"S": "x" * payload_bytes}}


def test_the_meter_sums_a_query_page_before_rounding_and_charges_an_empty_one() -> None:
    meter, emitter = metered()
    # 5 x (8+2 + 13+1000) = 5115 bytes: 2 x 4 KB, eventually consistent: 1 RRU
    call(emitter, "Query", {}, {"Items": [item(1000)] * 5})
    call(emitter, "Query", {}, {"Items": []})  # the 0.5 minimum
    call(emitter, "Query", {"ConsistentRead": True}, {"Items": [item(1000)] * 5})
    assert meter.total == 1.0 + 0.5 + 2.0 and meter.calls == {"Query": 3}
    meter.reset()
    assert meter.total == 0 and not meter.calls


def test_the_meter_rounds_each_fetched_item_and_charges_missing_keys_not_unprocessed_ones(
        ) -> None:
    meter, emitter = metered()
    keys = [{"event_id": {"S": f"e{i}"}} for i in range(4)]
    # got a 100 B item (1 unit) and a 5,000 B one (2 units); e2 unprocessed (retried later,
    # charged then); e3 missing (a read of nothing: 1 unit); eventually consistent: halved
    call(emitter, "BatchGetItem", {"RequestItems": {"t": {"Keys": keys}}},
         {"Responses": {"t": [item(100), item(5000)]},
          "UnprocessedKeys": {"t": {"Keys": [keys[2]]}}})
    assert meter.units == {"BatchGetItem": (1 + 2 + 1) / 2}


def test_the_meter_keeps_query_items_only_while_asked() -> None:
    meter, emitter = metered()
    call(emitter, "Query", {}, {"Items": [item(1)]})
    meter.keep = True
    call(emitter, "Query", {}, {"Items": [item(2), item(3)]})
    meter.keep = False
    call(emitter, "Query", {}, {"Items": [item(4)]})
    assert meter.entries == [item(2), item(3)]


def test_the_line_through_two_volumes_gives_the_fixed_cost_and_the_cost_per_1000() -> None:
    low, high = VOLUMES[0], VOLUMES[-1]
    # 17 RRU per run plus 34 per 1,000 events
    fixed, per_1000 = line({low: 17 + 34 * low / 1000, high: 17 + 34 * high / 1000})
    assert fixed == pytest.approx(17) and per_1000 == pytest.approx(34)


def entry(event_id: str) -> dict[str, Any]:
    """An entry of by_ingested_at_v3 as DynamoDB returns it."""
    from eventlake.hot.index import item_keys

    at = datetime(2026, 11, 10, 11, 40, tzinfo=UTC)
    return {"event_id": {"S": event_id},                              # 8 + len(id)
            "s": {"S": "2026-11-10#3"},                               # 1 + 12
            "k": {"B": item_keys(at, at, 1_790_000_000, "ab" * 32)}}  # 1 + 53


def test_the_floor_splits_entries_into_their_keys_and_prices_the_layouts_before(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(read_floor, "REALCASES", tmp_path / "absent")
    parts, rows, summary = floor([entry("abc"), entry("abc")], 2.5, {"~100 B": 100.0},
                                 {"~100 B": 40.0})
    assert parts == [["table key (event_id)", "11.0"], ["index keys (s, k)", "67.0"],
                     ["entry", "78.0"]]
    this = 78_000 / 8192  # 1,000 entries, eventually consistent
    # decoded: ingest_shard 12 + 12, ingest_key 10 + 27 + 1 + 3 (the id again), timestamp
    # 9 + 27, content_hash 12 + 64, expires_at 10 + 3 (1790000000: 3 significant digits)
    design = (11 + 24 + 41) * 1000 / 8192
    previous = (11 + 24 + 41 + 36 + 76 + 13) * 1000 / 8192
    assert rows == [
        [read_floor.THIS, f"{this:.1f}", f"{this * 2.5:.1f}"],
        [read_floor.PREVIOUS, f"{previous:.1f}", f"{previous * 2.5:.1f}"],
        [read_floor.DESIGN_KEYS, f"{design:.1f}", f"{design * 2.5:.1f}"],
        ["before's sweep per 1,000 more at ~100 B / one read of this index",
         f"{40 / this:,.1f}x", ""],
        ["before's life at ~100 B / this index's life", "", f"{100 / (this * 2.5):,.1f}x"]]
    assert summary["rru_floor_read"] == pytest.approx(this)
    assert summary["rru_floor_read_previous"] == pytest.approx(previous)
    assert summary["rru_floor_read_design_keys"] == pytest.approx(design)


def test_this_index_holds_the_id_once_so_a_longer_id_costs_its_length_once(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "gh.jsonl").write_text("\n".join(json.dumps({"id": "1" * n}) for n in (9, 11, 40))
                                       + "\n")
    monkeypatch.setattr(read_floor, "REALCASES", tmp_path)
    monkeypatch.setattr(read_floor, "REAL_IDS", {"GH": ("gh.jsonl", "id")})
    assert real_id_lengths() == {"GH (3 ids)": 11}
    _, rows, _ = floor([entry("abc")], 1.0, {})
    # the median id (11 chars) is 8 more than these: 8 bytes more per entry
    assert rows[3] == ["this index, GH (3 ids): median id 11 chars (these: 3)",
                       f"{(78 + 8) * 1000 / 8192:.1f}", f"{(78 + 8) * 1000 / 8192:.1f}"]


def test_the_floor_refuses_an_entry_that_is_not_this_indexs() -> None:
    bad = entry("abc") | {"ingest_key": {"S": "2026-11-10T11:40:00.000000Z#abc"}}
    with pytest.raises(ValueError, match="`abc`"):
        floor([bad], 1.0, {})

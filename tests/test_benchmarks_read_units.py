"""The read-units benchmark's arithmetic (benchmarks/read_units.py, read_floor.py): what its
meter counts per call by DynamoDB's sizing rules, the line through two volumes (fixed cost per
run, cost per 1,000 events), and the floor's parts and keys-only costs, against hand-computed
values. (The benchmark itself runs on moto for minutes: `python -m benchmarks read_units`.)"""

from __future__ import annotations

import json
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


def entry(event_id: str) -> dict[str, dict[str, str]]:
    return {"event_id": {"S": event_id},                              # 8 + len(id)
            "ingest_shard": {"S": "2026-11-10#3"},                    # 12 + 12
            "ingest_key": {"S": f"2026-11-10T11:40:00.000000Z#{event_id}"},  # 10 + 28 + id
            "content_hash": {"S": "h" * 20}}                          # 12 + 20


def test_the_floor_splits_entries_into_their_keys_and_prices_a_keys_only_index(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(read_floor, "REALCASES", tmp_path / "absent")
    parts, rows, summary = floor([entry("abc"), entry("abc")], 2.5, {"~100 B": 100.0})
    assert parts == [["table key (event_id)", "11.0"],
                     ["index keys (ingest_shard, ingest_key)", "65.0"],
                     ["projected (content_hash)", "32.0"], ["entry", "108.0"]]
    # keys only: 11 + 65 = 76 bytes; 1,000 reads of them, eventually consistent: 76000 / 8192
    per_read = 76_000 / 8192
    assert rows[1] == ["keys only, ids of 3 chars (these)", f"{per_read:.1f}",
                       f"{per_read * 2.5:.1f}"]
    assert rows[-2] == ["before's life at ~100 B / keys-only life (the most a projection can "
                        "gain)", "", f"{100 / (per_read * 2.5):,.1f}x"]
    assert summary["rru_floor_read_keys_only"] == pytest.approx(per_read)
    assert len(rows) == 5  # no real data set here: none printed


def test_the_floor_prices_a_compact_layout_against_the_before_sweep_and_life(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(read_floor, "REALCASES", tmp_path / "absent")
    _, rows, summary = floor([entry("abc")], 2.5, {"~100 B": 100.0}, {"~100 B": 40.0})
    # the compact entry: event_id 8 + 3, `s` 1 + 12, `k` 1 + 37 (ingested_at 8, timestamp 8,
    # expires_at 5, 16 bytes of the hash): 62 bytes, the id not repeated
    compact = 62_000 / 8192
    keys_only = 76_000 / 8192
    assert rows[2] == [read_floor.COMPACT, f"{compact:.1f}", f"{compact * 2.5:.1f}"]
    assert summary["rru_floor_read_compact"] == pytest.approx(compact)
    assert rows[3:] == [
        ["before's sweep per 1,000 more at ~100 B / one keys-only read",
         f"{40 / keys_only:,.1f}x", ""],
        ["before's sweep per 1,000 more at ~100 B / one compact-layout read",
         f"{40 / compact:,.1f}x", ""],
        ["before's life at ~100 B / keys-only life (the most a projection can gain)", "",
         f"{100 / (keys_only * 2.5):,.1f}x"],
        ["before's life at ~100 B / the compact layout's life", "",
         f"{100 / (compact * 2.5):,.1f}x"]]


def test_a_keys_only_entry_repeats_a_longer_id_in_both_keys(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "gh.jsonl").write_text("\n".join(json.dumps({"id": "1" * n}) for n in (9, 11, 40))
                                       + "\n")
    monkeypatch.setattr(read_floor, "REALCASES", tmp_path)
    monkeypatch.setattr(read_floor, "REAL_IDS", {"GH": ("gh.jsonl", "id")})
    assert real_id_lengths() == {"GH (3 ids)": 11}
    _, rows, _ = floor([entry("abc")], 1.0, {})
    # the median id (11 chars) is 8 more than these: 16 bytes more per entry (both keys)
    assert rows[2] == ["keys only, GH (3 ids): median id 11 chars",
                       f"{(76 + 16) * 1000 / 8192:.1f}", f"{(76 + 16) * 1000 / 8192:.1f}"]


def test_the_floor_refuses_an_entry_whose_sort_key_does_not_end_with_its_id() -> None:
    bad = entry("abc") | {"ingest_key": {"S": "2026-11-10T11:40:00.000000Z#zzz"}}
    with pytest.raises(ValueError, match="`abc`"):
        floor([bad], 1.0, {})

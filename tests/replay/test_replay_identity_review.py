"""review29: the content_hash-prefix identity against planted rows (NULL or non-hex
content_hash), a run without checkpoint after a checkpointed one, and a checkpoint whose digest
an earlier identity (the MD5 of `event_id|content_hash[:16]`) computed."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from test_replay_late import START, ColdTiers, Stopping, go, two_files

from eventlake.events.schema import EVENT_SCHEMA
from eventlake.replay.targets import DeliveryError


def plant_raw(tiers: ColdTiers, name: str, rows: dict[str, tuple[float, str | None]]) -> None:
    """A lake file `name`: event_id -> (minutes after START, content_hash as planted)."""
    tiers.cold.write(pa.Table.from_pylist(
        [{"event_id": e, "event_type": "click", "timestamp": START + timedelta(minutes=m),
          "ingested_at": START, "source": "shop", "subject": None,
          "event_payload": '{"n":1}', "content_hash": h} for e, (m, h) in rows.items()],
        schema=EVENT_SCHEMA), name)


def quiet(report: object) -> bool:
    return not any(getattr(report, name) for name in (
        "missed_before_resume", "vanished_before_resume", "late_and_vanished_before_resume",
        "missed_during_run", "vanished_during_run"))


PLANTED = {"p-text": (15, "not a hash"), "p-empty": (25, ""),
           "p-short": (35, "ab"), "p-zero": (45, "0" * 64), "p-zero2": (55, "0" * 64),
           "p-x": (65, "0x12"), "p-space": (66, " 12"), "p-u": (67, "1_2")}


def test_planted_rows_with_odd_content_hashes_raise_no_false_alarm_on_resume(
        tmp_path: Path) -> None:
    tiers = two_files(tmp_path / "lake")
    plant_raw(tiers, "planted", PLANTED)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(DeliveryError):
        go(tiers, Stopping(2), checkpoint=ckpt, batch_size=4)  # 8 sent, planted among them
    sink = Stopping(99)
    report = go(tiers, sink, checkpoint=ckpt, batch_size=4)
    assert report.resumed_after == 8 and len(sink.sent) == 8
    assert quiet(report), report.to_dict()


def test_a_run_without_checkpoint_after_a_checkpointed_one_raises_no_alarm(
        tmp_path: Path) -> None:
    tiers = two_files(tmp_path / "lake")
    plant_raw(tiers, "planted", PLANTED)
    first = go(tiers, Stopping(99), checkpoint=tmp_path / "ckpt", batch_size=4)
    second_sink = Stopping(99)
    second = go(tiers, second_sink, batch_size=4)
    assert first.sent == second.sent == 16 and len(second_sink.sent) == 16
    assert quiet(first) and quiet(second), (first.to_dict(), second.to_dict())


def md5_identity(event_id: str, content_hash: str | None) -> int:
    """The identity 19915af..1f8faaf wrote into version 2 checkpoints."""
    text = f"{event_id}|{(content_hash or '')[:16]}".encode()
    return int(hashlib.md5(text, usedforsecurity=False).hexdigest()[:16], 16)


def test_a_checkpoint_digested_by_the_earlier_identity_raises_no_false_alarm(
        tmp_path: Path) -> None:
    # given: a replay stopped after a0 b0 a1 b1, its checkpoint's digest as the MD5 identity
    # of the release before wrote it (same format version, 2)
    tiers = two_files(tmp_path / "lake")
    ckpt = tmp_path / "ckpt"
    with pytest.raises(DeliveryError):
        go(tiers, Stopping(1), checkpoint=ckpt, batch_size=4)
    data = json.loads(ckpt.read_text())
    old = 0
    for e in ("a0", "b0", "a1", "b1"):
        old ^= md5_identity(e, hashlib.sha256(e.encode()).hexdigest())
    ckpt.write_text(json.dumps({**data, "version": 2, "digest": f"{old:016x}"}))

    # when it is resumed on an unchanged lake: then nothing is reported late or vanished
    report = go(tiers, Stopping(99), checkpoint=ckpt, batch_size=4)
    assert report.resumed_after == 4
    assert quiet(report), report.to_dict()

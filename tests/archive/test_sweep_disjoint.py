"""The sweep's hook: after its writes it records which files are disjoint on event_id."""

from __future__ import annotations

import pyarrow as pa
from archive_support import NOW, World, hours

from eventlake.events.schema import EVENT_SCHEMA
from eventlake.lake.disjoint import verified_files


def test_the_sweep_verifies_todays_files_after_its_writes(world: World) -> None:
    today = NOW.date().isoformat()
    for k in range(2):  # what the stream path left today
        world.lake.write(pa.Table.from_pylist([{
            "event_id": f"s-{k}", "event_type": "order.placed",
            "timestamp": NOW.replace(hour=1), "ingested_at": NOW.replace(hour=1),
            "source": None, "subject": None, "event_payload": "{}",
            "content_hash": f"h-{k}"}], schema=EVENT_SCHEMA), f"stream-{k}")
    world.ingest(["a", "b"], NOW - hours(2))

    report = world.sweep(NOW - hours(1))

    files = world.lake.list_files(dts=[today])
    assert report.counts.archived == 2 and len(files) == 3
    assert verified_files(world.lake, files) == frozenset(f.path for f in files)

"""Where things live in a lake: the event files' partition column and the top-level folders.

    <root>/events/dt=YYYY-MM-DD/<name>.parquet   the events (`dt`: UTC date of `timestamp`)
    <root>/_quarantine/...                       what could not be archived, with its reason
    <root>/_eventlake/...                        lake state: marker, watermark, leases, records
"""

from __future__ import annotations

PARTITION = "dt"
EVENTS_DIR = "events"
QUARANTINE_DIR = "_quarantine"
STATE_DIR = "_eventlake"

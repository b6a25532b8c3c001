"""Whose lake this is: the table a lake's marker names, checked before a sweep or backfill writes.

`eventlake init` writes `_eventlake/lake.json` with the table the lake archives. A process whose
EVENTLAKE_TABLE and EVENTLAKE_LAKE_URI come from two deployments (staging's table, prod's lake)
would archive one table's events into the other's lake and move its watermark on the wrong
table's ingestion, so that lake's own unarchived events fall behind its watermark (out of
`events` until the expiry check finds them). A lake made before the marker names no table and
is only required to exist.
"""

from __future__ import annotations

import json

from eventlake.errors import ConfigError
from eventlake.lake.state import LAKE_MARKER
from eventlake.lake.store import Lake


def require_lake_of(lake: Lake, table: str) -> None:
    """Raise LakeNotFoundError unless the lake exists, ConfigError when its marker names a
    table other than `table` (one read of the marker, as `require_exists` makes anyway)."""
    if not refuse_another_table(lake, table):
        lake.require_exists()  # made before the marker (event partitions), or no lake at all


def refuse_another_table(lake: Lake, table: str) -> bool:
    """ConfigError when the lake's marker names a table other than `table` (`eventlake init`
    checks it before it provisions anything); whether the marker is there."""
    stored = lake.read_state(LAKE_MARKER)
    if stored is None:
        return False
    try:
        recorded = json.loads(stored.data).get("table")
    except (ValueError, AttributeError):
        recorded = None
    if isinstance(recorded, str) and recorded and recorded != table:
        raise ConfigError(
            f"lake `{lake.root}` archives table `{recorded}` (its marker, "
            f"_eventlake/{LAKE_MARKER}), not `{table}` (EVENTLAKE_TABLE): nothing was written; "
            "set EVENTLAKE_TABLE and EVENTLAKE_LAKE_URI to one table and its own lake "
            "(`eventlake init` with a new EVENTLAKE_LAKE_URI makes one). A lake handed to "
            "another table on purpose: change `table` in its marker")
    return True

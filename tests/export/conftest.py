"""The export tests' lake: `shop`, ten events of two types (tests/export/export_support.py)."""

from __future__ import annotations

import pytest
from export_support import write_shop

from eventlake.api import EventLake


@pytest.fixture
def shop(lake: EventLake) -> EventLake:
    return write_shop(lake)

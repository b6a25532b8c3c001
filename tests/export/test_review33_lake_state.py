"""Review 33: an export must not land in, or (with --overwrite) replace, the lake's state
(`_eventlake/`: marker, watermark, leases, compaction records) or its quarantine
(`_quarantine/`: records that could not be archived, never dropped silently). Before, only
`events/` and folders holding the lake were refused: `--out lake/_quarantine --overwrite`
deleted every quarantined record, `--out lake/_eventlake --overwrite` the marker and the
compaction records that make deletes crash-safe."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_support import SELECTION, shop_lake

from eventlake.api import EventLake
from eventlake.errors import ConfigError
from eventlake.lake.layout import QUARANTINE_DIR, STATE_DIR


@pytest.fixture
def shop(mocked_aws: None, tmp_path: Path) -> EventLake:
    lake = shop_lake(tmp_path)
    quarantined = tmp_path / "lake" / QUARANTINE_DIR / "2024-05-01" / "r-1.json"
    quarantined.parent.mkdir(parents=True)
    quarantined.write_text('{"reason": "undecodable"}')
    return lake


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("where", [STATE_DIR, QUARANTINE_DIR, f"{STATE_DIR}/x.parquet",
                                   f"{QUARANTINE_DIR}/2024-05-01/x.csv"])
def test_an_export_onto_or_into_the_lakes_state_or_quarantine_is_refused(
        shop: EventLake, tmp_path: Path, where: str) -> None:
    before = _tree(tmp_path / "lake")
    assert any(k.startswith(STATE_DIR) for k in before)  # the marker, at least

    with pytest.raises(ConfigError, match=rf"--out .*`{where.split('/')[0]}`"):
        shop.export(SELECTION, tmp_path / "lake" / where, format="csv"
                    if where.endswith(".csv") else "parquet", overwrite=True)

    assert _tree(tmp_path / "lake") == before

"""The quarantine: records that could not be archived, kept raw as JSON Lines under
`<root>/_quarantine/dt=YYYY-MM-DD/<name>.jsonl` with the reason and the rule they broke.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from eventlake.events.times import as_utc
from eventlake.lake.fs import LakeFile, LakeFS
from eventlake.lake.layout import QUARANTINE_DIR, LakeDataError, check_name, dt_filter

__all__ = ["LakeQuarantine", "QuarantineEntry"]


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A record that could not be archived, kept raw with the reason and the rule it broke."""

    reason: str
    rule: str
    record: Any
    source: str = "stream"
    quarantined_at: datetime | None = None
    """Set to the time of writing when None."""


class LakeQuarantine(LakeFS):
    """`quarantine` / `list_quarantine` / `read_quarantine` of `lake.Lake`."""

    def quarantine(self, entries: Sequence[QuarantineEntry], name: str, *,
                   now: datetime | None = None) -> str:
        """Write entries as JSON Lines to `_quarantine/dt=<UTC today>/<name>.jsonl`; its path.

        The same name (on the same day) rewrites the same file, so a retried batch replaces
        itself. Records are kept raw: bytes as base64, datetimes ISO, Decimals as exact text.
        """
        if not entries:
            raise LakeDataError("nothing to quarantine: `entries` is empty")
        now = as_utc(now or datetime.now(UTC))
        lines = [json.dumps({"reason": e.reason, "rule": e.rule,
                             "quarantined_at": (e.quarantined_at or now).isoformat(),
                             "source": e.source, "record": e.record},
                            default=_json_default, ensure_ascii=False, separators=(",", ":"))
                 for e in entries]
        data = ("\n".join(lines) + "\n").encode()
        path = (f"{self._base}/{QUARANTINE_DIR}/dt={now.date().isoformat()}/"
                f"{check_name(name, '.jsonl')}")
        self._publish(path, lambda sink: sink.write(data), False)
        return self._full(path)

    def list_quarantine(self, start: date | None = None, end: date | None = None
                        ) -> list[LakeFile]:
        return self._list(QUARANTINE_DIR, ".jsonl", dt_filter(start, end, None))

    def read_quarantine(self, start: date | None = None, end: date | None = None
                        ) -> list[QuarantineEntry]:
        entries = []
        for file in self.list_quarantine(start, end):
            with self._mapped(f"read `{file.path}`"), \
                    self.fs.open_input_stream(self.fs_path(file.path)) as f:
                text = f.read().decode()
            # By "\n" only: a line is one JSON document, which never holds a raw newline but
            # may hold U+0085 or U+2028 (written unescaped), where splitlines() would cut.
            for line in text.split("\n"):
                if line.strip():
                    raw = json.loads(line)
                    entries.append(QuarantineEntry(
                        raw["reason"], raw["rule"], raw["record"], raw["source"],
                        datetime.fromisoformat(raw["quarantined_at"])))
        return entries


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)  # never drop a record because one value is exotic

"""The quarantine: records that could not be archived, kept raw as JSON Lines under
`<root>/_quarantine/dt=YYYY-MM-DD/<name>.jsonl` with the reason and the rule they broke.

Every path writes here: the stream Lambda (MODIFYs, undecodable records, items that are not
events), the sweep's writer (items that are not events, reused event_ids) and compaction
(reused event_ids). `summarize_quarantine` counts them all for `eventlake status`.

A record may be quarantined more than once, in several files: Lambda re-delivers a batch that
failed after its quarantine file was written bisected in two (BisectBatchOnFunctionError), and
each half names its file from its own records; a sweep over the same window under other bounds
names its file anew; a re-delivery after midnight writes under another day. So every line
carries the record's identity (`key`: `record_key`, a digest of the record as stored, which a
re-delivered record repeats byte for byte and two distinct records never share: DynamoDB's
`eventID` and sequence number are in it), and every reader here keeps one line per key, the
first quarantined. De-duplicating on read costs no request and nothing on the write path;
writing one file per record instead would cost a PUT per record (a bulk MODIFY of 10,000 items
is 10,000 PUTs in the Lambda) and still double across midnight. Other engines reading the
JSON Lines count `distinct key`.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from eventlake.events.canonical import digest, kind_of, raw_identity
from eventlake.events.times import as_utc
from eventlake.lake.fs import LakeFile, LakeFS
from eventlake.lake.layout import QUARANTINE_DIR, LakeDataError, check_name, dt_filter

__all__ = ["QUARANTINE_FILES_READ", "LakeQuarantine", "QuarantineEntry", "QuarantineSummary",
           "RuleCount", "record_key"]

QUARANTINE_FILES_READ = 500
"""Files `summarize_quarantine` reads at most (the newest): one GET each on S3."""


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A record that could not be archived, kept raw with the reason and the rule it broke."""

    reason: str
    rule: str
    record: Any
    source: str = "stream"
    quarantined_at: datetime | None = None
    """Set to the time of writing when None."""


@dataclass(frozen=True, slots=True)
class RuleCount:
    """The quarantined records of one rule: how many, the newest one's time and reason, and
    the paths (`source`) that quarantined them."""

    rule: str
    records: int
    newest: datetime
    reason: str
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QuarantineSummary:
    """What the quarantine holds, for `eventlake status`."""

    where: str
    files: int
    """Quarantine files listed."""
    files_read: int
    """Of those, the newest ones read (at most `QUARANTINE_FILES_READ`)."""
    records: int
    """Distinct records in the files read (`record_key`)."""
    rules: tuple[RuleCount, ...]
    """By rule, most records first."""
    unreadable: tuple[str, ...] = ()
    """Files that are not quarantine JSON Lines, each with its problem (not counted)."""
    repeats: int = 0
    """Lines that quarantined a record again (not counted: see the module's docstring)."""

    @property
    def newest(self) -> datetime | None:
        return max((r.newest for r in self.rules), default=None)

    def as_dict(self) -> dict[str, Any]:
        newest = self.newest
        return {"where": self.where, "records": self.records, "files": self.files,
                "files_read": self.files_read,
                "newest": newest.isoformat() if newest is not None else None,
                "by_rule": {r.rule: {"records": r.records, "newest": r.newest.isoformat(),
                                     "reason": r.reason, "sources": list(r.sources)}
                            for r in self.rules},
                "repeats": self.repeats, "unreadable": list(self.unreadable)}


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
        lines = []
        for e in entries:
            record = json.dumps(e.record, default=_json_default, ensure_ascii=False,
                                separators=(",", ":"))
            head = json.dumps({"reason": e.reason, "rule": e.rule,
                               "quarantined_at": (e.quarantined_at or now).isoformat(),
                               "source": e.source, "key": record_key(json.loads(record))},
                              ensure_ascii=False, separators=(",", ":"))
            lines.append(f'{head[:-1]},"record":{record}}}')
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
        """Every record quarantined on days `start`..`end`, once (its first quarantine among
        those days' files), in the order of the files."""
        return _once(pair for file in self.list_quarantine(start, end)
                     for pair in self._read_quarantine_file(file.path))[0]

    def summarize_quarantine(self, max_files: int = QUARANTINE_FILES_READ
                             ) -> QuarantineSummary:
        """Count the quarantined records of every path by rule, with each rule's newest.

        Cost: one listing of `_quarantine/` (on S3 one LIST, or one per day folder when few),
        then one read of each of the newest `max_files` files (small: JSON Lines of the
        refused records; in parallel on S3). Older files are listed, not read: `files_read`
        < `files` says so. A file that is not quarantine JSON Lines is named in `unreadable`
        rather than failing the status.
        """
        files = self.list_quarantine()
        # newest by the day and the store's time: names (digests, sequence numbers) are not
        # in the order of writing, and a day of a MODIFY storm holds more than `max_files`
        newest = sorted(files, key=lambda f: (f.dt, f.modified or _EPOCH, f.path)
                        )[-max_files:] if max_files else []
        unreadable: list[str] = []

        def read(path: str) -> list[tuple[str, QuarantineEntry]]:
            try:
                return self._read_quarantine_file(path)
            except FileNotFoundError:  # deleted since listed (by hand: nothing else deletes)
                unreadable.append(f"{path}: gone since it was listed")
            except (LakeDataError, ValueError, KeyError, TypeError) as exc:
                unreadable.append(f"{path}: {type(exc).__name__}: {exc}")
            return []

        entries, repeats = _once(pair for pairs in self._map(read, [f.path for f in newest])
                                 for pair in pairs)
        count = Counter(e.rule for e in entries)
        rules = []
        for rule, records in sorted(count.items(), key=lambda kv: (-kv[1], kv[0])):
            mine = [e for e in entries if e.rule == rule]
            last = max(mine, key=_quarantined_at)
            rules.append(RuleCount(rule, records, _quarantined_at(last), last.reason,
                                   tuple(sorted({e.source for e in mine}))))
        return QuarantineSummary(self._full(f"{self._base}/{QUARANTINE_DIR}"), len(files),
                                 len(newest), len(entries), tuple(rules),
                                 tuple(sorted(unreadable)), repeats)

    def _read_quarantine_file(self, path: str) -> list[tuple[str, QuarantineEntry]]:
        """Each line's entry with its record's key (computed again: a line may be planted
        or predate `key`)."""
        with self._mapped(f"read `{path}`"), \
                self.fs.open_input_stream(self.fs_path(path)) as f:
            text = f.read().decode()
        entries = []
        # By "\n" only: a line is one JSON document, which never holds a raw newline but
        # may hold U+0085 or U+2028 (written unescaped), where splitlines() would cut.
        for number, line in enumerate(text.split("\n"), 1):
            if line.strip():
                raw = json.loads(line)
                texts = [raw[field] for field in _TEXT_FIELDS]
                if wrong := [f for f, v in zip(_TEXT_FIELDS, texts, strict=True)
                             if not isinstance(v, str)]:
                    raise LakeDataError(
                        f"line {number} of `{path}` is not a quarantine line: "
                        + ", ".join(f"`{f}` is {kind_of(raw[f])}, not text" for f in wrong))
                reason, rule, source, at = texts
                entries.append((record_key(raw["record"]), QuarantineEntry(
                    reason, rule, raw["record"], source, as_utc(datetime.fromisoformat(at)))))
        return entries


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_TEXT_FIELDS = ("reason", "rule", "source", "quarantined_at")
"""A quarantine line's fields that are text (a planted line may hold anything)."""


def record_key(record: Any) -> str:
    """The identity of a quarantined record as stored (JSON values): 32 hex digits of the
    SHA-256 of its JSON with keys sorted. The same record quarantined twice has one key."""
    return digest(raw_identity(record))[:32]


def _once(keyed: Iterable[tuple[str, QuarantineEntry]]) -> tuple[list[QuarantineEntry], int]:
    """One entry per key, the earliest quarantined (in the order keys first appear), and how
    many lines repeated a key."""
    kept: dict[str, QuarantineEntry] = {}
    repeats = 0
    for key, entry in keyed:
        held = kept.get(key)
        if held is not None:
            repeats += 1
            if _quarantined_at(entry) >= _quarantined_at(held):
                continue
        kept[key] = entry
    return list(kept.values()), repeats


def _quarantined_at(entry: QuarantineEntry) -> datetime:
    return entry.quarantined_at or datetime.min.replace(tzinfo=UTC)


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

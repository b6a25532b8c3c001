"""`eventlake put`: events from JSON / JSON Lines files or stdin, stored in batches.

Each raw event keeps where it came from (`file line 3`, `file item 3` of a JSON list), so a
problem names that place rather than the event's position in its put_many call. Records of
another shape (GH Archive, CloudTrail...) are refused with the `--map`/`--unmapped` to use.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from eventlake.cli.common import open_lake

BATCH = 1000
"""Events per put_many call when reading a file: bounded memory, regular progress."""


class Unparseable(NamedTuple):
    """A record that is not usable JSON; `error` is what to print."""

    error: str
    rule: str = "json.unparseable"


class Record(NamedTuple):
    """One raw event and where it came from."""

    where: str
    """`file line 3`, `file item 3` (of a JSON list), `stdin line 3`..."""
    item: Any
    """The parsed JSON value, or Unparseable."""


@dataclass
class _Tally:
    """What a put has answered so far."""

    totals: dict[str, int]
    problems: list[str] = field(default_factory=list)
    foreign: Any = None
    """The first record refused for its shape, when no --map was given."""

    def counts(self) -> str:
        return "  ".join(f"{k} {v}" for k, v in self.totals.items())

    def print_problems(self, limit: int) -> None:
        for line in self.problems[:limit]:
            print(f"  {line}", file=sys.stderr)
        if len(self.problems) > limit:
            print(f"  ... and {len(self.problems) - limit} more problems "
                  "(--max-problems N or --json for all)", file=sys.stderr)


def cmd_put(args: argparse.Namespace) -> int:
    from eventlake.hot.results import Outcome

    lake = open_lake(args)
    tally = _Tally(dict.fromkeys((o.value for o in Outcome), 0))
    try:
        _put(args, lake, tally)
    except KeyboardInterrupt:
        # Say what was answered; the writes of the batch in flight not yet started were
        # cancelled (put_many), those already sent landed or not: running again is safe.
        tally.print_problems(args.max_problems)
        print(tally.counts())
        print("eventlake put: interrupted; the counts above are what was answered before it. "
              f"Events of the batch in flight (up to {BATCH:,}) may or may not be stored: run "
              "the same command again (safe: stored events come back as `duplicate`)",
              file=sys.stderr)
        raise
    tally.print_problems(args.max_problems)
    if tally.foreign is not None:
        print(shape_hint(tally.foreign), file=sys.stderr)
    print(tally.counts())
    totals = tally.totals
    return 1 if totals["invalid"] or totals["conflict"] or totals["failed"] else 0


def _put(args: argparse.Namespace, lake: Any, tally: _Tally) -> None:
    from eventlake.errors import InvalidEventError, TableNotFoundError
    from eventlake.events.fieldmap import Unmapped, parse_field_map, remap
    from eventlake.hot.results import TABLE_MISSING

    mapping = parse_field_map(args.map or [])
    unmapped = Unmapped(args.unmapped)
    totals, problems = tally.totals, tally.problems
    read = 0
    for batch in read_batches(args.files):
        ready: list[Record] = []  # the raw events in the seed shape
        for where, item in batch:
            if isinstance(item, Unparseable):
                totals["invalid"] += 1
                problems.append(f"{where}: {item.error} [rule {item.rule}]")
                continue
            try:
                ready.append(Record(where, remap(item, mapping, unmapped)))
            except InvalidEventError as exc:
                totals["invalid"] += 1
                problems.append(f"{where}: invalid: {without_position(str(exc))}")
        results = lake.put_many([r.item for r in ready]) if ready else []
        missing = next((r for r in results if r.rule == TABLE_MISSING), None)
        if missing is not None:  # every event would say it: say it once, and stop reading
            raise TableNotFoundError(missing.message)
        for record, result in zip(ready, results, strict=True):
            totals[result.outcome.value] += 1
            if args.json:
                fields = {k: v for k, v in result.to_dict().items() if k != "position"}
                print(json.dumps({"input": record.where, **fields}))
            if result.rule == "event.unknown_field" and not mapping and tally.foreign is None:
                tally.foreign = record.item
            if not result.ok:
                problems.append(f"{record.where}: {result.outcome.value}: "
                                f"{without_position(result.message)}")
        read += len(batch)
        if read >= 10 * BATCH:
            print(f"  ... {read:,} events read", file=sys.stderr)


_POSITION = re.compile(r"^event #\d+(: | )")
"""How a message begins when it names the event by its position in its put_many call
(`InvalidEventError`: `event #3: ...`, or `event #3 `e-1`: ...` when the event has an id)."""


_GUESSES = {
    "event_id": ("event_id", "id", "eventID", "EventId", "eventId", "uuid"),
    "event_type": ("event_type", "type", "EventName", "eventName", "event", "name", "kind"),
    "timestamp": ("timestamp", "created_at", "time", "EventTime", "eventTime", "ts"),
    "event_payload": ("event_payload", "payload", "data", "detail", "CloudTrailEvent", "body"),
}
"""Record fields that often hold each event field, for the map `shape_hint` suggests."""


def shape_hint(record: Any) -> str:
    """What to do about records of another shape: `--map` and `--unmapped`, with a map guessed
    from `record`'s own fields when they look familiar (else the GH Archive one)."""
    keys = list(record) if isinstance(record, dict) else []
    guessed = {field: next((k for k in names if k in keys), None)
               for field, names in _GUESSES.items()}
    if guessed["event_type"] is None:
        guessed = {"event_id": "id", "event_type": "type", "timestamp": "created_at",
                   "event_payload": "payload"}
    pairs = ",".join(f"{field}={source}" for field, source in guessed.items() if source)
    return ("  hint: these records are not in an event shape (seed, CloudEvents, EventBridge); "
            "name the fields that hold each event field with --map, and say what to do with "
            "the rest with --unmapped payload|drop|reject, e.g.\n"
            f"    eventlake put --map {pairs} --unmapped payload FILE")


def without_position(message: str | None) -> str | None:
    """`message` without the event's position `#N` (the reader has the file and line instead):
    `event #3 `e-1`: ...` -> `event `e-1`: ...`; `event #3: ...` -> `...` (nothing else named
    the event). Any other message is returned as it is."""
    if not message or not (placed := _POSITION.match(message)):
        return message
    rest = message[placed.end():]
    return rest if placed.group(1) == ": " else f"event {rest}"


def read_batches(files: Sequence[str]) -> Iterator[list[Record]]:
    """Raw events in batches of BATCH. `.jsonl`/`.ndjson` files stream line by line; other
    inputs are read whole and taken as one JSON document, else as JSON Lines."""
    batch: list[Record] = []
    for name in files:
        label = "stdin" if name == "-" else name
        if name == "-" and sys.stdin.isatty():
            print("eventlake put: reading events from stdin (JSON, or JSON lines; Ctrl-D ends "
                  "them, Ctrl-C stops; or name files: eventlake put FILE...)", file=sys.stderr)
        for record in _read_one(name, label):
            batch.append(record)
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _read_one(name: str, label: str) -> Iterator[Record]:
    from eventlake.events.canonical import DuplicateKeyError, loads_exact

    if name != "-" and name.endswith((".jsonl", ".ndjson")):
        with Path(name).open(encoding="utf-8-sig") as lines:
            yield from _json_lines(lines, label)
        return
    text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8-sig")
    try:
        whole = loads_exact(text) if text.strip() else []
    except DuplicateKeyError as exc:  # one valid JSON document, but ambiguous
        yield Record(label, Unparseable(
            f"invalid: {exc}, so which value is meant is unknown; nothing from this input was "
            "stored: send each key once", "json.duplicate_key"))
        return
    except ValueError as exc:
        # Lines end at "\n" only: str.splitlines also splits at U+2028 and other characters
        # that JSON allows inside strings, which would break records and shift line numbers.
        split = text.split("\n")
        if isinstance(exc, json.JSONDecodeError) and _broken_document(split, exc):
            # one error, where it is; nothing stored
            yield Record(f"{label} line {exc.lineno} column {exc.colno}",
                         Unparseable(f"not JSON ({exc.msg})"))
            return
        yield from _json_lines(split, label)
        return
    if isinstance(whole, dict) and set(whole) == {"events"}:
        whole = whole["events"]
    for n, item in enumerate(whole if isinstance(whole, list) else [whole], 1):
        yield Record(f"{label} item {n}", item)


def _broken_document(lines: list[str], exc: json.JSONDecodeError) -> bool:
    """Whether input that is not one JSON document is one with a syntax error (a list or an
    object over several lines), rather than JSON lines: its first line is not JSON on its own,
    and the document's parse got past that line before failing."""
    from eventlake.events.canonical import loads_exact

    first = next(n for n, line in enumerate(lines, 1) if line.strip())
    if exc.lineno <= first:
        return False
    try:
        loads_exact(lines[first - 1])
    except ValueError:
        return True
    return False


def _json_lines(lines: Iterable[str], label: str) -> Iterator[Record]:
    from eventlake.events.canonical import DuplicateKeyError, loads_exact

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{label} line {lineno}"
        try:
            yield Record(where, loads_exact(line))
        except DuplicateKeyError as exc:
            yield Record(where, Unparseable(f"invalid: {exc}, so which value is meant is "
                                            "unknown: send each key once", "json.duplicate_key"))
        except json.JSONDecodeError as exc:  # its position in the line, not "line 1 ..."
            yield Record(where, Unparseable(f"not JSON ({exc.msg} at column {exc.colno})"))
        except ValueError as exc:
            yield Record(where, Unparseable(f"not JSON ({exc})"))


__all__ = ["BATCH", "Record", "Unparseable", "cmd_put", "read_batches", "shape_hint",
           "without_position"]

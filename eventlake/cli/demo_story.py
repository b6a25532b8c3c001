"""What `eventlake demo` says, built only from what happened: the stream Lambda's own reports
(the JSON line it logs per batch), the folder the demo keeps, and the commands to try next.

Kept apart from `demo` so a test can hold each printed number against the report it came from.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from eventlake.errors import ConfigError

DEFAULT_FOLDER = "demo-lake"
"""Where `eventlake demo` (and `make demo`) keeps its lake and outputs, under the current folder."""
MARKER = ".eventlake-demo"
"""A file in the demo's folder: a folder holding it may be emptied by the next demo."""
STREAM_LOGGER = "eventlake.handlers.stream"
COUNTS = ("records", "archived", "already_archived", "quarantined", "modified", "ttl_removals",
          "other_removals", "removed_checked", "removed_archived")
"""The stream handler's per-batch counts the demo narrates (its log line has them)."""


def prepare_folder(folder: Path) -> Path:
    """An empty `folder` for the demo, marked as the demo's; a folder the demo made before is
    emptied (a second `make demo` starts afresh), any other non-empty folder is refused."""
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARKER).is_file():
            raise ConfigError(
                f"`{folder}` exists and was not made by `eventlake demo`: nothing was changed; "
                "remove it, or give another folder with --keep DIR")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by `eventlake demo`: the next demo empties this folder\n",
                                 encoding="utf-8")
    return folder


class StreamReports(logging.Handler):
    """Collects the stream handler's per-batch reports (its `stream batch` log lines) while
    attached: `with StreamReports() as reports: ...`, then `reports.total()`."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.batches: list[dict[str, Any]] = []
        self._level = logging.NOTSET
        self._propagate = True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.loads(record.getMessage())
        except ValueError:
            return
        if isinstance(line, dict) and line.get("msg") == "stream batch":
            self.batches.append(line)

    def __enter__(self) -> StreamReports:
        logger = logging.getLogger(STREAM_LOGGER)
        self._level = logger.level
        if logger.getEffectiveLevel() > logging.INFO:  # the reports are INFO lines
            logger.setLevel(logging.INFO)
        # collected, not echoed: the demo narrates them (a handler Prefect installed on the
        # root logger would otherwise print each raw JSON line amid the narration)
        self._propagate, logger.propagate = logger.propagate, False
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger(STREAM_LOGGER)
        logger.removeHandler(self)
        logger.setLevel(self._level)
        logger.propagate = self._propagate

    def total(self) -> dict[str, int]:
        """Each count of `COUNTS` summed over the batches seen, and `batches`."""
        sums = {key: sum(int(b.get(key) or 0) for b in self.batches) for key in COUNTS}
        return {"batches": len(self.batches), **sums}


def archive_line(total: dict[str, int]) -> str:
    """The archive step: what the stream Lambda reported for the table's first records."""
    return (f"the stream Lambda's reports: {total['records']:,} records in "
            f"{total['batches']} batch(es); archived {total['archived']:,}, already in the lake "
            f"{total['already_archived']:,}, quarantined {total['quarantined']:,}")


def ttl_lines(expired: int, total: dict[str, int], rows_before: int, rows_after: int
              ) -> list[str]:
    """The TTL step: the emulated deletes, what the stream Lambda reported for the records it
    then received (the removals, and the inserts it had not seen yet), and the lake's rows."""
    removals = total["ttl_removals"] + total["other_removals"]
    lines = [f"{expired:,} items deleted by the emulated TTL",
             f"the stream Lambda's reports: {total['records']:,} records in {total['batches']} "
             f"batch(es): {removals:,} REMOVE ({total['ttl_removals']:,} marked as TTL deletes, "
             f"{total['other_removals']:,} not), archived {total['archived']:,}, already in the "
             f"lake {total['already_archived']:,}"]
    if total["other_removals"]:
        lines.append("(moto's deletes carry no TTL identity, so the Lambda counts them as other "
                     "removals; on AWS a TTL delete says it is one)")
    if total["removed_checked"]:
        lines.append(f"{total['removed_checked']:,} REMOVEs no expiry check had vouched for were "
                     "checked against the lake: "
                     f"{total['removed_archived']:,} archived from their old images")
    archived = total["archived"] + total["removed_archived"]
    expected = rows_before + archived
    if rows_after == expected:
        verdict = f"= {rows_before:,} + the {archived:,} archived: no REMOVE deleted a row"
    else:
        verdict = (f"expected {rows_before:,} + the {archived:,} archived = "
                   f"{expected:,}: {expected - rows_after:+,} rows unaccounted for")
    lines.append(f"the lake's rows: {rows_before:,} before, {rows_after:,} after {verdict}")
    return lines


def next_commands(lake_dir: Path, today: date) -> list[str]:
    """The shell lines to try the kept lake next: put `eventlake` on the PATH, name the lake,
    then a query, a replay and an export (the table lived in the demo's moto: `--cold-only`)."""
    here = Path.cwd()
    lake = _shown(lake_dir, here)
    folder = _shown(lake_dir.parent, here)
    start, end = (today - timedelta(days=7)).isoformat(), (today + timedelta(days=1)).isoformat()
    lines = []
    if sys.prefix != sys.base_prefix:  # a virtualenv: its activate script puts us on the PATH
        lines.append(f". {shlex.quote(_shown(Path(sys.prefix) / 'bin' / 'activate', here))}")
    lines += [
        f"export EVENTLAKE_LAKE_URI={shlex.quote(lake)}",
        'eventlake sql --cold-only "SELECT event_type, count(*) AS events FROM events '
        'GROUP BY ALL ORDER BY events DESC"',
        f"eventlake replay --cold-only --from {start} --to {end} --type order_placed "
        f"--target {shlex.quote(f'jsonl:{folder}/orders.jsonl')}",
        f"eventlake export --cold-only --from {start} --to {end} --format csv "
        f"--out {shlex.quote(f'{folder}/week.csv')}",
    ]
    return lines


def _shown(path: Path, here: Path) -> str:
    """`path` relative to `here` when inside it (shorter to type), else absolute."""
    path = path.resolve()
    try:
        return os.fspath(path.relative_to(here.resolve())) or "."
    except ValueError:
        return os.fspath(path)


__all__ = ["DEFAULT_FOLDER", "MARKER", "StreamReports", "archive_line", "next_commands",
           "prepare_folder", "ttl_lines"]

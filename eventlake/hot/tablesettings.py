"""Settings every writer and reader of a table must agree on, recorded on the table itself.

    eventlake:index_shards            the index's write shards per day: a reader that queries
                                      fewer shards than a writer used misses events, and every
                                      guard stays green
    eventlake:retention_days          sets expires_at, which the TTL guard and the sweep's first
                                      window rely on
    eventlake:clock_skew_seconds      how far behind the watermark the sweep, the TTL guard and
    eventlake:archive_settle_seconds  `events_hot` re-read (skew), and how far behind now the
                                      watermark stays (settle). A write keeps retrying for their
                                      sum less the last attempt's timeouts
                                      (`Settings.write_retry_seconds`): a producer with larger
                                      values than the sweeps could land a write behind every
                                      sweep window

`eventlake init` records them as tags of the DynamoDB table (tags, not lake state: the ingest
Lambda reads no S3). Every process reads them once, on its first use of the hot tier, and keeps
what it agreed on for its life (a warm Lambda too); the sweep reads them again at the start of
every run (`HotStore.agree(..., fresh=True)`), a reader's window (`events_hot`, `status`) when
they are older than READ_RECHECK_SECONDS (`HotStore.reader_settings`):

    recorded, not set by the process      -> adopted
    recorded, set to the same value       -> used
    recorded, set to another value        -> ConfigError naming both (the process refuses)
    not recorded (table older than this)  -> the process's own value, and a WARNING to run init

Values are parsed like the variables: shards an integer 1-100, days a finite number > 0,
seconds a finite number >= 0; a tag edited into anything else is a ConfigError naming the tag,
its text and what it should be.

Changing the retention or the settle on a live table is not supported: events already written
carry the old expiry times, and a writer's budget and the watermark's lag both depend on the
settle (either direction opens a gap while processes holding the old value run). The shard
count may change: raising it is safe (readers query the larger range), and lowering it hides
nothing, because the lake remembers the largest count in force and readers that have the lake
query that many shards (lake/shards.py).

The clock skew may be raised on a live table (`eventlake init` with the larger
EVENTLAKE_CLOCK_SKEW_SECONDS updates the tag; `raise_on_init`), and only raised:

    writers holding the old (smaller) skew   retry for less than the new look-back: safe
    writers started after the raise          adopt it, and may land writes up to the new skew
                                             behind the watermark
    the sweep                                reads the tag at the start of every run, so its
                                             next run looks back the new skew, and records it
                                             in the watermark (`Watermark.skew_seconds`), from
                                             which every reader of the window starts
    a process set explicitly to the old one  refuses (ConfigError naming both) when it next
                                             reads the tags: update its variable

Lowering it is refused by `init` (a ConfigError naming both values): running writers keep their
longer budget, and the watermark keeps the largest look-back anyway.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from eventlake.config import Settings, env_name_of
from eventlake.errors import ConfigError

__all__ = ["RAISABLE", "READ_RECHECK_SECONDS", "RECHECK_SECONDS", "TABLE_TAGS",
           "RecordedSettings", "adopt", "describe_value", "disagreement", "parse_tag",
           "raise_on_init", "read_tags", "recorded_of", "tag_value", "tags_for"]

TABLE_TAGS: dict[str, str] = {
    "index_shards": "eventlake:index_shards",
    "retention_days": "eventlake:retention_days",
    "clock_skew_seconds": "eventlake:clock_skew_seconds",
    "archive_settle_seconds": "eventlake:archive_settle_seconds",
}
"""Setting -> the tag of the table that records it."""
RECHECK_SECONDS = 60.0
"""How long a read of the table's tags that found settings missing is trusted before it is read
again (ListTagsOfResource is eventually consistent right after `init` tags a table)."""
READ_RECHECK_SECONDS = 60.0
"""How old the record a reader's window starts from may get (`RecordedSettings.for_reader`): a
long-lived connection reads the tags again after this long, so a clock skew raised by `init`
reaches its next query (a producer started after the raise may land writes that far behind the
watermark, and they are in no lake file before the next sweep). Writers keep theirs for life."""
RAISABLE = frozenset({"clock_skew_seconds"})
"""Recorded settings `eventlake init` may raise on a live table (never lower)."""
_EXPECTED = {"index_shards": "an integer from 1 to 100", "retention_days": "a number of days > 0",
             "clock_skew_seconds": "a number of seconds >= 0",
             "archive_settle_seconds": "a number of seconds >= 0"}
_log = logging.getLogger(__name__)


def tag_value(name: str, value: int | float) -> str:
    """The text a setting is recorded as (`8`, `30`, `7.5`)."""
    if name == "index_shards":
        return str(int(value))
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def tags_for(settings: Settings) -> list[dict[str, str]]:
    """The tags that record `settings` on a table (DynamoDB's Tags shape)."""
    return [{"Key": tag, "Value": tag_value(name, getattr(settings, name))}
            for name, tag in TABLE_TAGS.items()]


def parse_tag(name: str, text: str, table: str) -> int | float:
    """The value a tag records; ConfigError when someone edited it into something else."""
    tag = TABLE_TAGS[name]
    try:
        if name == "index_shards":
            shards = int(text)
            if 1 <= shards <= 100:
                return shards
        else:
            number = float(text)
            low_ok = number > 0 if name == "retention_days" else number >= 0
            if math.isfinite(number) and low_ok:
                return number
    except ValueError:
        pass
    raise ConfigError(f"table `{table}` has tag `{tag}`=`{text}`, which is not "
                      f"{_EXPECTED[name]} ({env_name_of(name)}): every process of the table "
                      "refuses to run, `eventlake init` too; set the tag back to the value the "
                      "table was initialised with (`aws dynamodb tag-resource --resource-arn "
                      f"<the table's ARN> --tags Key={tag},Value=<value>`)")


def describe_value(name: str, value: int | float) -> str:
    """`8 index shards`, `a retention of 30 days`, `a clock skew of 600 s`: for messages."""
    if name == "index_shards":
        return f"{value} index shards"
    if name == "clock_skew_seconds":
        return f"a clock skew of {value:g} s"
    if name == "archive_settle_seconds":
        return f"an archive settle of {value:g} s"
    return f"a retention of {value:g} days"


def disagreement(settings: Settings, name: str, recorded: int | float, table: str) -> str:
    """Why a process set to another value than the table's refuses: the variable, both values,
    the tag, and the way out."""
    var = settings.env_name(name)
    mine = getattr(settings, name)
    recorded_as = "was initialised with"
    if name in RAISABLE:
        if mine > recorded:
            change = f"to raise it on a live table run `eventlake init` with {var}={mine:g}"
        else:  # `init` lowering it, or a process configured before someone raised it
            recorded_as = "records"
            change = (f"it is never lowered on a live table (`eventlake init` or the stack may "
                      f"have raised it since this process was configured): set {var}="
                      f"{recorded:g}")
    else:
        change = "changing it on a live table is not supported"
    return (f"{var}={mine:g} but table `{table}` {recorded_as} "
            f"{describe_value(name, recorded)} (tag `{TABLE_TAGS[name]}`): every writer and "
            f"reader must agree, and {change}; unset {var} to use the table's value")


def raise_on_init(settings: Settings, name: str, recorded: int | float, table: str) -> bool:
    """Whether `eventlake init`, run with `settings` on a table that records `recorded` for
    `name`, changes the tag: True for a raise of a RAISABLE setting the process set
    explicitly; False when it agrees or did not set it; ConfigError otherwise."""
    mine = getattr(settings, name)
    if name not in settings.explicit or mine == recorded:
        return False
    if name in RAISABLE and mine > recorded:
        return True
    raise ConfigError(disagreement(settings, name, recorded, table))


def adopt(settings: Settings, recorded: Mapping[str, str], table: str) -> Settings:
    """`settings` with the values recorded on `table` (field -> tag text) adopted.

    Raises ConfigError when a field the process set explicitly differs from the recorded one.
    Fields with nothing recorded keep the process's value.
    """
    changes: dict[str, Any] = {}
    for name in TABLE_TAGS:
        if name not in recorded:
            continue
        value = parse_tag(name, recorded[name], table)
        if getattr(settings, name) == value:
            continue
        if name in settings.explicit:
            raise ConfigError(disagreement(settings, name, value, table))
        changes[name] = value
    if not changes:
        return settings
    try:
        return settings.with_(**changes)
    except ConfigError as exc:  # e.g. the safety margin no longer fits the table's retention
        adopted = ", ".join(describe_value(n, v) for n, v in changes.items())
        raise ConfigError(f"{exc} (with {adopted}, as recorded on table `{table}`)") from exc


def recorded_of(tags: Mapping[str, str]) -> dict[str, str]:
    """The recorded settings among a table's tags (field -> tag text)."""
    return {name: tags[tag] for name, tag in TABLE_TAGS.items() if tag in tags}


def read_tags(call: Callable[[Callable[[], Any]], Any], ddb: Any, arn: str) -> dict[str, str]:
    """Every tag of the resource `arn` (ListTagsOfResource pages), each page through `call`
    (the store's error mapping)."""
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn}
    while True:
        response = call(lambda: ddb.list_tags_of_resource(**kwargs))
        tags.update({t["Key"]: t["Value"] for t in response.get("Tags", [])})
        token = response.get("NextToken")
        if not token:
            return tags
        kwargs["NextToken"] = token


class RecordedSettings:
    """The settings recorded on one table, as one store sees them: read on first use, then kept.

    `read` returns the record (field -> tag text), or None when the table does not exist (not
    kept: `init` may create it). A record missing some tags is read again after
    RECHECK_SECONDS: tags are eventually consistent, so a read right after `init` may not see
    them yet (and an old table may be initialised later). Thread-safe: one read per store,
    not per thread.
    """

    def __init__(self, settings: Settings, table: str,
                 read: Callable[[], dict[str, str] | None], *,
                 recorded: dict[str, str] | None = None) -> None:
        """`recorded`: the record when already known, e.g. `{}` for a store that only builds
        items (benchmarks): nothing is read."""
        self.settings = settings
        self.table = table
        self._read = read
        self._recorded = recorded
        self._recheck_at: float | None = None
        self._read_at: float | None = None
        """When the record was last read (monotonic seconds); None: given, never read."""
        """When an incomplete record is read again (monotonic seconds); None: complete."""
        self._warned = False
        self._agreed: Settings | None = None
        self._lock = threading.Lock()

    def recorded(self) -> dict[str, str] | None:
        """The record (field -> tag text); None when the table does not exist."""
        if self._due():
            with self._lock:
                if self._due():
                    recorded = self._read()
                    self._read_at = time.monotonic()
                    complete = recorded is None or all(n in recorded for n in TABLE_TAGS)
                    self._recheck_at = (None if complete
                                        else time.monotonic() + RECHECK_SECONDS)
                    if recorded is not None and not complete:
                        self._warn_once(recorded)
                    self._recorded = recorded
        return self._recorded

    def agreed(self) -> Settings:
        """The store's settings with the recorded values adopted (`adopt`), kept for the life
        of the store once the record is complete; the store's own while there is no table."""
        agreed = self._agreed
        if agreed is None:
            recorded = self.recorded()
            if recorded is None:  # no table yet: its own error comes with the first request
                return self.settings
            agreed = adopt(self.settings, recorded, self.table)
            if self._recheck_at is None:  # complete: kept for the life of the store
                self._agreed = agreed
        return agreed

    def for_reader(self) -> Settings:
        """`agreed`, with the record read again when it is older than READ_RECHECK_SECONDS:
        for windows read behind the watermark (`events_hot`, `status`) in a long-lived
        process, which must start no later than a producer started after a raise may write."""
        read_at = self._read_at
        if read_at is not None and time.monotonic() - read_at >= READ_RECHECK_SECONDS:
            self.forget()
        return self.agreed()

    def agree(self, settings: Settings, *, fresh: bool = False) -> Settings:
        """`settings` (another process's view) with the recorded values adopted. `fresh`: read
        the record again first (the sweep, at the start of every run: a raised clock skew)."""
        if fresh:
            self.forget()
        recorded = self.recorded()
        return settings if recorded is None else adopt(settings, recorded, self.table)

    def forget(self) -> None:
        """Read the record again on next use (after `init` changed it)."""
        with self._lock:
            self._recorded, self._agreed = None, None

    def _due(self) -> bool:
        return self._recorded is None or (self._recheck_at is not None
                                          and time.monotonic() >= self._recheck_at)

    def _warn_once(self, recorded: Mapping[str, str]) -> None:
        if self._warned:
            return
        self._warned = True
        missing = [TABLE_TAGS[name] for name in TABLE_TAGS if name not in recorded]
        _log.warning(
            "table `%s` records no %s: this process uses its own values (%s), and every "
            "writer and reader must agree on them; run `eventlake init` to record them",
            self.table,
            " or ".join(f"`{tag}`" for tag in missing),
            ", ".join(describe_value(n, getattr(self.settings, n))
                      for n in TABLE_TAGS if n not in recorded))

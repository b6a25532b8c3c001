"""Settings every writer and reader of a table must agree on, recorded on the table itself.

    eventlake:index_shards    the index's write shards per day: a reader that queries fewer
                              shards than a writer used misses events, and every guard stays green
    eventlake:retention_days  sets expires_at, which the TTL guard and the sweep's first window
                              rely on

`eventlake init` records them as tags of the DynamoDB table (tags, not lake state: the ingest
Lambda reads no S3). Every process reads them once, on its first use of the hot tier:

    recorded, not set by the process      -> adopted
    recorded, set to the same value       -> used
    recorded, set to another value        -> ConfigError naming both (the process refuses)
    not recorded (table older than this)  -> the process's own value, and a WARNING to run init

Changing the retention on a live table is not supported: events already written carry the
old expiry times. The shard count may change: raising it is safe (readers query the larger
range), and lowering it hides nothing, because the lake remembers the largest count in force
and readers that have the lake query that many shards (shardrecord.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from eventlake.config import Settings
from eventlake.errors import ConfigError

__all__ = ["TABLE_TAGS", "adopt", "describe_value", "disagreement", "parse_tag", "read_tags",
           "recorded_of", "tag_value", "tags_for"]

TABLE_TAGS: dict[str, str] = {
    "index_shards": "eventlake:index_shards",
    "retention_days": "eventlake:retention_days",
}
"""Setting -> the tag of the table that records it."""


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
            days = float(text)
            if math.isfinite(days) and days > 0:
                return days
    except ValueError:
        pass
    expected = "an integer from 1 to 100" if name == "index_shards" else "a number of days > 0"
    raise ConfigError(f"table `{table}` has tag `{tag}`=`{text}`, which is not {expected}: set "
                      "it back to the value the table was initialised with")


def describe_value(name: str, value: int | float) -> str:
    """`8 index shards`, `a retention of 30 days`: for messages."""
    if name == "index_shards":
        return f"{value} index shards"
    return f"a retention of {value:g} days"


def disagreement(settings: Settings, name: str, recorded: int | float, table: str) -> str:
    var = settings.env_name(name)
    mine = getattr(settings, name)
    return (f"{var}={mine:g} but table `{table}` was initialised with "
            f"{describe_value(name, recorded)} (tag `{TABLE_TAGS[name]}`): every writer and "
            f"reader must agree, and changing it on a live table is not supported; unset {var} "
            "to use the table's value")


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
    """Every tag of the resource `arn` (ListTagsOfResource pages), through `call` (retries)."""
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn}
    while True:
        response = call(lambda: ddb.list_tags_of_resource(**kwargs))
        tags.update({t["Key"]: t["Value"] for t in response.get("Tags", [])})
        token = response.get("NextToken")
        if not token:
            return tags
        kwargs["NextToken"] = token

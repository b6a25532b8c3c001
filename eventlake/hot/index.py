"""The ingestion-time index: what it projects, which index a reader queries, and the migration
of a table from the index that projected every attribute.

    index    by_ingested_at_v2
             ingest_shard = "<UTC day>#<shard>"  ·  ingest_key = "<ingested_at>#<id>"
    entry    event_id · ingest_shard · ingest_key  (keys: always there)
             timestamp      its UTC date is the lake partition (dt) the event is archived in
             content_hash   "is this exact event archived", not just "is this id" (an id reused
                            with other content must still reach the quarantine)
             expires_at     the TTL guard's margin and the sweep's rescue count, unfetched

So a reader decides from the entry alone whether the lake holds an event, and fetches the
whole item (BatchGetItem, hot/fetch.py) only when it does not. `ingested_at` is not projected:
the sort key carries it verbatim (`<ingested_at>#<id>`). An entry is ~250 bytes where the item
is the payload plus ~300: a sweep over archived events reads a fraction of their bytes.

Before issue 12 the index was `by_ingested_at`, projecting ALL attributes (every event stored
twice). `migrate` (run by `eventlake init`) moves a table over without stopping readers:

    1. create by_ingested_at_v2   readers keep querying by_ingested_at (ACTIVE) meanwhile
    2. wait until it is ACTIVE    (DynamoDB backfills it from the table)
    3. readers switch             `choose` prefers the new index as soon as it is ACTIVE
    4. delete by_ingested_at      a reader still holding its name re-chooses and queries again

An entry read from the old index is the whole item (`is_whole`): nothing is fetched for it.
A crash between the steps leaves a state the next `init` continues from.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from eventlake.errors import StorageError

__all__ = [
    "INDEX_NAME",
    "LEGACY_INDEX_NAME",
    "PROJECTED",
    "choose",
    "entry_key",
    "index_spec",
    "is_whole",
    "migrate",
    "missing_index",
    "wait_index_active",
]

INDEX_NAME = "by_ingested_at_v2"
LEGACY_INDEX_NAME = "by_ingested_at"
"""The index of tables initialised before issue 12 (projection ALL); `migrate` replaces it."""
PROJECTED = ("timestamp", "content_hash", "expires_at")
"""The non-key attributes the index carries (the module docstring says why each)."""
WAIT_DELAY_SECONDS = 5.0
_KEYS = [{"AttributeName": "ingest_shard", "KeyType": "HASH"},
         {"AttributeName": "ingest_key", "KeyType": "RANGE"}]
_log = logging.getLogger(__name__)
_LAYOUT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
"""format_ts's layout: the timestamps eventlake stores, whose first 10 characters are dt."""


def index_spec() -> dict[str, Any]:
    """The GlobalSecondaryIndex of a table eventlake creates (CreateTable, UpdateTable)."""
    return {"IndexName": INDEX_NAME, "KeySchema": list(_KEYS),
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(PROJECTED)}}


def is_whole(entry: dict[str, Any]) -> bool:
    """Whether an index entry is the whole item: read from an index that projects the payload
    (the old one, during a migration), so there is nothing to fetch."""
    return "event_payload" in entry


def entry_key(entry: dict[str, Any]) -> tuple[str, str, str] | None:
    """(event_id, dt, content_hash) of an index entry in eventlake's own layout; None when
    the entry alone cannot say (the whole item must be read)."""
    try:
        event_id = entry["event_id"]["S"]
        ts = entry["timestamp"]["S"]
        digest = entry["content_hash"]["S"]
    except (KeyError, TypeError):
        return None
    if not (isinstance(event_id, str) and event_id and isinstance(ts, str)
            and isinstance(digest, str) and len(digest) == 64 and _LAYOUT.fullmatch(ts)):
        return None
    try:
        date.fromisoformat(ts[:10])
    except ValueError:  # Feb 30 in the right layout: the writer quarantines it
        return None
    return event_id, ts[:10], digest


def _indexes(desc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["IndexName"]: i for i in desc.get("GlobalSecondaryIndexes", [])}


def _active(index: dict[str, Any] | None) -> bool:
    # moto leaves IndexStatus out on some versions; DynamoDB always says it
    return index is not None and index.get("IndexStatus", "ACTIVE") == "ACTIVE"


def _queryable(index: dict[str, Any] | None) -> bool:
    """ACTIVE, or UPDATING: an index whose configuration is being changed (throughput, warm
    throughput, the billing mode) "remains available for data operations" (DynamoDB API
    reference, IndexStatus); readers must not stop for the minutes that takes. One being
    created (CREATING) or deleted is not read."""
    return _active(index) or (index is not None and index.get("IndexStatus") == "UPDATING"
                              and not index.get("Backfilling", False))


def choose(desc: dict[str, Any], table: str) -> str:
    """The index a reader queries: the new one once ACTIVE (or UPDATING: `_queryable`), else
    the old one (during a migration); StorageError when neither is, or when the only queryable
    one has the new name but not its keys or projection (`init` refuses such an index too: a
    reader would fail on its keys, or fetch every entry whole)."""
    indexes = _indexes(desc)
    current = indexes.get(INDEX_NAME)
    if _queryable(current):
        assert current is not None
        try:
            _check_index(current, table)
            return INDEX_NAME
        except StorageError:
            if not _queryable(indexes.get(LEGACY_INDEX_NAME)):
                raise
            _log.warning("table `%s`: index %s is not the one eventlake makes; reading %s "
                         "(run `eventlake init` for what to do)", table, INDEX_NAME,
                         LEGACY_INDEX_NAME)
            return LEGACY_INDEX_NAME
    if _queryable(indexes.get(LEGACY_INDEX_NAME)):
        return LEGACY_INDEX_NAME
    states = ", ".join(f"{n} {i.get('IndexStatus', '?')}" for n, i in indexes.items()
                       if n in (INDEX_NAME, LEGACY_INDEX_NAME)) or "neither exists"
    raise StorageError(f"table `{table}` has no ACTIVE ingestion-time index ({INDEX_NAME} or "
                       f"{LEGACY_INDEX_NAME}: {states}): run `eventlake init` (and let it "
                       "finish), then retry")


def missing_index(exc: BaseException) -> bool:
    """Whether a Query failed because its index is gone (deleted by a migration): DynamoDB
    says ValidationException "...does not have the specified index", moto
    ResourceNotFoundException "Invalid index"."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    error = response.get("Error", {})
    code, text = error.get("Code"), str(error.get("Message", "")).lower()
    return ((code == "ValidationException" and "specified index" in text)
            or (code == "ResourceNotFoundException" and "invalid index" in text))


def wait_index_active(describe: Callable[[], dict[str, Any]], name: str, *,
                      sleep: Callable[[float], None] = time.sleep,
                      delay: float = WAIT_DELAY_SECONDS) -> None:
    """Block until index `name` of the described table is ACTIVE (DynamoDB backfills a new
    index from the table: minutes to hours on a large one). StorageError when it vanishes."""
    while True:
        index = _indexes(describe()).get(name)
        if index is None:
            raise StorageError(f"index {name} vanished while waiting for it to become ACTIVE "
                               "(deleted by someone else?): run `eventlake init` again")
        if _active(index) and not index.get("Backfilling", False):
            return
        _log.info("waiting for index %s to be built (%s)", name, index.get("IndexStatus"))
        sleep(delay)


def migrate(ddb: Any, table: str, desc: dict[str, Any], *, wait_table: Callable[[], None],
            sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Give an existing table the index of `index_spec`, removing the old ALL-projecting one
    once the new one is ACTIVE (the module docstring's steps); returns what changed."""
    changes: list[str] = []
    indexes = _indexes(desc)
    current = indexes.get(INDEX_NAME)
    if current is not None:
        _check_index(current, table)

    def describe() -> dict[str, Any]:
        return dict(ddb.describe_table(TableName=table)["Table"])

    created = current is None
    if created:
        try:
            ddb.update_table(
                TableName=table,
                AttributeDefinitions=[{"AttributeName": "ingest_shard", "AttributeType": "S"},
                                      {"AttributeName": "ingest_key", "AttributeType": "S"}],
                GlobalSecondaryIndexUpdates=[{"Create": index_spec()}])
        except Exception:
            # Another `init` may have created it since `desc` was read (DynamoDB refuses a
            # second Create, or any update while the table is UPDATING): go on from its index.
            wait_table()
            current = _indexes(describe()).get(INDEX_NAME)
            if current is None:
                raise
            _check_index(current, table)
        else:
            changes.append(f"added index {INDEX_NAME} (keys + {', '.join(PROJECTED)}: events "
                           "are fetched whole only when the lake lacks them)")
            wait_table()  # DynamoDB takes one table update at a time
    if created or not _active(current):
        wait_index_active(describe, INDEX_NAME, sleep=sleep)
    legacy = indexes.get(LEGACY_INDEX_NAME)
    if legacy is not None:
        changes.append(f"index {INDEX_NAME} is ACTIVE: readers use it from now on")
        if legacy.get("IndexStatus") != "DELETING":  # a previous init's delete may be running
            try:
                ddb.update_table(TableName=table, GlobalSecondaryIndexUpdates=[
                    {"Delete": {"IndexName": LEGACY_INDEX_NAME}}])
            except Exception:
                # another `init` deleted it (or is deleting it) since `desc` was read
                wait_table()
                left = _indexes(describe()).get(LEGACY_INDEX_NAME)
                if left is not None and left.get("IndexStatus") != "DELETING":
                    raise
        changes.append(f"deleted index {LEGACY_INDEX_NAME} (it projected ALL attributes: "
                       "every event was stored twice)")
        wait_table()
    return changes


def _check_index(index: dict[str, Any], table: str) -> None:
    """Refuse an index named INDEX_NAME keyed or projecting otherwise than `index_spec`
    (readers querying it, or deciding from its entries, would fail or find attributes
    missing). The projected attributes are compared as a set: DynamoDB does not promise the
    order it describes them in."""
    if index.get("KeySchema", _KEYS) != _KEYS:
        raise StorageError(
            f"table `{table}` has an index {INDEX_NAME} keyed {index.get('KeySchema')}; "
            f"eventlake needs {_KEYS}: delete that index and run `eventlake init` again")
    projection = dict(index.get("Projection") or {})
    wanted = index_spec()["Projection"]
    if (projection.get("ProjectionType") != wanted["ProjectionType"]
            or sorted(projection.get("NonKeyAttributes") or []) != sorted(PROJECTED)):
        raise StorageError(
            f"table `{table}` has an index {INDEX_NAME} projecting {index.get('Projection')};"
            f" eventlake needs {wanted}: delete that index and run `eventlake init` again")

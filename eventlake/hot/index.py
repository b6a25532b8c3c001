"""The ingestion-time index: its layout, which index a reader queries, and the migration of
a table from the indexes before it.

    index    by_ingested_at_v3 (keys only)
             s = "<UTC day>#<shard>"  ·  k = 53 bytes, binary:
                 ingested_at  8   microseconds since the epoch, big-endian: `k` sorts by it,
                                  so "ingested in [a, b)" is `k BETWEEN <a, 8 bytes> AND
                                  <b, 8 bytes>` (every k is longer than a bound, so sorts
                                  after the bound it starts with)
                 timestamp    8   microseconds + 2**63: its UTC date is the lake partition
                                  (dt) the event is archived in (0: not in format_ts's layout)
                 expires_at   5   epoch seconds: the TTL guard's margin, unfetched
                                  (all ones: none, or not a whole number of seconds)
                 content_hash 32  "is this exact event archived", not just "is this id" (an
                                  id reused with other content must still reach the
                                  quarantine) (all zeros: not 64 lowercase hex characters)
    entry    event_id · s · k: ~114 bytes with a 36-character id

So a reader decides from the entry alone whether the lake holds an event, and fetches the
whole item (BatchGetItem, hot/fetch.py) only when it does not. `decode_entry` turns an entry
into the attributes readers use (`ingest_shard`, `ingest_key` = `<ingested_at>#<id>`,
`timestamp`, `content_hash`, `expires_at`), so every reader reads every index alike; a field
the key marks unknown is left out, and the reader fetches the item (as for any entry the
index alone cannot place).

Items keep `ingest_shard` and `ingest_key` (DESIGN.md's index keys), so the index before this
one stays complete while a migration runs, and stream images keep them. `s` and `k` are the
same facts in fewer bytes: an entry of by_ingested_at_v2 (keys `ingest_shard`, `ingest_key`,
projecting timestamp, content_hash, expires_at) is ~276 bytes, and a sweep pays read units
by the bytes of the entries it reads.

Indexes before this one: by_ingested_at (projection ALL, before issue 12) and
by_ingested_at_v2. `migrate` (run by `eventlake init`) moves a table over without stopping
readers or writers:

    1. create by_ingested_at_v3   (keys s, k) readers keep querying the old index meanwhile
    2. wait until it is ACTIVE    it holds only items written with s and k
    3. backfill                   every item with ingest_shard and ingest_key but no k gets
                                  s and k (UpdateItem, conditional on the item being
                                  unchanged), in passes of a strongly consistent Scan until
                                  one finds no such item; the stream path lets these MODIFYs
                                  pass (archive/stream.py, `is_reindexing`)
    4. delete the old index       only then, and only when every item it holds was placed;
                                  a reader still holding its name re-chooses and queries again

Readers query an old index while one is queryable (`choose`): it holds every item until
step 4, the new one only after step 3. A crash between the steps leaves a state the next
`init` continues from (the backfill skips items that have k). Writers must run this version
before step 3: items an older writer stores during the backfill are found by the next pass
(after BACKFILL_PASSES passes that keep finding some, `init` stops, keeping the old index);
one it stores after the last pass has no k, and once the old index is gone no index lists it
(the stream path still archives it; the sweep would not see it). `eventlake init --reindex`
runs the backfill with no old index left (an old index dropped too soon). A table in a
CloudFormation stack keeps its old index until the template drops it (`init
--keep-old-index`; infra/template.yaml, PreviousIndex).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import struct
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta
from typing import Any

from eventlake.errors import StorageError
from eventlake.events.times import format_ts

__all__ = [
    "INDEX_NAME",
    "LEGACY_INDEX_NAME",
    "OLD_INDEX_NAMES",
    "PREVIOUS_INDEX_NAME",
    "adds_only_keys",
    "attribute_definitions",
    "backfill",
    "binary",
    "choose",
    "decode_entry",
    "entry_key",
    "index_spec",
    "is_whole",
    "item_keys",
    "key_bound",
    "key_of_item",
    "migrate",
    "missing_index",
    "wait_index_active",
]

INDEX_NAME = "by_ingested_at_v3"
PREVIOUS_INDEX_NAME = "by_ingested_at_v2"
"""The index of tables initialised between issue 12's two steps (keys ingest_shard,
ingest_key; projecting timestamp, content_hash, expires_at)."""
LEGACY_INDEX_NAME = "by_ingested_at"
"""The index of tables initialised before issue 12 (same keys, projection ALL)."""
OLD_INDEX_NAMES = (PREVIOUS_INDEX_NAME, LEGACY_INDEX_NAME)
"""The indexes `migrate` replaces, in the order readers prefer them while they exist."""
SHARD = "s"
KEY = "k"
KEY_BYTES = 8 + 8 + 5 + 32
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_TS_OFFSET = 1 << 63
_NO_TS = bytes(8)
_NO_EXPIRY = b"\xff" * 5
_NO_HASH = bytes(32)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_OLD_KEYS = [{"AttributeName": "ingest_shard", "KeyType": "HASH"},
             {"AttributeName": "ingest_key", "KeyType": "RANGE"}]
_OLD_PROJECTED = ("timestamp", "content_hash", "expires_at")
_KEYS = [{"AttributeName": SHARD, "KeyType": "HASH"},
         {"AttributeName": KEY, "KeyType": "RANGE"}]
WAIT_DELAY_SECONDS = 5.0
BACKFILL_WORKERS = 8
_log = logging.getLogger(__name__)
_LAYOUT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
"""format_ts's layout: the timestamps eventlake stores, whose first 10 characters are dt."""


def attribute_definitions() -> list[dict[str, str]]:
    """The AttributeDefinitions of the index's keys (CreateTable, UpdateTable)."""
    return [{"AttributeName": SHARD, "AttributeType": "S"},
            {"AttributeName": KEY, "AttributeType": "B"}]


def index_spec() -> dict[str, Any]:
    """The GlobalSecondaryIndex of a table eventlake creates (CreateTable, UpdateTable)."""
    return {"IndexName": INDEX_NAME, "KeySchema": list(_KEYS),
            "Projection": {"ProjectionType": "KEYS_ONLY"}}


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND


def key_bound(at: datetime) -> bytes:
    """The 8-byte prefix of `k` at ingestion time `at` (aware): a Query's range bound (a
    time before 1970, when nothing was ingested, bounds like 1970)."""
    return struct.pack(">Q", max(0, _micros(at)))


def item_keys(ingested_at: datetime, timestamp: datetime | None, expires_at: int,
              content_hash: str | None) -> bytes:
    """`k` (aware datetimes): a timestamp, expiry or hash `k` cannot hold as eventlake writes
    it (None; a negative or too large expiry; not 64 lowercase hex characters) is marked
    unknown. An ingestion time before 1970 (only replay's `stream` shape makes one: the store
    stamps its clock's time) is held as 1970."""
    return (struct.pack(">Q", max(0, _micros(ingested_at)))
            + (_NO_TS if timestamp is None
               else struct.pack(">Q", _micros(timestamp) + _TS_OFFSET))
            + (expires_at.to_bytes(5, "big") if 0 <= expires_at < (1 << 40) - 1
               else _NO_EXPIRY)
            + (bytes.fromhex(content_hash)
               if content_hash is not None and _HEX64.fullmatch(content_hash) else _NO_HASH))


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    text = value.get("S") if isinstance(value, dict) else None
    return text if isinstance(text, str) else None


def _layout_time(text: str | None) -> datetime | None:
    """A time in format_ts's layout, or None (another layout, or no such date)."""
    if text is None or not _LAYOUT.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:  # Feb 30 in the right layout
        return None


def key_of_item(item: dict[str, Any]) -> dict[str, Any] | None:
    """`s` and `k` of an item in eventlake's layout that lacks them (the backfill): from its
    `ingest_shard` and `ingest_key`, which the old indexes sorted it by, and what it says of
    timestamp, expires_at and content_hash (each marked unknown in `k` when it is not what
    eventlake writes: a reader then fetches the item). None when the item has no place in
    the index (no `ingest_shard`, or an `ingest_key` that is not `<ingested_at>#<its id>`)."""
    event_id, shard, ingest_key = (_text(item, "event_id"), _text(item, "ingest_shard"),
                                   _text(item, "ingest_key"))
    if event_id is None or shard is None or ingest_key is None:
        return None
    stamp, sep, rest = ingest_key.partition("#")
    ingested = _layout_time(stamp)
    if ingested is None or ingested < _EPOCH or not sep or rest != event_id:
        return None
    timestamp = _layout_time(_text(item, "timestamp"))
    expires = item.get("expires_at")
    number = expires.get("N") if isinstance(expires, dict) else None
    try:
        whole = int(number) if isinstance(number, str) and number.isdigit() else -1
    except ValueError:
        whole = -1
    key = item_keys(ingested, timestamp, whole, _text(item, "content_hash"))
    return {SHARD: {"S": shard}, KEY: {"B": key}}


def binary(value: object) -> bytes | None:
    """The bytes of a B attribute as boto3 gives them (bytes) or as Lambda's JSON carries
    them (base64 text); None for anything else."""
    body = value.get("B") if isinstance(value, dict) else None
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def adds_only_keys(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    """Whether an item image `new` is `old` plus exactly the `s` and `k` the backfill gives
    it (`key_of_item(old)`): an item given the index keys, its event unchanged."""
    if old is None or new is None or KEY in old or SHARD in old:
        return False
    keys = key_of_item(old)
    return (keys is not None and new.get(SHARD) == keys[SHARD]
            and binary(new.get(KEY)) == keys[KEY]["B"]
            and {n: v for n, v in new.items() if n not in (SHARD, KEY)} == old)


def decode_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry of this index as the attributes readers use (the module docstring): event_id,
    ingest_shard, ingest_key, and timestamp, expires_at and content_hash where `k` knows them.
    StorageError naming the event when `k` is not this layout's."""
    event_id = entry["event_id"]["S"]
    key = entry.get(KEY, {}).get("B")
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise StorageError(f"index {INDEX_NAME} lists event `{event_id}` with a key `k` of "
                           f"{len(key) if isinstance(key, bytes | bytearray) else 'no'} bytes;"
                           f" eventlake writes {KEY_BYTES} (hot/index.py): the item was written"
                           " by something else; delete or rewrite it")
    ingested, stamp = struct.unpack_from(">QQ", key)
    try:
        at = _EPOCH + ingested * _MICROSECOND
    except OverflowError:
        raise StorageError(f"index {INDEX_NAME} lists event `{event_id}` with a key `k` whose "
                           "ingestion time is past year 9999: the item was written by "
                           "something else; delete or rewrite it") from None
    out: dict[str, Any] = {
        "event_id": entry["event_id"], "ingest_shard": entry[SHARD],
        "ingest_key": {"S": f"{format_ts(at)}#{event_id}"}}
    if key[8:16] != _NO_TS:
        with suppress(OverflowError):  # not a time eventlake wrote: the item is fetched
            out["timestamp"] = {"S": format_ts(_EPOCH + (stamp - _TS_OFFSET) * _MICROSECOND)}
    if key[16:21] != _NO_EXPIRY:
        out["expires_at"] = {"N": str(int.from_bytes(key[16:21], "big"))}
    if key[21:] != _NO_HASH:
        out["content_hash"] = {"S": key[21:].hex()}
    return out


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
    """The index a reader queries: an old one while one is queryable (ACTIVE, or UPDATING:
    `_queryable`), since the new one is complete only once `migrate` has backfilled it, and
    `migrate` deletes the old ones only after that; else the new one. StorageError when none
    is, or when the one to read has eventlake's name but not its keys or projection (`init`
    refuses such an index too: a reader would fail on its keys, or decide from attributes
    it lacks)."""
    indexes = _indexes(desc)
    for name in OLD_INDEX_NAMES:
        old = indexes.get(name)
        if not _queryable(old):
            continue
        assert old is not None
        if name == PREVIOUS_INDEX_NAME and not _is_previous(old):
            _log.warning("table `%s`: index %s is not the one eventlake made; not reading it "
                         "(run `eventlake init` for what to do)", table, name)
            continue
        return name
    current = indexes.get(INDEX_NAME)
    if _queryable(current):
        assert current is not None
        _check_index(current, table)
        return INDEX_NAME
    states = ", ".join(f"{n} {i.get('IndexStatus', '?')}" for n, i in indexes.items()
                       if n in (INDEX_NAME, *OLD_INDEX_NAMES)) or "none exists"
    raise StorageError(f"table `{table}` has no ACTIVE ingestion-time index ({INDEX_NAME}, "
                       f"{PREVIOUS_INDEX_NAME} or {LEGACY_INDEX_NAME}: {states}): run "
                       "`eventlake init` (and let it finish), then retry")


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


NO_PLACE = "its ingest_key is not `<ingested_at>#<event_id>` in eventlake's layout"
FOREIGN_KEYS = "it has an `s` or `k` the index cannot use (another writer's)"
TOO_LARGE = "the 68 bytes of s and k would take it past DynamoDB's 400 KB item limit"


def backfill(ddb: Any, table: str, *, workers: int = BACKFILL_WORKERS,
             page_size: int | None = None) -> tuple[int, int, list[str]]:
    """One pass giving every item that has the old indexes' keys (`ingest_shard`,
    `ingest_key`) but not the new index's (`s` a string and `k` binary) its `s` and `k`
    (`key_of_item`): a strongly consistent Scan for such items, one conditional UpdateItem
    each (the item unchanged since the Scan read it: `ingest_key` the same, no `k` yet; an
    item deleted, re-put or given its keys meanwhile is left to the next pass). Returns the
    items given keys, the placeable items the Scan found (a pass finding none proves every
    item stored before it began placed), and the items the new index cannot place, each
    `<id> (<why>)` (at most 20 named)."""
    names = {"#k": KEY, "#s": SHARD, "#ts": "timestamp"}
    kwargs: dict[str, Any] = {
        "TableName": table, "ExpressionAttributeNames": names, "ConsistentRead": True,
        "FilterExpression": ("attribute_exists(ingest_shard) AND attribute_exists(ingest_key)"
                             " AND (attribute_not_exists(#k) OR attribute_not_exists(#s)"
                             " OR NOT attribute_type(#k, :b) OR NOT attribute_type(#s, :s))"),
        "ExpressionAttributeValues": {":b": {"S": "B"}, ":s": {"S": "S"}},
        "ProjectionExpression": "event_id, ingest_shard, ingest_key, #ts, content_hash, "
                                "expires_at, #s, #k",
    }
    if page_size is not None:
        kwargs["Limit"] = page_size
    written = seen = 0
    unplaced: list[str] = []

    def update(item: dict[str, Any]) -> int | str:
        """1 given keys, 0 changed meanwhile (the next pass sees it), or why it has no place."""
        if KEY in item or SHARD in item:
            return FOREIGN_KEYS
        keys = key_of_item(item)
        if keys is None:
            return NO_PLACE
        try:
            ddb.update_item(
                TableName=table, Key={"event_id": item["event_id"]},
                UpdateExpression="SET #s = :s, #k = :k",
                ConditionExpression="attribute_not_exists(#k) AND ingest_key = :ik",
                ExpressionAttributeNames={"#s": SHARD, "#k": KEY},
                ExpressionAttributeValues={":s": keys[SHARD], ":k": keys[KEY],
                                           ":ik": item["ingest_key"]})
        except ddb.exceptions.ConditionalCheckFailedException:
            return 0
        except ddb.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ValidationException" and (
                    "size" in str(exc).lower()):
                return TOO_LARGE
            raise
        return 1

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eventlake-backfill") as pool:
        for page in _scan(ddb, kwargs):
            for item, done in zip(page, pool.map(update, page), strict=True):
                if isinstance(done, str):
                    unplaced.append(f"{_text(item, 'event_id')} ({done})")
                else:
                    seen += 1
                    written += done
            if page:
                _log.info("index %s: %d item(s) given its keys so far", INDEX_NAME, written)
    return written, seen, unplaced[:20] + ([f"... {len(unplaced) - 20} more"]
                                           if len(unplaced) > 20 else [])


BACKFILL_PASSES = 5
"""Passes `migrate` makes before it gives up on items that keep appearing without `k` (a
writer older than this version is still storing events)."""


def backfill_all(ddb: Any, table: str, old: list[str], *,
                 workers: int = BACKFILL_WORKERS) -> list[str]:
    """`backfill` passes until one finds no placeable item without `k`; returns what changed.
    StorageError when items cannot be placed, or still appear after BACKFILL_PASSES passes
    (the old index `old` is then kept: readers use it)."""
    total = 0
    for _ in range(BACKFILL_PASSES):
        written, seen, unplaced = backfill(ddb, table, workers=workers)
        total += written
        if unplaced:
            kept = f"{' and '.join(old)} kept (readers use it)" if old else "no old index left"
            raise StorageError(
                f"table `{table}`: index {INDEX_NAME} cannot place these items: "
                f"{', '.join(unplaced)}; {kept}: rewrite or delete them, then run `eventlake "
                "init` again (one too large for the keys may instead be left to expire: "
                "TTL removes it, then `init` can go on)")
        if not seen:
            return ([f"gave {total} existing item(s) the keys of index {INDEX_NAME} "
                     "(attributes s and k; the stream path lets these MODIFYs pass)"]
                    if total else [])
    raise StorageError(
        f"table `{table}`: items without the keys of index {INDEX_NAME} kept appearing over "
        f"{BACKFILL_PASSES} passes ({total} given keys): a writer older than this version is "
        f"still storing events; "
        f"{(' and '.join(old) + ' kept (readers use it)') if old else 'no old index left'}: "
        "deploy this version to every writer, then run `eventlake init` again")


def _scan(ddb: Any, kwargs: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    while True:
        response = ddb.scan(**kwargs)
        yield list(response.get("Items", []))
        last_key = response.get("LastEvaluatedKey")
        if not last_key:
            return
        kwargs = {**kwargs, "ExclusiveStartKey": last_key}


def migrate(ddb: Any, table: str, desc: dict[str, Any], *, wait_table: Callable[[], None],
            sleep: Callable[[float], None] = time.sleep, keep_old: str | None = None,
            reindex: bool = False, workers: int = BACKFILL_WORKERS) -> list[str]:
    """Give an existing table the index of `index_spec`: create it, backfill it, and remove
    the old ones (the module docstring's steps); returns what changed. `keep_old`: why the
    old index must stay (a CloudFormation template removes it: deleting it here would fail
    the stack's next update); `reindex`: backfill even when no old index is left (items that
    lost theirs: an old index dropped before a backfill finished)."""
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
            ddb.update_table(TableName=table, AttributeDefinitions=attribute_definitions(),
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
            changes.append(f"added index {INDEX_NAME} (keys only, {KEY_BYTES}-byte sort key: "
                           "events are fetched whole only when the lake lacks them)")
            wait_table()  # DynamoDB takes one table update at a time
    if created or not _active(current):
        wait_index_active(describe, INDEX_NAME, sleep=sleep)
    old = [name for name in OLD_INDEX_NAMES if name in indexes]
    if not old and not reindex:
        return changes
    changes += backfill_all(ddb, table, old, workers=workers)
    if old and keep_old is not None:
        changes.append(f"kept index {' and '.join(old)} (readers use it until it is gone): "
                       f"{keep_old}")
        return changes
    for name in old:
        if indexes[name].get("IndexStatus") != "DELETING":  # a previous init's delete
            try:
                ddb.update_table(TableName=table, GlobalSecondaryIndexUpdates=[
                    {"Delete": {"IndexName": name}}])
            except Exception:
                # another `init` deleted it (or is deleting it) since `desc` was read
                wait_table()
                left = _indexes(describe()).get(name)
                if left is not None and left.get("IndexStatus") != "DELETING":
                    raise
        changes.append(f"deleted index {name} (index {INDEX_NAME} holds every item: readers "
                       "use it from now on)")
        wait_table()
    return changes


def _is_previous(index: dict[str, Any]) -> bool:
    """Whether an index named PREVIOUS_INDEX_NAME is the one eventlake made (its keys, its
    projection: the attributes readers decide by)."""
    projection = dict(index.get("Projection") or {})
    return (index.get("KeySchema", _OLD_KEYS) == _OLD_KEYS
            and projection.get("ProjectionType") == "INCLUDE"
            and sorted(projection.get("NonKeyAttributes") or []) == sorted(_OLD_PROJECTED))


def _check_index(index: dict[str, Any], table: str) -> None:
    """Refuse an index named INDEX_NAME keyed or projecting otherwise than `index_spec`
    (readers querying it, or decoding its entries, would fail)."""
    if index.get("KeySchema", _KEYS) != _KEYS:
        raise StorageError(
            f"table `{table}` has an index {INDEX_NAME} keyed {index.get('KeySchema')}; "
            f"eventlake needs {_KEYS}: delete that index and run `eventlake init` again")
    projection = dict(index.get("Projection") or {})
    if projection.get("ProjectionType") != "KEYS_ONLY":
        raise StorageError(
            f"table `{table}` has an index {INDEX_NAME} projecting {index.get('Projection')};"
            f" eventlake needs {index_spec()['Projection']}: delete that index and run "
            "`eventlake init` again")

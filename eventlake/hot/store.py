"""The hot tier: an immutable DynamoDB table with a write-sharded ingestion-time index.

    item   event_id (PK) · event_type · timestamp · event_payload (canonical JSON) · source ·
           subject · ingested_at · content_hash · expires_at (TTL, epoch s) · ingest_shard ·
           ingest_key · s · k
           ingest_shard = "<UTC day>#<shard>"  ·  ingest_key = "<ingested_at>#<id>"
    index  by_ingested_at_v3, keys only: s = ingest_shard  ·  k = 53 bytes packing
           ingested_at, timestamp, expires_at, content_hash (index.py: the layout, why, and
           the migration from by_ingested_at_v2, which was keyed ingest_shard, ingest_key)

Writes are conditional (`attribute_not_exists(event_id)`): an identical retry is a `duplicate`,
different content under a stored id is a `conflict`, and the stored item is never touched. The
index spreads each day over `index_shards` partitions so no partition runs hot (writes at any
moment go to the current day's shards, so the shard count sets the write headroom); a window
read queries every (day, shard) pair in parallel with a range condition on `k`, and
never scans. `read_index_pages` gives the index's entries, `fetch` whole items by event_id
(BatchGetItem), `read_ingested_pages` both: readers that have the lake fetch only what it lacks.
Day buckets keep a 15-minute sweep at `index_shards` queries and a 10-day backfill
at 10 x `index_shards`.

The shard count, the retention, the clock skew and the archive settle are the table's, not the
process's (tablesettings.py): recorded as tags by `provision`, read once per store, and used by
every write and read (`table_settings`: item shards and expiry, the write's retry budget); a
process set to other values refuses with ConfigError. Readers that have
the lake also query the shards of the largest count it has seen in force (`read_at_least`,
lake/shards.py), so lowering the count on a live table hides no event.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from eventlake.aws import Clients, OutOfTime, error_code, is_transient, retry_deadline
from eventlake.config import Settings, redact, redact_url
from eventlake.errors import StorageError, TableNotFoundError, TransientError
from eventlake.events.model import Event
from eventlake.events.times import as_utc, format_ts
from eventlake.hot.fetch import Fetched, fetch_items
from eventlake.hot.index import (
    INDEX_NAME,
    KEY,
    LEGACY_INDEX_NAME,
    OLD_INDEX_NAMES,
    SHARD,
    attribute_definitions,
    choose,
    decode_entry,
    index_spec,
    is_whole,
    item_keys,
    key_bound,
    migrate,
    missing_index,
)
from eventlake.hot.results import (
    DERIVED_DUPLICATE,
    RETRY_ADVICE,
    TABLE_MISSING,
    Deadline,
    Outcome,
    PutResult,
)
from eventlake.hot.tablesettings import (
    TABLE_TAGS,
    RecordedSettings,
    describe_value,
    parse_tag,
    raise_on_init,
    read_tags,
    recorded_of,
    tag_value,
    tags_for,
)

__all__ = ["INDEX_NAME", "LEGACY_INDEX_NAME", "TTL_ATTRIBUTE", "HotStore", "Item", "day_key",
           "item_of", "shard_of"]

TTL_ATTRIBUTE = "expires_at"
Item = dict[str, Any]
"""A DynamoDB item in AttributeValue form, as the low-level client returns it."""
_log = logging.getLogger(__name__)


def shard_of(event_id: str, shards: int) -> int:
    return zlib.crc32(event_id.encode("utf-8")) % shards


def day_key(ts: datetime) -> str:
    return as_utc(ts).strftime("%Y-%m-%d")


def item_of(event: Event, ingested_at: datetime, *, retention_seconds: int,
            index_shards: int) -> Item:
    """The item the table stores for `event` ingested at `ingested_at` (AttributeValue form):
    what `HotStore.put` writes, and what replay's `stream` shape re-creates."""
    ingested = format_ts(ingested_at)
    expires = int(ingested_at.timestamp()) + retention_seconds
    shard = f"{day_key(ingested_at)}#{shard_of(event.event_id, index_shards)}"
    digest = event.content_hash
    item: Item = {
        "event_id": {"S": event.event_id},
        "event_type": {"S": event.event_type},
        "timestamp": {"S": event.timestamp_iso},
        "event_payload": {"S": event.payload},
        "ingested_at": {"S": ingested},
        "content_hash": {"S": digest},
        TTL_ATTRIBUTE: {"N": str(expires)},
        "ingest_shard": {"S": shard},
        "ingest_key": {"S": f"{ingested}#{event.event_id}"},
        SHARD: {"S": shard},
        KEY: {"B": item_keys(as_utc(ingested_at), as_utc(event.timestamp), expires, digest)},
    }
    if event.source is not None:
        item["source"] = {"S": event.source}
    if event.subject is not None:
        item["subject"] = {"S": event.subject}
    return item


class HotStore:
    """The DynamoDB table: provisioning, conditional writes, and window reads."""

    def __init__(self, settings: Settings, clients: Clients, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 recorded: dict[str, str] | None = None) -> None:
        """`recorded`: the settings recorded on the table (field -> tag text) when already
        known, e.g. `{}` for a store that only builds items (benchmarks): nothing is read."""
        self.settings = settings
        self.clients = clients
        self._clock = clock
        self.recorded = RecordedSettings(settings, settings.table, self._read_recorded,
                                         recorded=recorded)
        """The settings recorded on the table, read once (tablesettings.py)."""
        self._read_floor: int | None = None
        self._lock = threading.Lock()
        self._index: str | None = None  # the index readers query (index.choose), once known

    @property
    def table(self) -> str:
        return self.settings.table

    # --- settings recorded on the table (tablesettings.py) ---------------------------------

    def table_settings(self) -> Settings:
        """This store's settings with the values recorded on the table adopted (index shards,
        retention): what every write and read uses. The tags are read once, on first use;
        ConfigError when the process set one of them to another value."""
        return self.recorded.agreed()

    def reader_settings(self) -> Settings:
        """`table_settings`, read again when older than READ_RECHECK_SECONDS: what a window
        read behind the watermark starts from in a long-lived process (a raised clock skew
        reaches it; tablesettings.py)."""
        return self.recorded.for_reader()

    def agree(self, settings: Settings, *, fresh: bool = False) -> Settings:
        """`settings` (another process's view, e.g. the sweep's) with the table's values
        adopted, checked like `table_settings`. `fresh`: read the tags again first (the sweep
        does at every run, so a clock skew raised by `init` reaches it)."""
        return self.recorded.agree(settings, fresh=fresh)

    def _read_recorded(self) -> dict[str, str] | None:
        ddb = self.clients.dynamodb
        try:
            desc = self._call(lambda: ddb.describe_table(TableName=self.table))
            tags = read_tags(self._call, ddb, desc["Table"]["TableArn"])
        except TableNotFoundError:  # no table yet: its own error comes with the first request
            return None
        except TransientError as exc:  # no write goes ahead with a budget not the table's
            raise TransientError(f"reading the settings recorded on table `{self.table}` "
                                 f"(DescribeTable, ListTagsOfResource): {exc}") from exc
        except Exception as exc:
            code = error_code(exc)
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                raise StorageError(
                    f"cannot read the settings recorded on table `{self.table}` ({code}): "
                    "allow dynamodb:DescribeTable and dynamodb:ListTagsOfResource on it") from exc
            raise
        return recorded_of(tags)  # empty: read, nothing recorded (read again later)

    def now(self) -> datetime:
        """The store's time, which stamps `ingested_at`: the clock, plus the offset measured
        from AWS's responses (`Clients.clock`, applied from 2 s up) unless
        EVENTLAKE_CLOCK_CORRECTION is false. The sweep and the TTL guard read it too."""
        now = self._clock()
        if self.settings.clock_correction:
            now += timedelta(seconds=self.clients.clock.seconds)
        return now

    # --- provisioning ----------------------------------------------------------------------

    def provision(self, *, keep_old_index: bool = False, reindex: bool = False) -> list[str]:
        """Create or complete the table; returns what changed (empty when nothing did).
        `keep_old_index`: migrate an old table's index but leave the old index for its
        CloudFormation template to drop; `reindex`: give every item lacking the index keys
        its keys even when no old index is left (index.migrate)."""
        ddb = self.clients.dynamodb
        changes: list[str] = []
        try:
            desc = ddb.describe_table(TableName=self.table)["Table"]
        except ddb.exceptions.ResourceNotFoundException:
            try:
                self._create_table()
            except ddb.exceptions.ResourceInUseException:
                # Another `init` created it between our describe and create: wait for it,
                # then check and complete it like any existing table.
                self._wait_active()
                return self.provision()
            changes.append(f"created table `{self.table}` (on-demand, stream NEW_AND_OLD_IMAGES,"
                           f" index {INDEX_NAME}, {self._recorded_text()})")
            self._wait_active()
            desc = ddb.describe_table(TableName=self.table)["Table"]
        else:
            if desc.get("TableStatus") != "ACTIVE":  # being created or updated by someone else
                self._wait_active()
                desc = ddb.describe_table(TableName=self.table)["Table"]
            if desc["KeySchema"] != [{"AttributeName": "event_id", "KeyType": "HASH"}]:
                raise StorageError(
                    f"table `{self.table}` exists with key {desc['KeySchema']}; eventlake needs "
                    "a table keyed by `event_id` alone: choose another EVENTLAKE_TABLE")
            # First: a process configured against the table must change nothing.
            changes += self._record_settings(desc["TableArn"])
            # the index of index_spec; the ones before it are replaced (index.py)
            stack = read_tags(self._call, ddb, desc["TableArn"]).get(
                "aws:cloudformation:stack-name")
            keep = ("asked to (`eventlake init --keep-old-index`): update the stack with "
                    "PreviousIndex=drop to remove it" if keep_old_index else
                    f"table `{self.table}` belongs to CloudFormation stack `{stack}`; update "
                    "it with PreviousIndex=drop to remove it" if stack is not None else None)
            changes += migrate(ddb, self.table, dict(desc), wait_table=self._wait_active,
                               keep_old=keep, reindex=reindex,
                               workers=self.settings.put_concurrency)
            self._index = None  # choose again
            stream: Any = desc.get("StreamSpecification") or {}
            if not stream.get("StreamEnabled"):
                ddb.update_table(TableName=self.table, StreamSpecification={
                    "StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
                changes.append("enabled stream NEW_AND_OLD_IMAGES")
                self._wait_active()
            elif stream.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
                raise StorageError(
                    f"table `{self.table}` streams {stream.get('StreamViewType')}; the archiver "
                    "needs NEW_AND_OLD_IMAGES: disable the stream and run `eventlake init` again")
        ttl = ddb.describe_time_to_live(TableName=self.table)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(TableName=self.table, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": TTL_ATTRIBUTE})
            changes.append(f"enabled TTL on `{TTL_ATTRIBUTE}`")
        elif ttl.get("AttributeName") != TTL_ATTRIBUTE:
            raise StorageError(f"table `{self.table}` has TTL on `{ttl.get('AttributeName')}`; "
                               f"eventlake sets `{TTL_ATTRIBUTE}`")
        self.recorded.forget()  # read the recorded settings again on next use
        return changes

    def _recorded_text(self) -> str:
        return ", ".join(f"{describe_value(n, getattr(self.settings, n))} recorded as tag "
                         f"`{tag}`" for n, tag in TABLE_TAGS.items())

    def _record_settings(self, arn: str) -> list[str]:
        """Tag an existing table with the settings it lacks (a table created before they were
        recorded), and with a raised clock skew (`raise_on_init`); refuse when another
        recorded value differs from what this process set."""
        ddb = self.clients.dynamodb
        recorded = recorded_of(read_tags(self._call, ddb, arn))
        raised: dict[str, int | float] = {}
        for name, text in recorded.items():
            value = parse_tag(name, text, self.table)
            if raise_on_init(self.settings, name, value, self.table):
                raised[name] = value
        missing = [name for name in TABLE_TAGS if name not in recorded]
        if not missing and not raised:
            return []
        ddb.tag_resource(ResourceArn=arn, Tags=[
            {"Key": TABLE_TAGS[n], "Value": tag_value(n, getattr(self.settings, n))}
            for n in [*missing, *raised]])
        return [f"recorded {describe_value(n, getattr(self.settings, n))} on table "
                f"`{self.table}` (tag `{TABLE_TAGS[n]}`; it had none: every process now uses it)"
                for n in missing] + [
                f"raised tag `{TABLE_TAGS[n]}` of table `{self.table}` from {old:g} to "
                f"{getattr(self.settings, n):g} ({self.settings.env_name(n)}): processes "
                "started from now and the next sweep use it; running writers keep the old, "
                "shorter retry budget (safe)"
                for n, old in raised.items()]

    def _wait_active(self) -> None:
        """Block until the table is ACTIVE (created, or done applying an update)."""
        self.clients.dynamodb.get_waiter("table_exists").wait(
            TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 300})

    def _create_table(self) -> None:
        tags: list[Any] = [{"Key": "app", "Value": "eventlake"}, *tags_for(self.settings)]
        self.clients.dynamodb.create_table(
            TableName=self.table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "event_id", "AttributeType": "S"},
                                  *cast(Any, attribute_definitions())],
            KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[cast(Any, index_spec())],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            Tags=tags,
        )

    def describe(self) -> dict[str, Any]:
        """Table state for `status`: item count (approximate, AWS refreshes it ~6-hourly)."""
        ddb = self.clients.dynamodb
        try:
            desc = ddb.describe_table(TableName=self.table)["Table"]
        except ddb.exceptions.ResourceNotFoundException:
            return {"table": self.table, "exists": False}
        ttl = ddb.describe_time_to_live(TableName=self.table)["TimeToLiveDescription"]
        stream: Any = desc.get("StreamSpecification") or {}
        return {
            "table": self.table,
            "exists": True,
            "status": desc.get("TableStatus"),
            "approximate_item_count": desc.get("ItemCount", 0),
            "stream": stream.get("StreamViewType") if stream.get("StreamEnabled") else "disabled",
            "stream_arn": desc.get("LatestStreamArn"),
            "ttl": f"{ttl.get('TimeToLiveStatus', 'DISABLED')}"
                   f"{' on ' + ttl['AttributeName'] if ttl.get('AttributeName') else ''}",
            "index": next((i.get("IndexStatus", "ACTIVE")
                           for i in desc.get("GlobalSecondaryIndexes", [])
                           if i["IndexName"] == INDEX_NAME), "missing"),
            **({"legacy_index": " and ".join(old) + " (run `eventlake init` to replace it)"}
               if (old := [n for n in OLD_INDEX_NAMES
                           if any(i["IndexName"] == n
                                  for i in desc.get("GlobalSecondaryIndexes", []))]) else {}),
        }

    def require_table(self) -> None:
        """Raise TableNotFoundError unless the table exists (one DescribeTable)."""
        with self._table_errors():
            self.clients.dynamodb.describe_table(TableName=self.table)

    def table_not_found(self) -> TableNotFoundError:
        """The error for a table that does not exist: which table, where, and what to do."""
        endpoint = self.settings.endpoint_url
        where = f"region `{self.settings.region}`" + (
            f" (endpoint `{redact_url(endpoint)}`)" if endpoint else "")
        return TableNotFoundError(f"table `{self.table}` does not exist in {where}: run "
                                  "`eventlake init`, or set EVENTLAKE_TABLE to the table's name")

    # --- writes ----------------------------------------------------------------------------

    def to_item(self, event: Event, ingested_at: datetime) -> Item:
        agreed = self.table_settings()
        return item_of(event, ingested_at, retention_seconds=agreed.retention_seconds,
                       index_shards=agreed.index_shards)

    def put(self, event: Event, position: int = 0, *, deadline: Deadline | None = None
            ) -> PutResult:
        """Store one event conditionally. botocore retries throttling, 5xx and dropped
        connections (aws.py: EVENTLAKE_AWS_MAX_ATTEMPTS attempts in total, the one retry
        layer); a write still failing then is `failed` (retryable).

        With a `deadline`, no attempt starts past it and no retry is made whose pause could
        end past it (`aws.retry_deadline`): the event is then `failed` (retryable), so the
        caller can still answer with a result for every event.
        """
        if deadline is not None and deadline.left() <= 0:
            return _out_of_time(event, position, 0, None)
        # ingested_at is stamped once: botocore re-sends the same item on each attempt, so
        # retries stop in time for the write to land within the sweep's look-back.
        item = self.to_item(event, self.now())
        # the table's clock skew and settle: the sweeps' look-back, which the budget must fit
        budget = Deadline.after(self.table_settings().write_retry_seconds)
        left = budget.left if deadline is None else (
            lambda: min(budget.left(), deadline.left()))
        caller_first = deadline is not None and deadline.left() <= budget.left()
        try:
            with retry_deadline(left):
                self.clients.dynamodb.put_item(
                    TableName=self.table, Item=item,
                    ConditionExpression="attribute_not_exists(event_id)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD")
            return PutResult(position, event.event_id, Outcome.CREATED)
        except OutOfTime as stopped:
            return _out_of_time(event, position, stopped.attempts, stopped.last,
                                caller=caller_first)
        except Exception as exc:
            code = error_code(exc)
            if code == "ConditionalCheckFailedException":
                try:
                    with retry_deadline(left):
                        stored = (getattr(exc, "response", {}).get("Item")
                                  or self._get(event.event_id))
                except OutOfTime as stopped:
                    return _out_of_time(event, position, stopped.attempts, stopped.last,
                                        caller=caller_first)
                return self._compare(event, stored, position)
            if code == "ValidationException" and "size" in str(exc).lower():
                return PutResult(position, event.event_id, Outcome.INVALID,
                                 f"DynamoDB refused the item: {exc}", "item.too_large")
            if code == "ResourceNotFoundException":
                return PutResult(position, event.event_id, Outcome.FAILED,
                                 str(self.table_not_found()), TABLE_MISSING)
            if not is_transient(exc):
                return PutResult(position, event.event_id, Outcome.FAILED,
                                 f"DynamoDB refused the write ({code or type(exc).__name__}):"
                                 f" {redact(str(exc))}")
            return PutResult(position, event.event_id, Outcome.FAILED,
                             f"gave up after {self._attempts(exc)} attempts "
                             f"({code or ''}): {redact(str(exc))}; {RETRY_ADVICE}",
                             retryable=True)

    def _attempts(self, exc: BaseException) -> int:
        """How many attempts botocore made before raising `exc` (its RetryAttempts + 1; the
        configured total when the error carries no response, e.g. a dropped connection)."""
        response = getattr(exc, "response", None)
        retries = (response.get("ResponseMetadata", {}).get("RetryAttempts")
                   if isinstance(response, dict) else None)
        return retries + 1 if isinstance(retries, int) else self.settings.aws_max_attempts

    def _get(self, event_id: str) -> Item | None:
        with self._table_errors():
            response = self.clients.dynamodb.get_item(TableName=self.table,
                                                      Key={"event_id": {"S": event_id}},
                                                      ConsistentRead=True)
        return response.get("Item")

    @staticmethod
    def _compare(event: Event, stored: Item | None, position: int) -> PutResult:
        if stored is None:  # deleted (TTL) between the failed condition and the read
            return PutResult(position, event.event_id, Outcome.FAILED,
                             "the stored copy vanished while checking it; safe to retry",
                             retryable=True)
        stored_hash = stored.get("content_hash", {}).get("S")
        # A retry of an event sent without a timestamp: ingestion time differs, content not.
        # Sent without an event_id too, its id was derived from that content alone.
        if stored_hash == event.content_hash or (
                event.timestamp_defaulted and _same_except_timestamp(event, stored)):
            return PutResult(position, event.event_id, Outcome.DUPLICATE,
                             DERIVED_DUPLICATE if event.event_id_derived else None)
        return PutResult(
            position, event.event_id, Outcome.CONFLICT,
            f"event `{event.event_id}` is already stored with different content (stored hash "
            f"`{(stored_hash or 'none')[:12]}`, sent `{event.content_hash[:12]}`); events are "
            "immutable: send changes as a new event with a new event_id")

    def put_many(self, events: Sequence[Event], positions: Sequence[int] | None = None, *,
                 deadline: Deadline | None = None) -> list[PutResult]:
        """Store events concurrently (bounded pool); one result per event, in order.

        An event_id repeated in `events` is written in a later wave than its earlier
        occurrence, so the first one sent is the one stored and the later ones are compared
        with it (`duplicate` or `conflict`), whichever concurrent write would land first. An
        event sent again identical is not written again: it is answered as its first
        occurrence was (`created` read as `duplicate`), so 1,000 copies of one event cost one
        write, not 1,000 waves of one write each; and an event under an id this call stored is
        compared with what it stored, not written (`conflict` or `duplicate`)."""
        positions = list(range(len(events))) if positions is None else list(positions)
        if len(positions) != len(events):
            raise ValueError(f"{len(events)} events but {len(positions)} positions")
        if events:
            self.table_settings()  # a disagreeing process refuses here, before any write

        def put(index: int) -> PutResult:
            return self.put(events[index], positions[index], deadline=deadline)

        if len(events) <= 1:
            return [put(i) for i in range(len(events))]
        waves: list[list[int]] = []  # wave n: the (n+1)-th distinct event under each id
        seen: dict[str, int] = {}
        first: dict[Event, int] = {}  # each distinct event's first index
        copies: list[tuple[int, int]] = []  # (index, its identical first occurrence's index)
        for index, event in enumerate(events):
            if (earlier := first.setdefault(event, index)) != index:
                copies.append((index, earlier))
                continue
            n = seen.get(event.event_id, 0)
            seen[event.event_id] = n + 1
            if n == len(waves):
                waves.append([])
            waves[n].append(index)
        results: list[PutResult | None] = [None] * len(events)
        # the item this call created under an id: what a later event under it is compared with
        # without a write (1,000 different events under one id are 1 write and 999 answers,
        # not 1,000 waves of one write each; nothing but this call can replace that item)
        stored: dict[str, Item] = {}
        workers = min(self.settings.put_concurrency, len(waves[0]))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eventlake-put") as pool:
            for wave in waves:
                todo = []
                for index in wave:
                    held = stored.get(events[index].event_id)
                    if held is None:
                        todo.append(index)
                    else:
                        results[index] = self._compare(events[index], held, positions[index])
                for index, result in zip(todo, pool.map(put, todo), strict=True):
                    results[index] = result
                    if result.outcome is Outcome.CREATED:
                        stored[events[index].event_id] = self.to_item(events[index], self.now())
        for index, earlier in copies:  # each `earlier` was written in a wave above
            if (answered := results[earlier]) is not None:
                results[index] = _as_copy(answered, events[index], positions[index])
        return [r for r in results if r is not None]

    # --- reads -----------------------------------------------------------------------------

    def read_ingested(self, since: datetime, until: datetime) -> Iterator[Item]:
        """Every item ingested in [since, until), whole: `read_ingested_pages` one by one."""
        for page in self.read_ingested_pages(since, until):
            yield from page

    def read_ingested_pages(self, since: datetime, until: datetime) -> Iterator[list[Item]]:
        """Every item ingested in [since, until), whole, a page of the index at a time: its
        entries, then BatchGetItem for all of them (items TTL deleted in between are left out,
        as if deleted before the read). Readers that have the lake read `read_index_pages`
        and `fetch` only what it lacks, which costs a fraction of this."""
        for page in self.read_index_pages(since, until):
            partial = [e["event_id"]["S"] for e in page if not is_whole(e)]
            if not partial:
                yield page
                continue
            fetched = self.fetch(partial)
            if fetched.vanished:  # reconcile and the demo read here: say what they will not see
                _log.warning("%d item(s) the index listed were gone when fetched (TTL or a "
                             "delete) and are left out: %s", len(fetched.vanished),
                             ", ".join(fetched.vanished[:5]))
            whole = [e if is_whole(e) else fetched.items.get(e["event_id"]["S"]) for e in page]
            yield [item for item in whole if item is not None]

    def fetch(self, event_ids: Sequence[str]) -> Fetched:
        """The whole items of `event_ids` (BatchGetItem, hot/fetch.py), and the ids no read
        found (deleted: by TTL, after an index read listed them)."""
        return fetch_items(self.clients.dynamodb, self.table, event_ids, call=self._call,
                           workers=self.settings.put_concurrency)

    @property
    def read_floor(self) -> int | None:
        """The fewest index shards a window read queries, as set by `read_at_least`; None
        until lake-aware code (lake/shards.py) has set it."""
        return self._read_floor

    def read_at_least(self, shards: int) -> bool:
        """Make window reads query at least `shards` shards per day, never fewer than before:
        readers that have the lake set the largest count it has seen in force, so a lowered
        count hides no event written with the old one. True when this raised the floor."""
        with self._lock:
            if self._read_floor is not None and self._read_floor >= shards:
                return False
            self._read_floor = shards
            return True

    def shards_to_read(self) -> int:
        """Index shards a window read queries per day: the table's count, or the floor when
        larger (a writer with fewer shards writes a subset of them)."""
        return max(self.table_settings().index_shards, self._read_floor or 0)

    def index_name(self) -> str:
        """The index readers query: an old one while one is queryable (a migration has not
        finished), else the current one (index.choose; one DescribeTable, remembered)."""
        if self._index is None:
            with self._table_errors():
                desc = self.clients.dynamodb.describe_table(TableName=self.table)["Table"]
            self._index = choose(dict(desc), self.table)
        return self._index

    def read_index_pages(self, since: datetime, until: datetime) -> Iterator[list[Item]]:
        """The index entries of the items ingested in [since, until), through parallel
        Queries per (day, shard) (no Scan), a partition at a time: event_id, ingest_shard,
        ingest_key, and timestamp, content_hash, expires_at where the index knows them
        (index.decode_entry; the whole item while the oldest index is still in use:
        `is_whole`).

        Entries come grouped by (day, shard), not globally sorted. The index is eventually
        consistent: callers that need completeness leave a settle lag before `until`, and an
        item written a moment ago (normally < 1 s, longer while the index is throttled) is not
        listed yet, so a reader (the `events` view) sees an accepted event once the index
        has it, not the instant its PutItem returns. moto's index is synchronous; real
        DynamoDB's is not (tests/archive/test_review30_dynamodb.py simulates the lag).
        """
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("read_ingested needs timezone-aware datetimes (UTC)")
        if until <= since:
            return
        lo, hi = as_utc(since), as_utc(until)
        shards = self.shards_to_read()
        day = as_utc(since).replace(hour=0, minute=0, second=0, microsecond=0)
        keys: list[str] = []
        while day < until:
            keys.extend(f"{day_key(day)}#{s}" for s in range(shards))
            day += timedelta(days=1)
        workers = max(1, min(self.settings.put_concurrency, len(keys)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eventlake-read") as pool:
            # Bounded look-ahead: at most `workers` partitions are held in memory at once.
            pending = []
            it = iter(keys)
            for key in it:
                pending.append(pool.submit(self._query_partition, key, lo, hi))
                if len(pending) >= workers:
                    break
            while pending:
                page = pending.pop(0).result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(self._query_partition, nxt, lo, hi))
                if page:
                    yield page

    def _query_partition(self, shard_key: str, lo: datetime, hi: datetime) -> list[Item]:
        index = self.index_name()
        try:
            return self._query_index(index, shard_key, lo, hi)
        except Exception as exc:
            if not missing_index(exc) and not missing_index(exc.__cause__ or exc):
                raise
        # a migration deleted the index we chose (index.py): choose again, read again
        with self._lock:
            if self._index == index:
                self._index = None
        return self._query_index(self.index_name(), shard_key, lo, hi)

    def _query_index(self, index: str, shard_key: str, lo: datetime, hi: datetime
                     ) -> list[Item]:
        """The entries of one (day, shard) ingested in [lo, hi): the current index's decoded
        (index.decode_entry), an old one's as they are."""
        ddb = self.clients.dynamodb
        items: list[Item] = []
        current = index == INDEX_NAME
        kwargs: dict[str, Any] = {"TableName": self.table, "IndexName": index}
        if current:
            # every `k` is longer than an 8-byte bound, so sorts after the bound it starts
            # with: BETWEEN lo AND hi is [lo, hi)
            kwargs.update(KeyConditionExpression="#s = :s AND #k BETWEEN :lo AND :hi",
                          ExpressionAttributeNames={"#s": SHARD, "#k": KEY},
                          ExpressionAttributeValues={":s": {"S": shard_key},
                                                     ":lo": {"B": key_bound(lo)},
                                                     ":hi": {"B": key_bound(hi)}})
        else:
            # `<ingested_at>#<id>` sorts after `<ingested_at>`, so BETWEEN lo AND hi is [lo, hi)
            kwargs.update(
                KeyConditionExpression="ingest_shard = :s AND ingest_key BETWEEN :lo AND :hi",
                ExpressionAttributeValues={":s": {"S": shard_key}, ":lo": {"S": format_ts(lo)},
                                           ":hi": {"S": format_ts(hi)}})
        while True:
            response = self._call(lambda: ddb.query(**kwargs))
            page = response.get("Items", [])
            items.extend([decode_entry(e) for e in page] if current else page)
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return items
            kwargs["ExclusiveStartKey"] = last_key

    def scan_pages(self, segment: int = 0, total_segments: int = 1) -> Iterator[list[Item]]:
        """Every item of one segment of a parallel Scan, a page (<= 1 MB) at a time.

        For backfills only (items of other producers carry no index attributes): run the
        segments in parallel threads. Regular reads go through the index, never a Scan.
        """
        if not 0 <= segment < total_segments:
            raise ValueError(f"segment {segment} is not in [0, {total_segments})")
        ddb = self.clients.dynamodb
        kwargs: dict[str, Any] = {"TableName": self.table}
        if total_segments > 1:
            kwargs.update(Segment=segment, TotalSegments=total_segments)
        while True:
            response = self._call(lambda: ddb.scan(**kwargs))
            items: list[Item] = response.get("Items", [])
            if items:
                yield items
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return
            kwargs["ExclusiveStartKey"] = last_key

    def _call(self, call: Callable[[], Any]) -> Any:
        """One DynamoDB call (botocore retries it, aws.py): a missing table raises
        TableNotFoundError, a transient failure botocore gave up on TransientError."""
        try:
            with self._table_errors():
                return call()
        except Exception as exc:
            if is_transient(exc):
                raise TransientError(f"DynamoDB kept failing: {redact(str(exc))}") from exc
            raise

    @contextmanager
    def _table_errors(self) -> Iterator[None]:
        """DynamoDB's ResourceNotFoundException -> TableNotFoundError naming the table."""
        try:
            yield
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise self.table_not_found() from exc
            raise


def _as_copy(answered: PutResult, event: Event, position: int) -> PutResult:
    """The result of `event` at `position`, identical to an event of its request answered
    `answered`: what writing it again would answer (stored then: `duplicate`)."""
    if answered.outcome is Outcome.CREATED:
        return PutResult(position, event.event_id, Outcome.DUPLICATE,
                         DERIVED_DUPLICATE if event.event_id_derived else None)
    return replace(answered, position=position)


def _out_of_time(event: Event, position: int, attempts: int, last: BaseException | None,
                 *, caller: bool = True) -> PutResult:
    if last is not None:
        what = (f"stopped retrying after {attempts} attempt(s) "
                f"({error_code(last) or type(last).__name__}: {redact(str(last))})")
    else:
        what = "not attempted"
    why = ("to answer in time (the caller's deadline was near)" if caller else
           "so that it lands within what the sweep re-reads behind its watermark "
           "(EVENTLAKE_CLOCK_SKEW_SECONDS + EVENTLAKE_ARCHIVE_SETTLE_SECONDS)")
    return PutResult(position, event.event_id, Outcome.FAILED, f"{what} {why}; {RETRY_ADVICE}",
                     retryable=True)


def _same_except_timestamp(event: Event, stored: Item) -> bool:
    def s(name: str) -> str | None:
        # an item's string attributes: "S" of the low-level client's form is always a str
        return cast("str | None", stored.get(name, {}).get("S"))

    return (s("event_type") == event.event_type and s("event_payload") == event.payload
            and s("source") == event.source and s("subject") == event.subject)

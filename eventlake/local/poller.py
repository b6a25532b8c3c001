"""Lambda's DynamoDB Streams event source mapping, emulated: the local stack's stream trigger.

`StreamPoller` reads a table's stream the way Lambda's poller does and calls the same handler
(`eventlake.handlers.stream.handler`) with the same event shape, so moto and LocalStack run the
code that runs on AWS. What it reproduces:

- shards in lineage order: a child shard is read only once its parent is read to the end;
- batches of up to `batch_size` records, optionally filled for up to `batching_window_s`;
- the event Lambda delivers, not the one boto3 returns (`eventlake.local.lambda_runtime`);
- partial batch responses (`ReportBatchItemFailures`): everything before the lowest failed
  record is checkpointed, and the batch is re-delivered starting AT that record::

      batch   r0 r1 r2 [r3] r4 r5        handler: {"batchItemFailures": [{"itemIdentifier": r3}]}
      commit  r0 r1 r2                   position = r2
      next    r3 r4 r5 r6 ...            iterator AT_SEQUENCE_NUMBER r3

- a handler exception, a malformed response or an `itemIdentifier` not in the batch fails the
  whole batch; after `max_retries` re-deliveries from the same record, `PollerError` names the
  shard and sequence number. Records are never skipped (Lambda would, after its retry limit:
  locally a loud stop is worth more than an on-failure destination).

Positions (shard -> last checkpointed sequence number) can be saved and handed to a new poller,
which resumes right after them. One poller is driven by one thread at a time (`run`).

On moto (5.2.5) nothing needs emulating: its single, never-closing shard honours
AT_/AFTER_SEQUENCE_NUMBER, TRIM_HORIZON and LATEST, and GetRecords past the end returns no records
and an iterator that later sees new ones. It does write `awsRegion` "us-east-1" and eventVersion
"1.0" into every record, which `lambda_record` replaces, and it keeps every iterator it ever
issued (one per GetRecords call), so poll an idle local stack every second or so, not in a spin.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from eventlake.aws import error_code
from eventlake.errors import ConfigError, EventLakeError
from eventlake.local.lambda_runtime import LambdaContext, first_failure, lambda_record

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams.literals import ShardIteratorTypeType

    from eventlake.aws import Clients

log = logging.getLogger(__name__)

StartingPosition = Literal["TRIM_HORIZON", "LATEST"]
StreamHandler = Callable[[dict[str, Any], Any], "dict[str, Any] | None"]
"""Lambda's (event, context) signature; returns a partial batch response or None."""

GET_RECORDS_LIMIT = 1000
"""GetRecords' own cap on `Limit`."""
MAX_BATCH_BYTES = 5 * 1024 * 1024
"""Stop filling a batch here: one more GetRecords page (<= 1 MB) must still fit Lambda's 6 MB
invocation payload."""


class PollerError(EventLakeError):
    """The stream cannot be read, or the handler keeps failing at one record.

    `shard_id` and `sequence_number` say where delivery stopped; everything before that record
    is checkpointed in `StreamPoller.positions`, nothing after it was skipped.
    """

    def __init__(self, message: str, *, shard_id: str | None = None,
                 sequence_number: str | None = None, attempts: int = 0) -> None:
        self.shard_id = shard_id
        self.sequence_number = sequence_number
        self.attempts = attempts
        super().__init__(message)


@dataclass
class PollStats:
    """What a `poll_once` (or a whole `run`) did."""

    batches: int = 0
    """Handler invocations, re-deliveries included."""
    records: int = 0
    """Records checkpointed (the handler succeeded with them)."""
    retries: int = 0
    """Re-deliveries after a failed or partly failed batch."""
    positions: dict[str, str] = field(default_factory=dict)
    """shard_id -> last checkpointed sequence number, after the poll."""

    def add(self, other: PollStats) -> None:
        self.batches += other.batches
        self.records += other.records
        self.retries += other.retries
        self.positions = dict(other.positions)


# --- the poller -----------------------------------------------------------------------------

class StreamPoller:
    """Feeds a table's DynamoDB stream to a Lambda-style handler, as an event source mapping.

    `positions` (shard_id -> sequence number) resumes right after those records. `start` says
    where shards without a position begin when the poller starts: `TRIM_HORIZON` (everything
    kept, 24 h on AWS) or `LATEST` (only what is written from now on); shards that appear later
    are always read from their start, as Lambda does.
    """

    def __init__(self, clients: Clients, table: str, handler: StreamHandler, *,
                 batch_size: int = 100, batching_window_s: float = 0.0, max_retries: int = 3,
                 start: StartingPosition = "TRIM_HORIZON",
                 positions: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 retry_backoff_s: float = 0.1,
                 function_name: str = "eventlake-stream-local",
                 timeout_s: float = 300.0) -> None:
        if not 1 <= batch_size <= 10_000:
            raise ConfigError(f"batch_size={batch_size!r}: Lambda takes 1 to 10000")
        if not 0 <= batching_window_s <= 300:
            raise ConfigError(f"batching_window_s={batching_window_s!r}: Lambda takes 0 to 300")
        if max_retries < 0:
            raise ConfigError(f"max_retries={max_retries!r}: expected 0 or more")
        if start not in ("TRIM_HORIZON", "LATEST"):
            raise ConfigError(f"start={start!r}: expected `TRIM_HORIZON` or `LATEST`")
        self.clients = clients
        self.table = table
        self.handler = handler
        self.batch_size = batch_size
        self.batching_window_s = batching_window_s
        self.max_retries = max_retries
        self.start = start
        self.retry_backoff_s = retry_backoff_s
        self.function_name = function_name
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._positions: dict[str, str] = dict(positions or {})
        self._stream_arn: str | None = None
        self._initial_shards: set[str] | None = None
        self._exhausted: set[str] = set()
        # Where each open shard's reading stopped (an empty page still moves an iterator on),
        # and the only way to keep a LATEST start before the first record arrives.
        self._iterators: dict[str, str] = {}
        self._last_error: BaseException | None = None  # the handler's, chained to PollerError

    @property
    def positions(self) -> dict[str, str]:
        """shard_id -> last checkpointed sequence number (a copy: save it, resume from it)."""
        with self._lock:
            return dict(self._positions)

    @property
    def stream_arn(self) -> str:
        """The table's LatestStreamArn (looked up once)."""
        if self._stream_arn is None:
            ddb = self.clients.dynamodb
            try:
                desc = ddb.describe_table(TableName=self.table)["Table"]
            except ddb.exceptions.ResourceNotFoundException as exc:
                raise PollerError(f"table `{self.table}` does not exist: run `eventlake init`"
                                  ) from exc
            spec: Mapping[str, Any] = desc.get("StreamSpecification") or {}
            arn = desc.get("LatestStreamArn")
            if not arn or not spec.get("StreamEnabled"):
                raise PollerError(f"table `{self.table}` has no stream enabled: run "
                                  "`eventlake init` (it turns on NEW_AND_OLD_IMAGES)")
            self._stream_arn = arn
        return self._stream_arn

    def run(self, stop: threading.Event, interval_s: float = 1.0) -> PollStats:
        """Poll until `stop` is set, `interval_s` apart; returns the totals.

        A `PollerError` ends the loop (raised): a stuck record stops the trigger loudly.
        """
        total = PollStats()
        while not stop.is_set():
            total.add(self.poll_once())
            stop.wait(interval_s)
        return total

    def poll_once(self) -> PollStats:
        """Deliver everything in the stream now, shard by shard, parents before children."""
        stats = PollStats()
        shards = self._shards()
        by_id = {s["ShardId"]: s for s in shards}
        if self._initial_shards is None:
            self._initial_shards = set(by_id)
            if self.start == "LATEST":  # closed shards hold only records older than the start
                self._exhausted |= {sid for sid, s in by_id.items()
                                    if _closed(s) and sid not in self._positions}
        pending = sorted((s for s in shards if s["ShardId"] not in self._exhausted),
                         key=lambda s: int(s["SequenceNumberRange"]["StartingSequenceNumber"]))
        while pending:
            ready = [s for s in pending
                     if s.get("ParentShardId") not in by_id
                     or s.get("ParentShardId") in self._exhausted]
            if not ready:  # parents still open: their children wait for a later poll
                break
            for shard in ready:
                pending.remove(shard)
                if self._poll_shard(shard, stats):
                    self._exhausted.add(shard["ShardId"])
        stats.positions = self.positions
        return stats

    # --- reading ----------------------------------------------------------------------------

    def _shards(self) -> list[Mapping[str, Any]]:
        streams = self.clients.dynamodbstreams
        shards: list[Mapping[str, Any]] = []
        desc = streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        while True:
            shards.extend(desc.get("Shards", []))
            last = desc.get("LastEvaluatedShardId")
            if not last:  # moto never sets it (and ignores ExclusiveStartShardId)
                return shards
            desc = streams.describe_stream(StreamArn=self.stream_arn,
                                           ExclusiveStartShardId=last)["StreamDescription"]

    def _iterator(self, shard_id: str, kind: ShardIteratorTypeType,
                  sequence_number: str | None = None) -> str:
        streams = self.clients.dynamodbstreams
        try:
            if sequence_number is None:
                response = streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=kind)
            else:
                response = streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=kind,
                    SequenceNumber=sequence_number)
        except Exception as exc:
            if error_code(exc) == "TrimmedDataAccessException":
                raise PollerError(
                    f"shard `{shard_id}`: records after `{sequence_number}` were trimmed from "
                    "the stream (older than 24 h) before they were delivered: run the sweep "
                    "(`eventlake archive`) to archive them from the table",
                    shard_id=shard_id, sequence_number=sequence_number) from exc
            raise
        return response["ShardIterator"]

    def _resume_iterator(self, shard_id: str) -> str:
        """Where a shard's reading starts when no live iterator is at hand."""
        position = self.positions.get(shard_id)
        if position is not None:
            return self._iterator(shard_id, "AFTER_SEQUENCE_NUMBER", position)
        if self.start == "LATEST" and shard_id in (self._initial_shards or ()):
            return self._iterator(shard_id, "LATEST")
        return self._iterator(shard_id, "TRIM_HORIZON")

    def _read_batch(self, iterator: str) -> tuple[list[Mapping[str, Any]], str | None]:
        """Records for one invocation, and the iterator that continues after them."""
        streams = self.clients.dynamodbstreams
        deadline = self._clock() + self.batching_window_s
        records: list[Mapping[str, Any]] = []
        size = 0
        while True:
            limit = min(GET_RECORDS_LIMIT, self.batch_size - len(records))
            page = streams.get_records(ShardIterator=iterator, Limit=limit)
            got = page.get("Records", [])
            records.extend(got)
            size += sum(int(r.get("dynamodb", {}).get("SizeBytes", 0)) for r in got)
            next_iterator = page.get("NextShardIterator")
            if (next_iterator is None or not got or len(records) >= self.batch_size
                    or size >= MAX_BATCH_BYTES or self._clock() >= deadline):
                return records, next_iterator
            iterator = next_iterator

    def _poll_shard(self, shard: Mapping[str, Any], stats: PollStats) -> bool:
        """Deliver a shard's records up to now; True once a closed shard is read to its end."""
        shard_id: str = shard["ShardId"]
        closed = _closed(shard)
        iterator: str | None = self._iterators.pop(shard_id, None)
        fresh = iterator is None
        if iterator is None:
            iterator = self._resume_iterator(shard_id)
        failing: tuple[str, int] | None = None  # (sequence number, re-deliveries from it)
        while iterator is not None:
            try:
                records, next_iterator = self._read_batch(iterator)
            except Exception as exc:
                if error_code(exc) != "ExpiredIteratorException" or fresh:
                    raise
                iterator, fresh = self._resume_iterator(shard_id), True  # kept >15 min idle
                continue
            if not records:
                if next_iterator is not None and not closed:  # caught up with an open shard
                    self._iterators[shard_id] = next_iterator
                    return False
                iterator = next_iterator  # a closed shard: read on to its end (None)
                continue
            seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
            failed_at = self._deliver(records, seqs, stats)
            if failed_at is None:
                self._checkpoint(shard_id, seqs[-1], len(seqs), stats)
                iterator, failing = next_iterator, None
                continue
            if failed_at:
                self._checkpoint(shard_id, seqs[failed_at - 1], failed_at, stats)
            seq = seqs[failed_at]
            attempts = failing[1] + 1 if failing and failing[0] == seq else 1
            if attempts > self.max_retries:
                raise PollerError(
                    f"stream handler failed {attempts} times at sequence number `{seq}` of "
                    f"shard `{shard_id}` (table `{self.table}`); records before it are "
                    "checkpointed, none after it skipped: fix the handler and poll again",
                    shard_id=shard_id, sequence_number=seq, attempts=attempts,
                ) from self._last_error
            failing = (seq, attempts)
            stats.retries += 1
            log.warning("shard %s: re-delivering from %s (retry %d of %d)", shard_id, seq,
                        attempts, self.max_retries)
            self._sleep(min(self.retry_backoff_s * 2 ** (attempts - 1), 10.0))
            iterator = self._iterator(shard_id, "AT_SEQUENCE_NUMBER", seq)
        return True

    def _deliver(self, records: Sequence[Mapping[str, Any]], seqs: Sequence[str],
                 stats: PollStats) -> int | None:
        """Invoke the handler once; the index of the first record to re-deliver, or None."""
        arn = self.stream_arn
        event = {"Records": [lambda_record(r, arn) for r in records]}
        context = LambdaContext(
            function_name=self.function_name, aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=arn.split(":table/")[0].replace(":dynamodb:", ":lambda:")
            + f":function:{self.function_name}",
            deadline=self._clock() + self.timeout_s, clock=self._clock)
        stats.batches += 1
        self._last_error = None
        try:
            response = self.handler(event, context)
        except Exception as exc:  # Lambda: a function error fails the whole batch
            log.warning("stream handler raised %r: whole batch failed", exc)
            self._last_error = exc
            return 0
        return first_failure(response, seqs)

    def _checkpoint(self, shard_id: str, seq: str, count: int, stats: PollStats) -> None:
        with self._lock:
            self._positions[shard_id] = seq
        stats.records += count


def _closed(shard: Mapping[str, Any]) -> bool:
    return "EndingSequenceNumber" in (shard.get("SequenceNumberRange") or {})

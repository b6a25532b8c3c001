"""A model-based test of the whole pipeline: hypothesis chooses the interleaving.

The machine drives the real code in process, on moto: producers put events (new ids,
identical re-sends, conflicting re-sends, invalid ones, late timestamps, a producer clock
minutes off); the DynamoDB stream is a queue of records that Lambda delivers in batches
(in order, as subsets, again, with a record twice, with a lake write failing part-way and
re-delivered from `failed_from`), or loses for good (Lambda down past 24 h); the clock moves;
the archive flow's sweep runs, sometimes with a lake write failing mid-way; a partition is
compacted; TTL deletes what expired (`local.stack.expire_ttl`) and its REMOVEs are delivered
or lost; MODIFY records arrive.

Time passes in hours (`advance`) or up to a day (`pass_time`, which runs the scheduled sweep
every SWEEP_EVERY and TTL after each interval). While the scheduler runs, the guarantee's
precondition is kept: a successful sweep within MAX_SWEEP_GAP (< retention) of the last one,
so nothing expires unswept. The gap may exceed retention - ttl_safety_hours, so events get
within the safety margin of expiry: a sweep that fails then must fail loudly (TtlGuardError),
never quietly. The scheduler may go down (`scheduler_down`) for longer than retention: the
precondition broken on purpose.

Invariants: after every step, each lake row carries an accepted (event_id, content_hash) and
nothing refused (invalid or conflicting) is there; every record of a batch reported done is
durable, and `batchItemFailures` names the first record that is not (all before it are); a
sound sweep leaves nothing in the table ingested before its window's end out of the lake.
Nothing lost silently: at each TTL expiry every deleted event is in the lake with its accepted
hash, unless its INSERT was never archived, no sweep read it, and the precondition was broken;
each such event lies in the [watermark_before, overdue_until) the next successful sweep reports
(or a late INSERT or REMOVE archived it meanwhile). At the end the `events` view holds every
accepted event but those reported lost, once, with its hash; after compaction a plain pyarrow
read counts each id once, and the quarantine holds exactly the MODIFY records delivered.

CI runs a fixed, derandomized profile; EVENTLAKE_MODEL_EXAMPLES=500 (and optionally
EVENTLAKE_MODEL_STEPS) runs a longer, random exploration.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from clock_support import Clock
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from stream_support import lambda_event, removal

from eventlake import EventLake, Outcome, Settings
from eventlake.archive.report import SweepReport
from eventlake.archive.sweep import sweep
from eventlake.archive.ttlguard import TtlGuardError
from eventlake.events.model import FUTURE_TOLERANCE
from eventlake.events.times import parse_timestamp
from eventlake.handlers import stream
from eventlake.hot.store import Item
from eventlake.lake.compact import compact
from eventlake.local.stack import expire_ttl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # in-process moto; ~15 s CPU

START = datetime(2026, 3, 1, 6, tzinfo=UTC)
RETENTION_HOURS = 24
SAFETY_HOURS = 6
MAX_SWEEP_GAP = timedelta(hours=20)
"""The precondition: a successful sweep at least this often (< retention less the producers'
clock error; > retention - safety, so events do come within the safety margin)."""
LONG = int(os.environ.get("EVENTLAKE_MODEL_EXAMPLES", "0"))
MODIFY_RULE = "stream.modify"
SWEEP_EVERY = timedelta(hours=8)
"""The archive flow's schedule, as pass_time runs it (< MAX_SWEEP_GAP)."""


def _id(record: dict[str, Any]) -> str:
    image = record["dynamodb"].get("NewImage") or record["dynamodb"]["OldImage"]
    event_id: str = image["event_id"]["S"]
    return event_id


class InjectedFailure(OSError):
    """A lake write made to fail by the machine."""


class Pipeline(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        from moto import mock_aws

        self.mock = mock_aws()
        self.mock.start()
        self.tmp = Path(tempfile.mkdtemp(prefix="eventlake-model-"))
        self.settings = Settings(table="model", lake_uri=str(self.tmp / "lake"),
                                 retention_days=RETENTION_HOURS / 24,
                                 ttl_safety_hours=SAFETY_HOURS, index_shards=1,
                                 clock_correction=False)
        self.lake = EventLake(self.settings)
        self.lake.init()
        self.clock = Clock(START)
        self.lake.hot._clock = self.clock
        self.cold = self.lake.cold
        stream.reset(self.cold)
        # The schedule's first run at deployment: before any watermark a sweep reports no
        # overdue stretch (nothing was promised yet: sweep._overdue_until).
        sweep(self.cold, self.lake.hot, self.settings)
        self.real_write = self.cold.write_partition  # the stream's and compaction's writes
        self.real_sweep_write = self.cold.write  # the sweep's (archive_items)
        self.fail_on: int | None = None  # fail the n-th lake write from now (1 = the next)
        self.writes = 0
        self.cold.write_partition = self._write  # type: ignore[method-assign]
        self.cold.write = self._sweep_write  # type: ignore[method-assign]

        self.accepted: dict[str, str] = {}  # event_id -> the content hash accepted
        self.items: dict[str, Item] = {}  # event_id -> its item as stored
        self.expired: set[str] = set()  # deleted by TTL
        self.refused: set[str] = set()  # ids of invalid events (never accepted)
        self.next_id = 0
        self.seq = 500000000000000000000
        self.pending: list[dict[str, Any]] = []  # stream records not yet delivered
        self.delivered: list[list[dict[str, Any]]] = []  # batches Lambda finished
        self.modifies_sent: set[str] = set()  # sequence numbers of MODIFYs delivered
        self.last_sweep = START
        self.scheduler_up = True  # the archive flow's schedule runs (pass_time sweeps)
        self.gap_broken = False  # the precondition broken: no successful sweep for > the gap
        self.insert_done: set[str] = set()  # ids whose INSERT a finished batch archived
        self.swept: set[str] = set()  # ids a successful sweep's window read from the table
        self.lost: set[str] = set()  # TTL deleted, in no lake file, no sweep report yet
        self.reported_lost: set[str] = set()  # the same, in a sweep's overdue stretch

    # --- plumbing ------------------------------------------------------------------------

    def _write(self, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        if self.fail_on is not None and self.writes >= self.fail_on:
            self.fail_on = None
            raise InjectedFailure("injected: the lake write failed")
        return self.real_write(*args, **kwargs)

    def _sweep_write(self, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        if self.fail_on is not None and self.writes >= self.fail_on:
            self.fail_on = None
            raise InjectedFailure("injected: the sweep's lake write failed")
        return self.real_sweep_write(*args, **kwargs)

    def _arm(self, nth: int | None) -> None:
        self.writes = 0
        self.fail_on = nth

    def _record(self, item: Item, name: str = "INSERT") -> dict[str, Any]:
        self.seq += 1
        record: dict[str, Any] = lambda_event([item], first_seq=self.seq)["Records"][0]
        if name == "MODIFY":
            changed = {**item, "event_type": {"S": "order.changed"}}
            record["eventName"] = "MODIFY"
            record["dynamodb"]["OldImage"] = item
            record["dynamodb"]["NewImage"] = changed
        return record

    def _stored(self, event_id: str) -> Item:
        item: Item = self.lake.clients.dynamodb.get_item(
            TableName=self.settings.table, Key={"event_id": {"S": event_id}},
            ConsistentRead=True)["Item"]
        return item

    def _in_hot(self) -> list[str]:
        return sorted(set(self.accepted) - self.expired)

    def _deliver(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Lambda's handler on `batch`; the records it must re-deliver (from failed_from)."""
        had = {i for i, _ in self._lake_rows()}
        response = stream.handler({"Records": batch})
        failures: list[dict[str, str]] = response["batchItemFailures"]
        done = batch
        rest: list[dict[str, Any]] = []
        if failures:
            [failure] = failures
            at = next(i for i, r in enumerate(batch)
                      if r["dynamodb"]["SequenceNumber"] == failure["itemIdentifier"])
            done, rest = batch[:at], batch[at:]
            assert rest, "failed_from names a record of the batch"
            self._check_failed_from(batch, at)
            event("stream batch failed part-way, re-delivered from failed_from")
        self.modifies_sent.update(r["dynamodb"]["SequenceNumber"] for r in done
                                  if r["eventName"] == "MODIFY")
        self.insert_done.update(_id(r) for r in done if r["eventName"] == "INSERT")
        durable = self._durable(done)
        dropped = {_id(r) for r, ok in zip(done, durable, strict=True) if not ok}
        assert not dropped, f"a batch reported done holds records not durable: {sorted(dropped)}"
        rescued = {_id(r) for r in done if r["eventName"] == "REMOVE"} - had
        if rescued:
            event("a REMOVE's old image was the event's only copy: archived from it")
        self.delivered.append(batch)
        return rest

    def _durable(self, records: list[dict[str, Any]]) -> list[bool]:
        """Per record: what it carries is in the lake (INSERT, REMOVE: its event with the
        accepted hash) or the quarantine (MODIFY: its sequence number)."""
        rows = dict(self._lake_rows())
        quarantined = {r["dynamodb"]["SequenceNumber"] for r in
                       (e.record for e in self.cold.read_quarantine())
                       if isinstance(r, dict) and r.get("eventName") == "MODIFY"}
        return [r["dynamodb"]["SequenceNumber"] in quarantined if r["eventName"] == "MODIFY"
                else rows.get(_id(r)) == self.accepted[_id(r)] for r in records]

    def _check_failed_from(self, batch: list[dict[str, Any]], at: int) -> None:
        """`batchItemFailures` names the first record not durable: Lambda re-delivering from
        there loses nothing; from any later point it would lose that record (unless the lake
        got its event by another path, which only the partition's retry point can miss)."""
        durable = self._durable(batch)
        assert all(durable[:at]), (
            f"failed_from is record {at}, but records before it are not durable: "
            f"{[_id(r) for r, ok in zip(batch[:at], durable, strict=False) if not ok]}")
        assert not all(durable[at:]), (
            f"failed_from is record {at}, but every record from there is durable")
        if durable[at]:
            event("failed_from is the failed partition's first record, already durable")
        else:
            event("failed_from names a record not durable: a later point would lose it")

    def _deliver_until_done(self, batch: list[dict[str, Any]]) -> None:
        for _ in range(10):
            batch = self._deliver(batch)
            if not batch:
                return
        raise AssertionError("a batch was still failing after 10 re-deliveries")

    def _ingested(self, event_id: str) -> datetime:
        return parse_timestamp(self.items[event_id]["ingested_at"]["S"])

    def _lake_rows(self) -> list[tuple[str, str]]:
        table = self.cold.read(columns=["event_id", "content_hash"])
        return list(zip(table["event_id"].to_pylist(), table["content_hash"].to_pylist(),
                        strict=True))

    def _at_risk(self) -> set[str]:
        """Accepted events still in the table, missing from the lake, within the safety
        margin of their expiry (what the TTL guard must name)."""
        in_lake = {i for i, _ in self._lake_rows()}
        edge = self.clock.at + timedelta(hours=SAFETY_HOURS)
        return {i for i in self._in_hot() if i not in in_lake
                and datetime.fromtimestamp(int(self.items[i]["expires_at"]["N"]), UTC) <= edge}

    # --- producers -----------------------------------------------------------------------

    @rule(new=st.integers(1, 4), late_days=st.sampled_from([0, 0, 0, 1, 2, 3]),
          skew_minutes=st.sampled_from([0, 0, -8, -3, 2]),
          resend=st.integers(0, 2), conflict=st.booleans(), invalid=st.booleans())
    def put(self, new: int, late_days: int, skew_minutes: int, resend: int, conflict: bool,
            invalid: bool) -> None:
        now = self.clock.at
        producer = Clock(now + timedelta(minutes=skew_minutes))
        self.lake.hot._clock = producer
        raws: list[dict[str, Any]] = []
        expected: list[Outcome] = []
        for _ in range(new):
            self.next_id += 1
            ts = producer.at - timedelta(days=late_days, minutes=self.next_id % 50)
            raws.append({"event_id": f"e{self.next_id:05d}", "event_type": "order.placed",
                         "timestamp": ts.isoformat(), "source": "model",
                         "event_payload": {"n": self.next_id}})
            expected.append(Outcome.CREATED)
        live = [i for i in self._in_hot() if i in self.items]
        ahead = producer.at + FUTURE_TOLERANCE  # a slow producer refuses what it sees ahead
        for event_id in live[:resend]:  # a producer retrying: identical
            raws.append(self._raw_of(event_id))
            expected.append(Outcome.INVALID if self._stamp(event_id) > ahead
                            else Outcome.DUPLICATE)
        if conflict and live:  # the same id, other content
            raws.append({**self._raw_of(live[-1]), "event_payload": {"other": True}})
            expected.append(Outcome.INVALID if self._stamp(live[-1]) > ahead
                            else Outcome.CONFLICT)
        if invalid:
            self.next_id += 1
            bad = f"e{self.next_id:05d}"
            raws.append({"event_id": bad, "timestamp": now.isoformat(), "event_payload": {}})
            expected.append(Outcome.INVALID)
            self.refused.add(bad)
        try:
            results = self.lake.put_many(raws)
        finally:
            self.lake.hot._clock = self.clock
        for result in results:
            if result.outcome is Outcome.CREATED and result.event_id is not None:
                item = self._stored(result.event_id)
                self.items[result.event_id] = item
                self.accepted[result.event_id] = item["content_hash"]["S"]
                self.pending.append(self._record(item))
        assert [r.outcome for r in results] == expected, [(r.event_id, r.outcome, r.message)
                                                          for r in results]

    def _stamp(self, event_id: str) -> datetime:
        return parse_timestamp(self.items[event_id]["timestamp"]["S"])

    def _raw_of(self, event_id: str) -> dict[str, Any]:
        item = self.items[event_id]
        return {"event_id": event_id, "event_type": item["event_type"]["S"],
                "timestamp": item["timestamp"]["S"], "source": item["source"]["S"],
                "event_payload": json.loads(item["event_payload"]["S"])}

    # --- the stream ----------------------------------------------------------------------

    @precondition(lambda self: self.pending)
    @rule(n=st.integers(1, 8), twice=st.booleans())
    def deliver(self, n: int, twice: bool) -> None:
        batch, self.pending = self.pending[:n], self.pending[n:]
        if twice:  # a record twice in one batch
            batch = batch + batch[:1]
        self._deliver_until_done(batch)

    @precondition(lambda self: len(self.pending) > 1)
    @rule(picks=st.lists(st.integers(0, 15), min_size=1, max_size=5, unique=True))
    def deliver_subset(self, picks: list[int]) -> None:
        chosen = sorted({p % len(self.pending) for p in picks})
        batch = [self.pending[i] for i in chosen]
        self.pending = [r for i, r in enumerate(self.pending) if i not in set(chosen)]
        self._deliver_until_done(batch)

    @precondition(lambda self: self.pending)
    @rule(n=st.integers(1, 8), nth=st.integers(1, 3))
    def deliver_failing(self, n: int, nth: int) -> None:
        """A lake write fails part-way; Lambda re-delivers from failed_from."""
        batch, self.pending = self.pending[:n], self.pending[n:]
        self._arm(nth)
        try:
            rest = self._deliver(batch)
        finally:
            self._arm(None)
        if rest:
            self._deliver_until_done(rest)

    @precondition(lambda self: self.delivered)
    @rule(pick=st.integers(0, 1000))
    def redeliver(self, pick: int) -> None:
        """At-least-once: a batch already done comes again."""
        self._deliver_until_done(list(self.delivered[pick % len(self.delivered)]))

    @precondition(lambda self: self.pending)
    @rule(n=st.integers(1, 10))
    def lose(self, n: int) -> None:
        """Lambda down past the stream's 24 h: records gone for good."""
        self.pending = self.pending[n:]

    @precondition(lambda self: self.items and len(self.accepted) > len(self.expired))
    @rule(pick=st.integers(0, 1000))
    def modify(self, pick: int) -> None:
        live = [i for i in self._in_hot() if i in self.items]
        self.pending.append(self._record(self.items[live[pick % len(live)]], "MODIFY"))

    # --- time, sweep, compaction, TTL ----------------------------------------------------

    @rule(hours=st.sampled_from([2, 6, 12, 18]))
    def advance(self, hours: int) -> None:
        later = self.clock.at + timedelta(hours=hours)
        if self.scheduler_up and later - self.last_sweep > MAX_SWEEP_GAP:
            later = self.last_sweep + MAX_SWEEP_GAP  # the schedule keeps the precondition
        self._move_to(max(self.clock.at, later))

    def _move_to(self, at: datetime) -> None:
        self.clock.at = at
        if at - self.last_sweep > MAX_SWEEP_GAP:
            self.gap_broken = True

    @rule(hours=st.sampled_from([6, 12, 24, 30]), ttl=st.booleans(),
          deliver_removes=st.booleans())
    def pass_time(self, hours: int, ttl: bool, deliver_removes: bool) -> None:
        """Hours to a day pass: the scheduled sweep runs every SWEEP_EVERY (unless the
        scheduler is down), TTL deletes what expired after each interval when `ttl`."""
        end = self.clock.at + timedelta(hours=hours)
        while self.clock.at < end:
            self._move_to(min(end, self.clock.at + SWEEP_EVERY))
            if self.scheduler_up:
                self._sweep(None)
            if ttl:
                self.ttl(deliver_removes)

    @precondition(lambda self: self.scheduler_up)
    @rule()
    def scheduler_down(self) -> None:
        """The archive flow stops (Prefect worker gone, schedule paused): no sweeps."""
        self.scheduler_up = False

    @rule(hours=st.sampled_from([26, 36]), lose=st.integers(0, 6),
          deliver_removes=st.booleans())
    def outage(self, hours: int, lose: int, deliver_removes: bool) -> None:
        """The scheduler down and Lambda failing past the stream's 24 h (`lose` records gone),
        for longer than retention, TTL deleting meanwhile: the precondition broken at once."""
        self.scheduler_up = False
        self.pending = self.pending[lose:]
        self.pass_time(hours, ttl=True, deliver_removes=deliver_removes)

    @precondition(lambda self: not self.scheduler_up)
    @rule()
    def scheduler_back(self) -> None:
        """The schedule resumes: its first run is due at once."""
        self.scheduler_up = True
        self._sweep(None)

    @rule(fail_at=st.sampled_from([None, None, 1, 2]))
    def run_sweep(self, fail_at: int | None) -> None:
        self._sweep(fail_at)

    def _sweep(self, fail_at: int | None) -> None:
        at_risk = self._at_risk()
        self._arm(fail_at)
        try:
            report = sweep(self.cold, self.lake.hot, self.settings)  # the flow's: hot.now()
        except InjectedFailure:
            assert fail_at is not None
            event("sweep failed, nothing at risk: the injected error")
            assert not at_risk, (f"a sweep failed with {sorted(at_risk)} unarchived within "
                                 f"{SAFETY_HOURS} h of expiry, but not with TtlGuardError")
            return
        except TtlGuardError as exc:
            event("sweep failed with events at risk: TtlGuardError")
            assert fail_at is not None and at_risk, f"TtlGuardError from a sound sweep: {exc}"
            assert set(exc.event_ids) <= at_risk | set(self.accepted), exc.event_ids
            return
        finally:
            self._arm(None)
        self.last_sweep = self.clock.at
        if at_risk:
            event("a sound sweep archived events within the safety margin")
        in_lake = {i for i, _ in self._lake_rows()}
        assert at_risk <= in_lake, f"a sound sweep left {sorted(at_risk - in_lake)} at risk"
        read = {i for i in self._in_hot() if self._ingested(i) < report.until}
        assert read <= in_lake, f"a sound sweep left {sorted(read - in_lake)[:5]} unarchived"
        self.swept |= read
        self._check_overdue(report, in_lake)

    def _check_overdue(self, report: SweepReport, in_lake: set[str]) -> None:
        """Nothing lost silently: each event TTL deleted before anything archived it lies in
        the stretch this sweep reports overdue, [since, overdue_until): the window's start, the
        previous watermark less its look-back (a slow clock stamps there after that sweep)."""
        if report.overdue_until is not None:
            event("a sweep reported an overdue stretch (no sweep for > retention)")
            assert self.gap_broken, f"overdue_until {report.overdue_until} in time: {report}"
            assert any("retention period" in p for p in report.problems()), report.problems()
        lost = self.lost - in_lake  # the rest were rescued since (a late INSERT or REMOVE)
        self.lost = set()
        if not lost:
            return
        event("events were lost to TTL; the next sweep reports their stretch")
        assert report.watermark_before is not None and report.overdue_until is not None, (
            f"{sorted(lost)[:5]} were TTL deleted unarchived, and the next sweep "
            f"({report.run_id}) reports no overdue stretch: lost silently")
        outside = sorted(i for i in lost if not report.since <= self._ingested(i)
                         < report.overdue_until)
        assert not outside, (
            f"lost {outside[:5]} ingested at {[str(self._ingested(i)) for i in outside[:5]]}, "
            f"outside the reported [{report.since}, {report.overdue_until})")
        self.reported_lost |= lost

    @precondition(lambda self: self.cold.list_files())
    @rule(pick=st.integers(0, 1000), min_files=st.sampled_from([1, 2]))
    def compact_partition(self, pick: int, min_files: int) -> None:
        dts = sorted({f.dt for f in self.cold.list_files()})
        day = datetime.fromisoformat(dts[pick % len(dts)]).date()
        compact(self.cold, start=day, end=day, min_files=min_files).raise_if_failed()

    @rule(deliver_removes=st.booleans())
    def ttl(self, deliver_removes: bool) -> None:
        deleted = expire_ttl(self.lake.clients, self.settings.table, now=self.clock.at)
        rows = dict(self._lake_rows())
        for event_id in deleted:
            if rows.get(event_id) == self.accepted[event_id]:
                continue
            # Lost to the lake, possibly: allowed only when both paths missed it, and the
            # guarantee's precondition (a sweep within retention) was broken on purpose.
            assert rows.get(event_id) is None and event_id not in self.insert_done \
                and event_id not in self.swept and self.gap_broken, (
                f"TTL deleted {event_id} which the lake does not hold with its accepted hash "
                f"(holds {rows.get(event_id)!r}; INSERT archived: "
                f"{event_id in self.insert_done}, swept: {event_id in self.swept}, "
                f"no sweep for > {MAX_SWEEP_GAP}: {self.gap_broken})")
            self.lost.add(event_id)
        self.expired.update(deleted)
        if deleted:
            event(f"TTL deleted events, REMOVEs {'delivered' if deliver_removes else 'lost'}")
        if deliver_removes:
            for event_id in deleted:
                self.seq += 1
                self.pending.append(removal(self.items[event_id], self.seq))

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def lake_holds_only_accepted_content(self) -> None:
        for event_id, content_hash in self._lake_rows():
            assert event_id not in self.refused, f"invalid event {event_id} is in the lake"
            assert self.accepted.get(event_id) == content_hash, (
                f"{event_id} is in the lake with {content_hash}, accepted with "
                f"{self.accepted.get(event_id)}")

    def teardown(self) -> None:
        try:
            if not hasattr(self, "accepted"):
                return
            self._final_checks()
        finally:
            self.cold.write_partition = self.real_write  # type: ignore[method-assign]
            self.cold.write = self.real_sweep_write  # type: ignore[method-assign]
            stream.reset()
            self.lake.close()
            self.mock.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _final_checks(self) -> None:
        self._arm(None)
        if self.lost:  # the schedule resumes: its sweep must report them
            if self.scheduler_up:
                self._sweep(None)
            else:
                self.scheduler_back()
            assert not self.lost
        event(f"simulated {(self.clock.at - START) // timedelta(hours=24)} day(s), "
              f"{'some' if self.expired else 'no'} TTL deletes")
        rows = self.lake.sql("select event_id, content_hash from events").to_pylist()
        seen = Counter(r["event_id"] for r in rows)
        doubled = sorted(i for i, n in seen.items() if n > 1)
        assert not doubled, f"the events view holds {doubled[:5]} more than once"
        missing = set(self.accepted) - set(seen)
        if missing:
            event("some events were lost to TTL, all of them reported")
        assert missing <= self.reported_lost and set(seen) <= set(self.accepted), (
            f"events view: missing {sorted(missing - self.reported_lost)[:5]} (not reported "
            f"by any sweep), extra {sorted(set(seen) - set(self.accepted))[:5]}")
        assert all(self.accepted[r["event_id"]] == r["content_hash"] for r in rows)

        compact(self.cold, min_files=1).raise_if_failed()
        ids: list[str] = []
        for f in self.cold.list_files():  # pyarrow alone: no eventlake de-duplication
            ids.extend(pq.read_table(f.path, columns=["event_id"])["event_id"].to_pylist())
        counted = Counter(ids)
        assert all(n == 1 for n in counted.values()), \
            f"after compaction {sorted(i for i, n in counted.items() if n > 1)[:5]} twice"
        assert self.expired - self.reported_lost <= set(counted), \
            "an expired event is not in the lake, and no sweep reported it"

        quarantined = [e.record for e in self.cold.read_quarantine()]
        modifies = {r["dynamodb"]["SequenceNumber"] for r in quarantined
                    if isinstance(r, dict) and r.get("eventName") == "MODIFY"}
        assert modifies == self.modifies_sent, (sorted(self.modifies_sent - modifies),
                                                sorted(modifies - self.modifies_sent))
        assert all(isinstance(r, dict) and r.get("eventName") == "MODIFY"
                   for r in quarantined), "something other than a MODIFY was quarantined"


if LONG:
    Pipeline.TestCase.settings = settings(
        max_examples=LONG, stateful_step_count=int(os.environ.get("EVENTLAKE_MODEL_STEPS", "40")),
        deadline=None, suppress_health_check=list(HealthCheck), derandomize=False,
        database=None)
else:
    Pipeline.TestCase.settings = settings(
        max_examples=12, stateful_step_count=35, deadline=None,
        suppress_health_check=list(HealthCheck), derandomize=True, database=None,
        print_blob=False)

TestPipelineModel = Pipeline.TestCase


# --- fixed walks: the CI profile's examples depend on its seed; these paths do not -----------

def _walk(steps: Any) -> Pipeline:
    """Run `steps(machine)` on a fresh machine, then its final checks; the machine."""
    machine = Pipeline()
    try:
        steps(machine)
        machine.lake_holds_only_accepted_content()
    finally:
        machine.teardown()
    return machine


@settings(max_examples=1, database=None, deadline=None)  # `event` needs a hypothesis test
@given(st.none())
def test_an_outage_past_retention_loses_only_what_the_next_sweep_reports(_: None) -> None:
    def steps(m: Pipeline) -> None:
        m.put(new=3, late_days=0, skew_minutes=0, resend=0, conflict=False, invalid=False)
        m.lose(n=2)  # the INSERTs of e00001 and e00002: gone for good
        m.scheduler_down()
        m.pass_time(hours=24, ttl=True, deliver_removes=True)  # TTL deletes all three
        assert m.lost == {"e00001", "e00002", "e00003"} and m.gap_broken
        m.deliver(n=2, twice=False)  # e00003's INSERT, late; e00001's REMOVE: its only copy
        m.lose(n=1)  # e00002's REMOVE
        assert {i for i, _ in m._lake_rows()} == {"e00001", "e00003"}
        m.scheduler_back()  # reports the stretch holding e00002
        assert m.reported_lost == {"e00002"} and not m.lost
        m.deliver(n=1, twice=False)  # e00003's REMOVE: the lake holds it already

    _walk(steps)


@settings(max_examples=1, database=None, deadline=None)
@given(st.none())
def test_failed_from_is_the_first_record_not_durable(_: None) -> None:
    def steps(m: Pipeline) -> None:
        m.put(new=2, late_days=0, skew_minutes=0, resend=0, conflict=False, invalid=False)
        m.put(new=2, late_days=1, skew_minutes=0, resend=0, conflict=False, invalid=False)
        batch, m.pending = m.pending, []
        m._arm(1)  # two partitions, written by date: yesterday's (records 2, 3) fails
        try:
            rest = m._deliver(batch)
        finally:
            m._arm(None)
        at = len(batch) - len(rest)
        assert at == 2 and [_id(r) for r in rest] == ["e00003", "e00004"]
        with pytest.raises(AssertionError, match="not durable"):  # a later point loses e00003
            m._check_failed_from(batch, at + 1)
        m._deliver_until_done(rest)

    _walk(steps)

"""The clock skew and the archive settle are recorded on the table too: a write retries for
their sum (less the last attempt's timeouts), and the sweeps re-read that far behind the
watermark, so a producer configured with larger values than the sweeps could land a write
behind every sweep window. Producers, sweepers and readers are separate EventLakes on one moto
table, each with its own Settings."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import eventlake.hot.store
import eventlake.hot.tablesettings
from eventlake import EventLake, Settings
from eventlake.errors import ConfigError
from eventlake.events.model import parse_event
from eventlake.hot.results import Deadline
from eventlake.hot.store import HotStore
from eventlake.lake.watermark import read_watermark

TABLE = "orders-events"
SKEW, SETTLE = "eventlake:clock_skew_seconds", "eventlake:archive_settle_seconds"


def process(tmp_path: Path, **settings: Any) -> EventLake:
    """One process (producer, sweeper, reader) of the lake: its own Settings and clients."""
    return EventLake(Settings.from_env(env={}, table=TABLE, lake_uri=str(tmp_path / "lake"),
                                       **settings))


def orders(count: int, prefix: str = "ord") -> list[dict[str, Any]]:
    stamp = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return [{"event_id": f"{prefix}-{i:03d}", "event_type": "order.placed", "timestamp": stamp,
             "event_payload": {"order_id": i}} for i in range(count)]


def tags(lake: EventLake) -> dict[str, str]:
    ddb = lake.clients.dynamodb
    arn = ddb.describe_table(TableName=TABLE)["Table"]["TableArn"]
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}


def set_tag(lake: EventLake, key: str, value: str | None) -> None:
    """Edit (or, with None, remove) one tag of the table by hand."""
    ddb = lake.clients.dynamodb
    arn = ddb.describe_table(TableName=TABLE)["Table"]["TableArn"]
    if value is None:
        ddb.untag_resource(ResourceArn=arn, TagKeys=[key])
    else:
        ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": key, "Value": value}])


def write_budgets(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry budgets (seconds) the store's writes are given, as they are made."""
    budgets: list[float] = []
    real = Deadline.after

    def after(seconds: float, **kwargs: Any) -> Deadline:
        budgets.append(seconds)
        return real(seconds, **kwargs)

    monkeypatch.setattr(eventlake.hot.store.Deadline, "after", staticmethod(after))
    return budgets


def items(lake: EventLake) -> list[dict[str, Any]]:
    pages = lake.clients.dynamodb.get_paginator("scan").paginate(TableName=TABLE)
    return [item for page in pages for item in page["Items"]]


# --- the review's scenario: a producer with a larger skew than the sweeps ---------------------

def test_a_producer_set_to_a_larger_skew_than_the_table_refuses_before_writing(
        mocked_aws: None, tmp_path: Path) -> None:
    # given a table initialised with the sweeps' look-back (600 s skew, 60 s settle)
    process(tmp_path).init()
    # when an ingest process set to EVENTLAKE_CLOCK_SKEW_SECONDS=3000 stores events
    producer = EventLake(Settings.from_env({"EVENTLAKE_CLOCK_SKEW_SECONDS": "3000"},
                                           table=TABLE, lake_uri=str(tmp_path / "lake")))
    with pytest.raises(ConfigError) as raised:
        producer.put_many(orders(2))
    # then it refuses, naming the variable, the tag, both values and the ways out
    assert str(raised.value) == (
        "EVENTLAKE_CLOCK_SKEW_SECONDS=3000 but table `orders-events` was initialised with a "
        "clock skew of 600 s (tag `eventlake:clock_skew_seconds`): every writer and reader "
        "must agree, and to raise it on a live table run `eventlake init` with "
        "EVENTLAKE_CLOCK_SKEW_SECONDS=3000; unset EVENTLAKE_CLOCK_SKEW_SECONDS to use the "
        "table's value")
    # and nothing was written
    assert items(producer) == []


def test_a_producer_set_to_a_larger_settle_refuses(mocked_aws: None, tmp_path: Path) -> None:
    process(tmp_path).init()
    producer = process(tmp_path, archive_settle_seconds=900.0)
    with pytest.raises(ConfigError, match=r"^EVENTLAKE_ARCHIVE_SETTLE_SECONDS=900 but table "
                                          r"`orders-events` was initialised with an archive "
                                          r"settle of 60 s \(tag `eventlake:archive_settle_"
                                          r"seconds`\).*not supported; unset "):
        producer.put_many(orders(1))
    assert items(producer) == []


def test_a_producer_that_sets_neither_retries_no_longer_than_the_sweeps_look_back(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a table initialised by the sweeps with 120 s of skew and 40 s of settle
    process(tmp_path, clock_skew_seconds=120.0, archive_settle_seconds=40.0).init()
    budgets = write_budgets(monkeypatch)
    # when a producer that sets neither (its own defaults: 600 s and 60 s) stores events
    producer = process(tmp_path)
    assert producer.settings.write_retry_seconds == 625  # what it would have retried for
    results = producer.put_many(orders(3))
    # then each write's retry budget is the table's: 120 + 40 - 35 s for the last attempt
    assert [r.outcome.value for r in results] == ["created"] * 3
    assert budgets == [125.0] * 3
    agreed = producer.hot.table_settings()
    assert (agreed.clock_skew_seconds, agreed.archive_settle_seconds) == (120.0, 40.0)


def test_a_process_set_to_the_tables_skew_and_settle_runs(mocked_aws: None,
                                                          tmp_path: Path) -> None:
    process(tmp_path, clock_skew_seconds=120.0, archive_settle_seconds=7.5).init()
    producer = process(tmp_path, clock_skew_seconds=120.0, archive_settle_seconds=7.5)
    assert [r.outcome.value for r in producer.put_many(orders(1))] == ["created"]
    assert tags(producer)[SETTLE] == "7.5"


# --- a table initialised before they were recorded -------------------------------------------

def test_an_old_table_without_the_tags_gives_a_warning_and_the_processs_own_values(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # given a table that records shards and retention but no skew or settle
    lake = process(tmp_path)
    lake.init()
    set_tag(lake, SKEW, None)
    set_tag(lake, SETTLE, None)
    budgets = write_budgets(monkeypatch)
    # when a producer set to 300 s of skew stores events, twice
    producer = process(tmp_path, clock_skew_seconds=300.0)
    with caplog.at_level(logging.WARNING, logger="eventlake.hot.tablesettings"):
        producer.put_many(orders(1))
        producer.put_many(orders(1, "again"))
    # then it uses its own values (300 + 60 - 35), and warns once, naming the tags and init
    assert budgets == [325.0, 325.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "table `orders-events` records no `eventlake:clock_skew_seconds` or "
        "`eventlake:archive_settle_seconds`: this process uses its own values (a clock skew "
        "of 300 s, an archive settle of 60 s), and every writer and reader must agree on them; "
        "run `eventlake init` to record them"]
    # and `init` records them, after which the table's values are used
    assert process(tmp_path).init() == [
        "recorded a clock skew of 600 s on table `orders-events` (tag "
        "`eventlake:clock_skew_seconds`; it had none: every process now uses it)",
        "recorded an archive settle of 60 s on table `orders-events` (tag "
        "`eventlake:archive_settle_seconds`; it had none: every process now uses it)"]
    assert process(tmp_path).hot.table_settings().clock_skew_seconds == 600.0


# --- init ------------------------------------------------------------------------------------

def test_init_records_the_skew_and_settle_it_was_given(mocked_aws: None,
                                                       tmp_path: Path) -> None:
    lake = process(tmp_path, clock_skew_seconds=900.0, archive_settle_seconds=30.0)
    changes = lake.init()
    assert (tags(lake)[SKEW], tags(lake)[SETTLE]) == ("900", "30")
    assert any("a clock skew of 900 s recorded as tag `eventlake:clock_skew_seconds`" in c
               for c in changes)


def test_init_raises_the_skew_on_a_live_table_and_every_kind_of_process_stays_safe(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a live table (600 s skew), a warm producer and a warm sweeper that agreed on it
    process(tmp_path).init()
    budgets = write_budgets(monkeypatch)
    warm_producer, sweeper = process(tmp_path), process(tmp_path)
    warm_producer.put_many(orders(2))
    sweeper.archive(settle_seconds=0)
    # when an operator raises the skew to 900 s with `eventlake init`
    changes = process(tmp_path, clock_skew_seconds=900.0).init()
    # then the tag is raised, and init says what happens to running processes
    assert tags(sweeper)[SKEW] == "900"
    assert changes == [
        "raised tag `eventlake:clock_skew_seconds` of table `orders-events` from 600 to 900 "
        "(EVENTLAKE_CLOCK_SKEW_SECONDS): processes started from now and the next sweep use "
        "it; running writers keep the old, shorter retry budget (safe)"]
    # and the warm producer keeps its shorter budget (625 s), a new one adopts the new (925 s)
    warm_producer.put_many(orders(1, "warm"))
    process(tmp_path).put_many(orders(1, "new"))
    assert budgets == [625.0, 625.0, 625.0, 925.0]
    # and the warm sweeper's next run reads the raise: it looks back 900 s from the watermark
    # and records it there, for every reader of the window (plus the 60 s of the table's
    # settle that these `--settle 0` runs owe the writers' budgets)
    before = read_watermark(sweeper.cold)
    assert before is not None and before.skew_seconds == 600.0 + 60
    report = sweeper.archive(settle_seconds=0)
    assert report.since == before.at - timedelta(seconds=900)
    after = read_watermark(sweeper.cold)
    assert after is not None and after.skew_seconds == 900.0 + 60


def test_a_sweeper_set_explicitly_to_the_old_skew_refuses_after_a_raise(
        mocked_aws: None, tmp_path: Path) -> None:
    process(tmp_path).init()
    sweeper = process(tmp_path, clock_skew_seconds=600.0)
    sweeper.archive(settle_seconds=0)
    process(tmp_path, clock_skew_seconds=900.0).init()
    with pytest.raises(ConfigError, match=r"^EVENTLAKE_CLOCK_SKEW_SECONDS=600 but table "
                                          r"`orders-events` records a clock skew of 900 s "
                                          r".*may have raised it since this process was "
                                          r"configured\): set EVENTLAKE_CLOCK_SKEW_SECONDS=900; "
                                          r"unset"):
        sweeper.archive(settle_seconds=0)


def test_init_refuses_to_lower_the_skew_on_a_live_table(mocked_aws: None,
                                                        tmp_path: Path) -> None:
    process(tmp_path, clock_skew_seconds=900.0).init()
    lower = process(tmp_path, clock_skew_seconds=300.0)
    with pytest.raises(ConfigError, match=r"^EVENTLAKE_CLOCK_SKEW_SECONDS=300 but table "
                                          r"`orders-events` records a clock skew "
                                          r"of 900 s \(tag `eventlake:clock_skew_seconds`\): "
                                          r".*it is never lowered on a live table"):
        lower.init()
    assert tags(lower)[SKEW] == "900"


@pytest.mark.parametrize("settle", [0.0, 120.0])
def test_init_refuses_to_change_the_settle_on_a_live_table(mocked_aws: None, tmp_path: Path,
                                                           settle: float) -> None:
    process(tmp_path).init()
    other = process(tmp_path, archive_settle_seconds=settle)
    with pytest.raises(ConfigError, match=rf"^EVENTLAKE_ARCHIVE_SETTLE_SECONDS={settle:g} but "
                                          r".*an archive settle of 60 s.*changing it on a live "
                                          r"table is not supported"):
        other.init()
    assert tags(other)[SETTLE] == "60"


def test_init_with_the_skew_unset_keeps_a_raised_one(mocked_aws: None,
                                                     tmp_path: Path) -> None:
    process(tmp_path, clock_skew_seconds=900.0).init()
    lake = process(tmp_path)
    assert lake.init() == []
    assert tags(lake)[SKEW] == "900"


# --- tags edited by hand ---------------------------------------------------------------------

@pytest.mark.parametrize(("key", "text"), [(SKEW, "ten"), (SKEW, "-5"), (SKEW, "nan"),
                                           (SKEW, "inf"), (SETTLE, ""), (SETTLE, "-0.5")])
def test_a_skew_or_settle_tag_edited_into_garbage_is_a_clear_config_error(
        mocked_aws: None, tmp_path: Path, key: str, text: str) -> None:
    lake = process(tmp_path)
    lake.init()
    set_tag(lake, key, text)
    with pytest.raises(ConfigError) as raised:
        HotStore(lake.settings, lake.clients).table_settings()
    var = lake.settings.env_name(key.removeprefix("eventlake:"))
    assert str(raised.value) == (
        f"table `orders-events` has tag `{key}`=`{text}`, which is not a number of seconds "
        f">= 0 ({var}): every process of the table refuses to run, `eventlake init` too; set "
        "the tag back to the value the table was initialised with (`aws dynamodb "
        "tag-resource --resource-arn <the table's ARN> --tags "
        f"Key={key},Value=<value>`)")
    # and init says the same (it cannot repair it: it does not know the value)
    with pytest.raises(ConfigError, match=rf"`{key}`=`{text}`.*tag-resource"):
        process(tmp_path).init()


# --- status ----------------------------------------------------------------------------------

def test_status_shows_the_look_back_and_where_it_comes_from(mocked_aws: None,
                                                            tmp_path: Path) -> None:
    process(tmp_path, clock_skew_seconds=120.0, archive_settle_seconds=40.0).init()
    reader = process(tmp_path)
    assert reader.status()["look_back"] == (
        "clock skew 120 s, settle 40 s (recorded on the table); writes retry for at most 125 s")
    set_tag(reader, SETTLE, None)
    assert process(tmp_path).status()["look_back"] == (
        "clock skew 120 s, settle 60 s (this process's own: the table records no "
        "`eventlake:archive_settle_seconds`, run `eventlake init`); writes retry for at most "
        "145 s")


# --- a long-lived reader across a raise --------------------------------------------------------

def test_a_long_lived_reader_reads_a_raised_skew_again_and_shows_a_late_write_of_a_new_producer(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection kept open (a notebook, a service) agreed on 600 s; after `init` raised it
    to 900 s, a producer started since may land a write up to 900 s behind the watermark, and
    it is not in the lake until the next sweep: the reader's next query must look back 900 s
    (a fresh process does), once its settings are older than READ_RECHECK_SECONDS."""
    process(tmp_path).init()
    reader = process(tmp_path)
    assert reader.sql("SELECT count(*) AS n FROM events").to_pylist() == [{"n": 0}]
    process(tmp_path).archive()
    mark = read_watermark(reader.cold)
    assert mark is not None and mark.skew_seconds == 600
    process(tmp_path, clock_skew_seconds=900.0).init()
    producer = process(tmp_path)
    event = parse_event(orders(1, "late")[0], now=datetime.now(UTC))
    stamped = mark.at - timedelta(seconds=800)  # within the new producer's 900 s
    producer.clients.dynamodb.put_item(TableName=TABLE,
                                       Item=producer.hot.to_item(event, stamped))
    query = "SELECT event_id FROM events_hot"
    assert process(tmp_path).sql(query).to_pylist() == [{"event_id": "late-000"}]
    monkeypatch.setattr(eventlake.hot.tablesettings, "READ_RECHECK_SECONDS", 0.0)
    assert reader.sql(query).to_pylist() == [{"event_id": "late-000"}]


def test_status_says_when_the_watermark_looks_back_further_than_the_tables_skew(
        mocked_aws: None, tmp_path: Path) -> None:
    process(tmp_path, clock_skew_seconds=120.0, archive_settle_seconds=40.0).init()
    sweeper = process(tmp_path)
    sweeper.archive()  # the table's settle: the look-back is the skew
    assert "watermark_look_back" not in sweeper.status()
    sweeper.archive(settle_seconds=0)  # owes the 40 s of settle writers still retry for
    assert sweeper.status()["watermark_look_back"] == (
        "160 s (the largest a sweep recorded, more than the table's clock skew of 120 s: "
        "every window starts that far behind the watermark)")

"""Shared fixtures: an isolated AWS environment, moto in-process, and a moto HTTP server."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from archive_support import TEST_SIZES, World, make_world
from aws_support import record_pauses
from spark_support import spark  # noqa: F401  (the session-scoped Spark fixture: tests/catalog)

from eventlake import EventLake, Settings
from eventlake.hot.store import HotStore
from eventlake.lake.store import Lake
from eventlake.local.stack import MotoServer, serialise_stream_records, start_moto_server

FIXTURES = Path(__file__).parent / "fixtures"

# Prefect's ephemeral server logs "stopping" from an atexit hook, after pytest has closed the
# captured streams; without this, each such line prints a "--- Logging error ---" traceback
# below pytest's summary.
logging.raiseExceptions = False
# in-process moto too: concurrent writes must not share a stream sequence number (see there)
serialise_stream_records()


@pytest.fixture(autouse=True)
def eventlake_loggers_enabled() -> None:
    """eventlake's loggers log in every test, whatever ran before in this worker.

    dateparser (reached through Prefect's deprecation helpers) configures logging with
    `disable_existing_loggers: True` when the root logger has no handler, which pytest's
    phases can leave it without: every logger created by then, eventlake's included, goes
    silent for the rest of the worker, and a test of a warning fails depending on which
    tests shared its worker (reproduced with dateparser.utils.setup_logging). Outside
    pytest, Prefect's own logging set-up gives the root a handler first.
    """
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name == "eventlake" or name.startswith("eventlake.")) and isinstance(
                logger, logging.Logger):
            logger.disabled = False


ISOLATED = "EVENTLAKE_TESTS_ISOLATED_AWS_ENV"
"""Set by `aws_env` for the whole test: gone before the test ends only if the test undid it."""


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test ever reaches real AWS or reads the developer's EVENTLAKE_* settings.

    The test shares this `monkeypatch`: a `monkeypatch.undo()` in the test would also undo
    these settings, and the rest of the test would run with the developer's credentials,
    endpoint and EVENTLAKE_* settings (any client built after it would reach real AWS). So
    such a test fails here; patch for part of a test with `with monkeypatch.context() as m:`.
    """
    for key in list(os.environ):
        if key.startswith(("EVENTLAKE_", "AWS_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv(ISOLATED, "1")
    yield
    assert os.environ.get(ISOLATED) == "1", (
        "the test undid the isolated AWS environment (`monkeypatch.undo()` undoes every "
        "fixture's patches too): patch for part of a test with `monkeypatch.context()`")


@pytest.fixture(autouse=True)
def no_default_lake_in_the_checkout() -> Iterator[None]:
    """A test that leaves the default lake (`./eventlake-data`, Settings' fallback) in the
    working directory fails: tests sharing it would share one lake, marked for one table."""
    default = Path.cwd() / "eventlake-data"
    there = default.exists()
    yield
    if not there and default.exists():
        pytest.fail(f"this test made the default lake `{default}`: give it a lake of its own "
                    "(EVENTLAKE_LAKE_URI or lake_uri= under tmp_path)")


@pytest.fixture
def mocked_aws() -> Iterator[None]:
    """moto in-process (fast; no HTTP)."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def lake(mocked_aws: None, tmp_path: Path) -> EventLake:
    """An initialised EventLake on in-process moto with a local lake directory."""
    lake = EventLake(Settings.from_env(table="events-test", lake_uri=str(tmp_path / "lake")))
    lake.init()
    return lake


@pytest.fixture
def world(lake: EventLake) -> World:
    """The sweep tests' two tiers over `lake` (2 index shards, 3 days' retention, 6 h safety);
    a module that needs other settings defines its own `world` with `make_world(lake, ...)`."""
    return make_world(lake)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto HTTP server for the session (tests use unique table/bucket names)."""
    server = start_moto_server()
    yield server
    server.stop()


@pytest.fixture
def server_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point AWS_ENDPOINT_URL at the moto server for this test; returns the URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    return moto_server.endpoint_url


@pytest.fixture
def bucket(server_env: str) -> str:
    """A fresh bucket on the moto server."""
    import boto3

    name = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=server_env).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_world(server_env: str) -> World:
    """A World on the moto server: a fresh table and an s3:// lake, provisioned as
    `eventlake init` does, with the same test-sized settings as `make_world`."""
    name = uuid.uuid4().hex[:10]
    settings = Settings.from_env(table=f"events-{name}", lake_uri=f"s3://lake-{name}/prefix",
                                 **TEST_SIZES)
    lake = EventLake(settings)
    lake.init()
    return World(Lake(settings, clients=lake.clients), HotStore(settings, lake.clients),
                 settings, lake.clients)


@pytest.fixture
def s3_lake(bucket: str) -> Lake:
    """A lake in `bucket`, with Settings from the environment as production builds them
    (AWS_ENDPOINT_URL -> moto)."""
    return Lake.from_settings(Settings.from_env(lake_uri=f"s3://{bucket}/lake"))


def load_event(name: str) -> Any:
    """A fixture from tests/fixtures/ (utf-8-sig: some real captures start with a BOM)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8-sig"))


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's pauses between attempts, recorded instead of slept."""
    pauses: list[float] = []
    record_pauses(monkeypatch, pauses.append)
    return pauses


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One Prefect engine (a temporary server, ~10 s to start) for every flow test of the
    session: here, not in tests/flows, so each test file does not start its own."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def env_lake(mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EventLake:
    """The lake the flows will build from EVENTLAKE_* (they read the environment)."""
    monkeypatch.setenv("EVENTLAKE_TABLE", "flow-events")
    monkeypatch.setenv("EVENTLAKE_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.setenv("EVENTLAKE_INDEX_SHARDS", "2")
    lake = EventLake.from_env()
    lake.init()
    return lake

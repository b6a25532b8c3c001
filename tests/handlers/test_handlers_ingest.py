"""The ingestion Lambda: every door (API Gateway v1/v2, direct, EventBridge), every status code.

Runs on in-process moto (the `lake` fixture), installed as the handler's cached EventLake.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from archive_support import record_on_table
from aws_support import dynamodb_error, inject_where, record_pauses
from botocore.exceptions import ClientError
from conftest import FIXTURES, load_event

from eventlake import EventLake, Outcome, PutResult, Settings, StorageError, TransientError
from eventlake.events.model import Event
from eventlake.handlers import ingest
from eventlake.hot.store import HotStore, shard_of

REALCASES = Path("/work/shared/realcases/lambda_events/apigateway")


@dataclass
class FakeContext:
    """The attributes of Lambda's context object that the handler reads."""

    aws_request_id: str = "0f5e2d1c-aaaa-4bbb-8ccc-123456789abc"
    function_name: str = "eventlake-ingest"


@pytest.fixture(autouse=True)
def fresh_handler_cache() -> Iterator[None]:
    ingest.reset()
    yield
    ingest.reset()


@pytest.fixture
def installed(lake: EventLake) -> EventLake:
    """The moto-backed lake, installed as the handler's cached EventLake."""
    ingest.reset(lake)
    return lake


# --- helpers ---------------------------------------------------------------------------------

def order(event_id: str = "ord-1", **payload: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": "order.placed",
            "timestamp": "2026-03-14T09:26:51Z", "source": "shop.checkout",
            "event_payload": {"order_id": event_id.upper(), "total": 48.48, **payload}}


def http_v2(body: Any, *, base64_encoded: bool = False) -> dict[str, Any]:
    """An HTTP API (v2) event from the fixture, with `body` (JSON-encoded unless a str)."""
    event: dict[str, Any] = copy.deepcopy(load_event("apigw_v2_cookies_list_body.json"))
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    if base64_encoded and isinstance(text, str):
        text = base64.b64encode(text.encode("utf-8")).decode("ascii")
    event["body"] = text
    event["isBase64Encoded"] = base64_encoded
    return event


def http_v1(body: Any) -> dict[str, Any]:
    event: dict[str, Any] = copy.deepcopy(load_event("apigw_v1_no_version_crlf_body.json"))
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


def invoke(event: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Call the handler as API Gateway would; returns (status, body, headers)."""
    response = ingest.handler(event, FakeContext())
    assert set(response) >= {"statusCode", "headers", "body"}
    assert response["headers"]["content-type"] == "application/json"
    body = json.loads(response["body"])
    assert "Traceback" not in response["body"]
    return response["statusCode"], body, response["headers"]


def stored(lake: EventLake, event_id: str) -> dict[str, Any] | None:
    item = lake.clients.dynamodb.get_item(TableName=lake.settings.table,
                                          Key={"event_id": {"S": event_id}},
                                          ConsistentRead=True).get("Item")
    return dict(item) if item is not None else None


def outcomes(body: dict[str, Any]) -> list[str]:
    return [r["outcome"] for r in body["results"]]


def ingest_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records
            if r.name == ingest.__name__]


# --- import graph and the cached lake --------------------------------------------------------

def test_importing_the_handler_loads_no_prefect_duckdb_or_boto3() -> None:
    code = ("import json, sys, eventlake.handlers.ingest; print(json.dumps(sorted("
            "m for m in ('prefect', 'duckdb', 'boto3', 'botocore') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2])
    assert json.loads(out.stdout) == []


def test_lake_is_built_on_first_invocation_then_reused(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[int] = []

    def from_env() -> Settings:
        builds.append(1)
        return lake.settings

    monkeypatch.setattr(Settings, "from_env", from_env)
    assert builds == []  # importing and resetting build nothing

    assert invoke(http_v2(order("ord-a")))[0] == 201
    assert invoke(http_v2(order("ord-b")))[0] == 201
    assert builds == [1]

    ingest.reset()
    invoke(http_v2(order("ord-c")))
    assert builds == [1, 1]


# --- our own fixtures: every API Gateway edge case in NOTES.md -----------------------------

FIXTURE_STATUSES = [  # (file, status, rule of a request-level 400, events created)
    ("apigw_v1_no_version_crlf_body.json", 201, None, 1),
    ("apigw_v1_version_1_0_events_envelope.json", 201, None, 3),
    ("apigw_v1_text_body.json", 400, "request.not_json", 0),
    ("apigw_v1_base64_flag_plain_body.json", 400, "request.bad_base64", 0),
    ("apigw_v1_base64_json_body.json", 201, None, 2),
    ("apigw_v1_sam_local_null_body.json", 400, "request.empty_body", 0),
    ("apigw_v2_no_body_key.json", 400, "request.empty_body", 0),
    ("apigw_v2_cookies_list_body.json", 201, None, 2),
    ("apigw_v2_base64_default_stage.json", 201, None, 1),
    ("apigw_v2_sam_local_empty_body.json", 400, "request.empty_body", 0),
    ("apigw_v2_mixed_case_headers_partly_invalid.json", 400, None, 1),
]


@pytest.mark.parametrize(("fixture", "status", "rule", "created"), FIXTURE_STATUSES)
def test_each_api_gateway_fixture_gets_its_status(
        installed: EventLake, fixture: str, status: int, rule: str | None, created: int) -> None:
    got, body, _ = invoke(load_event(fixture))
    assert got == status, body
    assert body.get("rule") == rule
    assert body["counts"]["created"] == created
    if status >= 400:
        assert body["message"]


def test_every_api_gateway_fixture_file_is_in_the_table() -> None:
    names = {p.name for p in FIXTURES.glob("apigw_*.json")}
    assert names == {row[0] for row in FIXTURE_STATUSES}


def test_v1_body_with_crlf_and_tabs_is_stored_with_exact_numbers(installed: EventLake) -> None:
    status, _, _ = invoke(load_event("apigw_v1_no_version_crlf_body.json"))

    assert status == 201
    item = stored(installed, "ord-7f3c9a1e-0001")
    assert item is not None
    payload = item["event_payload"]["S"]
    assert '"unit_price":8.5' in payload and '"total":48.48' in payload
    assert item["timestamp"]["S"] == "2026-03-14T08:26:51.204000Z"  # +01:00 normalised to UTC


def test_base64_body_is_decoded_and_stored(installed: EventLake) -> None:
    status, body, _ = invoke(load_event("apigw_v1_base64_json_body.json"))

    assert status == 201
    assert [r["event_id"] for r in body["results"]] == ["ord-7f3c9a1e-0002", "ord-7f3c9a1e-0003"]
    item = stored(installed, "ord-7f3c9a1e-0002")
    assert item is not None and "☕" in item["event_payload"]["S"]


def test_events_envelope_accepts_seed_cloudevents_and_generated_ids(installed: EventLake) -> None:
    status, body, _ = invoke(load_event("apigw_v1_version_1_0_events_envelope.json"))

    assert status == 201
    ids = [r["event_id"] for r in body["results"]]
    assert ids[:2] == ["usr-signup-0001", "pay-cap-0001"]
    assert ids[2]  # generated for the event that had none
    item = stored(installed, "pay-cap-0001")
    assert item is not None and item["event_type"]["S"] == "payment.captured"


# --- the realcases folder (shapes real systems send) ---------------------------------------

def _realcase_params() -> list[Any]:
    if not REALCASES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{REALCASES} is not here"))]
    return [pytest.param(p, id=p.name) for p in sorted(REALCASES.glob("*.json"))]


@pytest.mark.parametrize("path", _realcase_params())
def test_every_realcase_api_gateway_event_gets_a_2xx_or_4xx(
        installed: EventLake, path: Path) -> None:
    event = json.loads(path.read_text(encoding="utf-8-sig"))

    status, body, _ = invoke(event)

    assert 200 <= status < 300 or 400 <= status < 500, body
    assert set(body) >= {"counts", "results"}
    if status >= 400:
        assert body["message"]


# --- status codes ----------------------------------------------------------------------------

def test_all_created_is_201(installed: EventLake) -> None:
    status, body, _ = invoke(http_v2([order("ord-1"), order("ord-2")]))

    assert status == 201
    assert outcomes(body) == ["created", "created"]
    assert "message" not in body
    assert body["counts"] == {"created": 2, "duplicate": 0, "conflict": 0, "invalid": 0,
                              "failed": 0}


def test_identical_retry_of_a_request_is_200_and_stores_nothing_new(installed: EventLake) -> None:
    request = http_v2({"events": [order("ord-1"), order("ord-2")]})
    first = invoke(request)
    before = stored(installed, "ord-1")

    status, body, _ = invoke(request)

    assert first[0] == 201
    assert status == 200
    assert outcomes(body) == ["duplicate", "duplicate"]
    assert stored(installed, "ord-1") == before


def test_created_and_duplicates_mixed_is_207(installed: EventLake) -> None:
    invoke(http_v2(order("ord-1")))

    status, body, _ = invoke(http_v2([order("ord-1"), order("ord-2")]))

    assert status == 207
    assert outcomes(body) == ["duplicate", "created"]


def test_invalid_events_are_400_with_rules_and_the_valid_ones_are_stored(
        installed: EventLake) -> None:
    request = http_v2([
        order("ord-1"),
        {"event_id": "bad-1", "event_type": "order.placed", "timestamp": "2999-01-01T00:00:00Z"},
        {"event_id": "bad-2", "event_type": "order.placed", "event_payload": [1, 2]},
        42,
        {"event_id": "bad-4", "event_type": "order.placed", "colour": "blue"},
    ])

    status, body, _ = invoke(request)

    assert status == 400
    assert outcomes(body) == ["created", "invalid", "invalid", "invalid", "invalid"]
    assert [r.get("rule") for r in body["results"]] == [
        None, "timestamp.future", "payload.not_object", "event.not_object",
        "event.unknown_field"]
    assert [r["position"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert "4 invalid" in body["message"] and "1 stored" in body["message"]
    assert stored(installed, "ord-1") is not None
    assert stored(installed, "bad-1") is None


def test_conflict_is_409_and_leaves_the_stored_item_unchanged(installed: EventLake) -> None:
    invoke(http_v2(order("ord-1")))
    before = stored(installed, "ord-1")

    status, body, _ = invoke(http_v2([order("ord-1", total=99.0), order("ord-2")]))

    assert status == 409
    assert outcomes(body) == ["conflict", "created"]
    assert "immutable" in body["results"][0]["message"]
    assert "1 conflict" in body["message"]
    assert stored(installed, "ord-1") == before
    assert stored(installed, "ord-2") is not None


def _fail_some(monkeypatch: pytest.MonkeyPatch, failing: set[str]) -> None:
    real_put = HotStore.put

    def put(self: HotStore, event: Event, position: int = 0, **kwargs: Any) -> PutResult:
        if event.event_id in failing:
            return PutResult(position, event.event_id, Outcome.FAILED,
                             "gave up after 8 attempts (ThrottlingException); safe to retry",
                             retryable=True)
        return real_put(self, event, position, **kwargs)

    monkeypatch.setattr(HotStore, "put", put)


def test_transient_failure_is_503_with_retry_after(
        installed: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_some(monkeypatch, {"ord-2"})

    status, body, headers = invoke(http_v2([order("ord-1"), order("ord-2")]))

    assert status == 503
    assert headers["retry-after"] == str(ingest.RETRY_AFTER_SECONDS)
    assert outcomes(body) == ["created", "failed"]
    assert "safe" in body["message"]


def test_throttling_on_every_attempt_is_503(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    one_try = EventLake(lake.settings.with_(aws_max_attempts=1))
    ingest.reset(one_try)
    error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
             "ResponseMetadata": {"HTTPStatusCode": 400}}

    def put_item(**_: Any) -> Any:
        raise ClientError(error, "PutItem")  # type: ignore[arg-type]

    monkeypatch.setattr(one_try.clients.dynamodb, "put_item", put_item)

    status, body, headers = invoke(http_v2(order("ord-1")))

    assert status == 503
    assert "retry-after" in headers
    assert body["results"][0]["outcome"] == "failed"
    assert "ProvisionedThroughputExceededException" in body["results"][0]["message"]


def test_a_store_that_refuses_for_good_is_500_naming_the_error(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest.reset(lake)
    error = {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"},
             "ResponseMetadata": {"HTTPStatusCode": 400}}

    def put_item(**_: Any) -> Any:
        raise ClientError(error, "PutItem")  # type: ignore[arg-type]

    monkeypatch.setattr(lake.clients.dynamodb, "put_item", put_item)

    status, body, headers = invoke(http_v2(order("ord-1")))

    assert status == 500
    assert "retry-after" not in headers
    assert body["results"][0]["retryable"] is False
    assert "AccessDeniedException" in body["results"][0]["message"]
    assert "operator" in body["message"]
    with pytest.raises(StorageError, match="1 failed"):
        ingest.handler(order("ord-2"), None)


def test_a_missing_table_is_500_naming_the_table_and_the_fix_once(lake: EventLake) -> None:
    # given the function's EVENTLAKE_TABLE names a table that does not exist
    ingest.reset(EventLake(lake.settings.with_(table="orders-evnets"), clients=lake.clients))

    status, body, _ = invoke(http_v2([order("ord-1"), order("ord-2")]))

    # then the answer says it for good, once at the top, and each event says why it failed
    assert status == 500
    assert body["message"].count("table `orders-evnets` does not exist") == 1
    assert "run `eventlake init`" in body["message"]
    assert [(r["outcome"], r["rule"], r["retryable"]) for r in body["results"]] == [
        ("failed", "table.missing", False)] * 2


def test_a_transient_error_escaping_the_store_is_503(
        installed: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    def put_many(*_: Any, **__: Any) -> Any:
        raise TransientError("DynamoDB kept failing: RequestLimitExceeded")

    monkeypatch.setattr(ingest, "put_events", put_many)

    status, body, headers = invoke(http_v2(order("ord-1")))

    assert status == 503
    assert body["rule"] == "store.unavailable"
    assert "retry-after" in headers


@pytest.mark.parametrize(("outcomes_of", "status"), [
    ({"ord-1": "invalid", "ord-2": "conflict", "ord-3": "failed"}, 400),
    ({"ord-1": "invalid", "ord-3": "failed"}, 400),
    ({"ord-2": "conflict", "ord-3": "failed"}, 409),
    ({"ord-3": "failed"}, 503),
])
def test_precedence_is_invalid_then_conflict_then_failed(
        installed: EventLake, monkeypatch: pytest.MonkeyPatch,
        outcomes_of: dict[str, str], status: int) -> None:
    invoke(http_v2(order("ord-2")))
    _fail_some(monkeypatch, {k for k, v in outcomes_of.items() if v == "failed"})
    events = [order("ord-1"), order("ord-2"), order("ord-3"), order("ord-4")]
    if "ord-1" in outcomes_of:
        events[0]["timestamp"] = "yesterday"
    if "ord-2" in outcomes_of:
        events[1]["event_payload"]["total"] = 1

    got, body, _ = invoke(http_v2(events))

    assert got == status, body
    assert body["results"][3]["outcome"] == "created"


def test_body_over_the_size_limit_is_413_before_it_is_parsed(lake: EventLake) -> None:
    ingest.reset(EventLake(lake.settings.with_(max_request_bytes=2048)))

    too_big_text = invoke(http_v2("not json " * 300))
    too_big_bad_base64 = invoke(http_v2("!" * 2049, base64_encoded=False) | {
        "isBase64Encoded": True})
    multibyte = invoke(http_v2(json.dumps(order("ord-1", note="é" * 1100), ensure_ascii=False)))

    for status, body, _ in (too_big_text, too_big_bad_base64, multibyte):
        assert status == 413
        assert body["rule"] == "request.too_large"
        assert "2,048" in body["message"]


def test_body_exactly_at_the_size_limit_is_accepted(lake: EventLake) -> None:
    ingest.reset(EventLake(lake.settings.with_(max_request_bytes=2048)))
    text = json.dumps(order("ord-1"))
    text += " " * (2048 - len(text))

    assert invoke(http_v2(text))[0] == 201


@pytest.mark.parametrize(("body", "base64_encoded", "rule"), [
    ("not json", False, "request.not_json"),
    ("{'single': 'quotes'}", False, "request.not_json"),
    ('{"event_type": "x", "event_payload": {"n": NaN}}', False, "request.not_json"),
    ("[" * 100_000, False, "request.not_json"),
    ("42", False, "request.shape"),
    ('"order.placed"', False, "request.shape"),
    ("null", False, "request.shape"),
    ("true", False, "request.shape"),
    ("[]", False, "request.no_events"),
    ('{"events": []}', False, "request.no_events"),
    ('{"events": {"event_type": "x"}}', False, "request.shape"),
    ('{"events": [], "source": "shop"}', False, "request.shape"),
    (" \r\n\t ", False, "request.empty_body"),
    ("", True, "request.empty_body"),
    ("ICAg", True, "request.empty_body"),  # base64 of three spaces
    ("Hello from Lambda!", True, "request.bad_base64"),
    ("eyJ0ZXN0Ijoi", True, "request.not_json"),  # valid base64, truncated JSON
    (base64.b64encode(b'\xff\xfe{"a"').decode(), True, "request.not_json"),  # not UTF-8
    ("aGk=\u00e9", True, "request.bad_base64"),  # non-ASCII in base64
])
def test_unreadable_bodies_are_400_naming_the_problem(
        installed: EventLake, body: str, base64_encoded: bool, rule: str) -> None:
    event = http_v2(body)
    event["isBase64Encoded"] = base64_encoded

    status, response, _ = invoke(event)

    assert status == 400
    assert response["rule"] == rule
    assert response["message"]
    assert response["results"] == []


def test_a_body_that_is_not_a_string_is_400(installed: EventLake) -> None:
    event = http_v2(None)
    event["body"] = {"event_type": "order.placed"}

    status, body, _ = invoke(event)

    assert (status, body["rule"]) == (400, "request.body_type")


def test_more_than_the_event_limit_is_400_and_nothing_is_stored(
        installed: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    def put_many(*_: Any, **__: Any) -> Any:
        raise AssertionError("nothing may be stored")

    monkeypatch.setattr(ingest, "put_events", put_many)
    events = [order(f"ord-{i}") for i in range(ingest.MAX_EVENTS_PER_REQUEST + 1)]

    status, body, _ = invoke(http_v2(events))

    assert status == 400
    assert body["rule"] == "request.too_many_events"
    assert "1,000" in body["message"] and "1,001" in body["message"]


def test_exactly_the_event_limit_is_passed_to_the_store_in_one_call(
        installed: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def put_many(_store: Any, events: list[Any], **_: Any) -> list[PutResult]:
        calls.append(len(events))
        return [PutResult(i, e["event_id"], Outcome.CREATED) for i, e in enumerate(events)]

    monkeypatch.setattr(ingest, "put_events", put_many)
    events = [order(f"ord-{i}") for i in range(ingest.MAX_EVENTS_PER_REQUEST)]

    assert invoke(http_v2({"events": events}))[0] == 201
    assert calls == [ingest.MAX_EVENTS_PER_REQUEST]


def test_numbers_are_stored_exactly(installed: EventLake) -> None:
    text = ('{"event_id": "num-1", "event_type": "meter.read", "timestamp": '
            '"2026-03-14T09:00:00Z", "event_payload": {"kwh": 0.1, "price": 1.10, '
            '"counter": 9007199254740993, "tiny": 1e-7}}')

    assert invoke(http_v2(text))[0] == 201
    item = stored(installed, "num-1")
    assert item is not None
    assert item["event_payload"]["S"] == (
        '{"counter":9007199254740993,"kwh":0.1,"price":1.1,"tiny":1e-7}')


def test_content_type_is_not_required(installed: EventLake) -> None:
    event = http_v2(order("ord-1"))
    event["headers"] = {}

    assert invoke(event)[0] == 201


def test_v1_and_v2_get_the_same_answer(installed: EventLake) -> None:
    assert invoke(http_v1([order("ord-1")]))[0] == 201
    assert invoke(http_v2([order("ord-1")]))[0] == 200


# --- unexpected errors and logging ---------------------------------------------------------

def test_unexpected_error_is_500_with_request_id_and_a_logged_traceback(
        installed: EventLake, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def put_many(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals went boom")

    monkeypatch.setattr(ingest, "put_events", put_many)
    caplog.set_level(logging.INFO, logger=ingest.__name__)

    status, body, _ = invoke(http_v2(order("ord-1")))

    assert status == 500
    assert body["request_id"] == FakeContext.aws_request_id
    assert FakeContext.aws_request_id in body["message"]
    assert "boom" not in json.dumps(body)
    [line] = ingest_lines(caplog)
    assert line["status"] == 500
    assert "RuntimeError: secret internals went boom" in line["traceback"]
    assert caplog.records[-1].levelno == logging.ERROR


def test_the_log_of_a_failed_invocation_hides_the_endpoint_password(
        installed: EventLake, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from botocore.exceptions import EndpointConnectionError

    def put_many(*_: Any, **__: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="http://user:secret@127.0.0.1:1/")

    monkeypatch.setattr(ingest, "put_events", put_many)
    caplog.set_level(logging.INFO, logger=ingest.__name__)

    status, _, _ = invoke(http_v2(order("ord-1")))

    [line] = ingest_lines(caplog)
    assert status == 503
    assert "http://***@127.0.0.1:1/" in line["error"]
    assert "secret" not in caplog.text


def test_misconfigured_environment_is_a_500_whose_log_names_the_variable(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("EVENTLAKE_AWS_MAX_ATTEMPTS", "lots")
    caplog.set_level(logging.INFO, logger=ingest.__name__)

    status, body, _ = invoke(http_v2(order("ord-1")))

    assert status == 500
    assert "EVENTLAKE_AWS_MAX_ATTEMPTS" not in body["message"]
    assert "EVENTLAKE_AWS_MAX_ATTEMPTS" in ingest_lines(caplog)[0]["error"]


# --- settings recorded on the table ----------------------------------------------------------

def test_a_lambda_with_no_shard_count_set_writes_with_the_tables_count(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a table initialised with 16 index shards and 2 days of retention
    EventLake(Settings.from_env(table="lambda-events", lake_uri=str(tmp_path), index_shards=16,
                                retention_days=2.0)).init()
    # when the Lambda, configured with the table's name only, stores events on a cold start
    monkeypatch.setenv("EVENTLAKE_TABLE", "lambda-events")
    ids = [f"ord-{i:02d}" for i in range(24)]
    status, body, _ = invoke(http_v2([order(i) for i in ids]))
    # then it reads the table's settings lazily and writes with them
    assert status == 201, body
    lake = EventLake(Settings.from_env(table="lambda-events"))
    items = {i: stored(lake, i) for i in ids}
    assert all(items[i]["ingest_shard"]["S"].endswith(f"#{shard_of(i, 16)}")  # type: ignore[index]
               for i in ids)
    first = items["ord-00"]
    assert first is not None
    ingested = datetime.fromisoformat(first["ingested_at"]["S"])
    assert int(first["expires_at"]["N"]) == int(ingested.timestamp()) + 2 * 86400


def test_a_lambda_set_to_another_shard_count_is_a_500_that_stores_nothing(
        mocked_aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    EventLake(Settings.from_env(table="lambda-events", lake_uri=str(tmp_path),
                                index_shards=16)).init()
    monkeypatch.setenv("EVENTLAKE_TABLE", "lambda-events")
    monkeypatch.setenv("EVENTLAKE_INDEX_SHARDS", "8")
    caplog.set_level(logging.INFO, logger=ingest.__name__)

    status, _, _ = invoke(http_v2(order("ord-1")))

    assert status == 500
    assert "EVENTLAKE_INDEX_SHARDS=8 but table `lambda-events` was initialised with 16" in (
        ingest_lines(caplog)[0]["error"])
    assert stored(EventLake(Settings.from_env(table="lambda-events")), "ord-1") is None


def test_each_invocation_logs_one_json_line(
        installed: EventLake, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ingest.__name__)

    invoke(load_event("apigw_v2_mixed_case_headers_partly_invalid.json"))
    invoke(load_event("apigw_v1_text_body.json"))
    ingest.handler(load_event("eventbridge_order_shipped.json"), FakeContext())
    ingest.handler(order("ord-9"), None)

    lines = ingest_lines(caplog)
    assert [(x["kind"], x["status"]) for x in lines] == [
        ("apigw-v2", 400), ("apigw-v1", 400), ("eventbridge", 201), ("direct", 201)]
    assert lines[0]["counts"]["invalid"] == 2
    assert lines[0]["request_id"] == FakeContext.aws_request_id
    assert lines[0]["apigw_request_id"] == "Jx1dShP5DoEEJ7j="
    assert lines[1]["rule"] == "request.not_json"
    assert all(isinstance(x["duration_ms"], float) for x in lines)


@pytest.mark.parametrize(("event", "kind"), [
    (load_event("apigw_v1_no_version_crlf_body.json"), "apigw-v1"),
    (load_event("apigw_v1_sam_local_null_body.json"), "apigw-v1"),
    (load_event("apigw_v2_no_body_key.json"), "apigw-v2"),
    (load_event("apigw_v2_sam_local_empty_body.json"), "apigw-v2"),
    (load_event("eventbridge_ec2_state_change.json"), "eventbridge"),
    (order(), "direct"),
    ([order()], "direct"),
    ({"events": [order()]}, "direct"),
    (42, "direct"),
])
def test_classify_names_the_door(event: Any, kind: str) -> None:
    assert ingest.classify(event) == kind


# --- EventBridge -----------------------------------------------------------------------------

def test_eventbridge_event_is_stored_and_answered_with_a_plain_dict(installed: EventLake) -> None:
    event = load_event("eventbridge_order_shipped.json")

    first = ingest.handler(event, FakeContext())
    again = ingest.handler(event, FakeContext())

    assert set(first) == {"statusCode", "counts", "results"}
    assert (first["statusCode"], again["statusCode"]) == (201, 200)
    item = stored(installed, "7bf73129-1428-4cd3-a780-95db273d1602")
    assert item is not None
    assert item["event_type"]["S"] == "order.shipped"
    assert item["source"]["S"] == "com.example.fulfilment"
    assert item["subject"]["S"].endswith(":execution:fulfil:A-100231")


def test_eventbridge_aws_service_event_is_stored_without_subject(installed: EventLake) -> None:
    result = ingest.handler(load_event("eventbridge_ec2_state_change.json"), FakeContext())

    assert result["statusCode"] == 201
    item = stored(installed, "ee376907-2647-4179-9203-343cfb3017a4")
    assert item is not None and "subject" not in item
    assert item["event_type"]["S"] == "EC2 Instance State-change Notification"


def test_eventbridge_transient_failure_raises_so_lambda_retries(
        installed: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_some(monkeypatch, {"7bf73129-1428-4cd3-a780-95db273d1602"})

    with pytest.raises(TransientError, match="retries"):
        ingest.handler(load_event("eventbridge_order_shipped.json"), FakeContext())


# --- direct invocation -----------------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    order("ord-1"),
    [order("ord-1"), order("ord-2")],
    {"events": [order("ord-1"), order("ord-2")]},
    {"specversion": "1.0", "id": "ce-1", "type": "order.placed", "source": "shop",
     "time": "2026-03-14T09:00:00Z", "data": {"order_id": "A-1"}},
])
def test_direct_invocation_stores_and_returns_a_plain_dict(
        installed: EventLake, payload: Any) -> None:
    result = ingest.handler(payload, FakeContext())

    assert set(result) == {"statusCode", "counts", "results"}
    assert result["statusCode"] == 201
    assert result["counts"]["created"] == len(result["results"]) >= 1
    json.dumps(result)  # Lambda must be able to serialise it


def test_direct_invocation_with_invalid_events_returns_400_without_raising(
        installed: EventLake) -> None:
    result = ingest.handler([order("ord-1"), {"event_type": ""}], None)

    assert result["statusCode"] == 400
    assert [r["outcome"] for r in result["results"]] == ["created", "invalid"]
    assert result["results"][1]["rule"] == "event_type.format"
    assert result["message"]


@pytest.mark.parametrize(("payload", "rule"), [
    (42, "request.shape"), ("order.placed", "request.shape"), (None, "request.shape"),
    ([], "request.no_events"), ({"events": "nope"}, "request.shape"),
])
def test_direct_invocation_of_something_that_is_not_events_returns_400(
        installed: EventLake, payload: Any, rule: str) -> None:
    result = ingest.handler(payload, None)

    assert (result["statusCode"], result["rule"]) == (400, rule)


def test_direct_invocation_conflict_returns_409_without_raising(installed: EventLake) -> None:
    ingest.handler(order("ord-1"), None)

    assert ingest.handler(order("ord-1", total=1), None)["statusCode"] == 409


def test_direct_invocation_raises_only_when_an_event_failed_transiently(
        installed: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_some(monkeypatch, {"ord-2"})

    with pytest.raises(TransientError, match="1 failed"):
        ingest.handler([order("ord-1"), order("ord-2"), {"event_type": 7}], None)

    assert stored(installed, "ord-1") is not None


def test_direct_invocation_reraises_unexpected_errors_after_logging(
        installed: EventLake, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def put_many(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(ingest, "put_events", put_many)
    caplog.set_level(logging.INFO, logger=ingest.__name__)

    with pytest.raises(RuntimeError, match="boom"):
        ingest.handler(order("ord-1"), FakeContext())

    [line] = ingest_lines(caplog)
    assert line["kind"] == "direct" and "RuntimeError: boom" in line["traceback"]


# --- retries never double events sent without an id (issue 8, item 4) ----------------------

def page_view(i: int) -> dict[str, Any]:
    """An event without an id, as browsers' beacons send them."""
    return {"event_type": "page.viewed", "timestamp": f"2026-03-14T09:26:{i:02d}Z",
            "source": "web", "event_payload": {"path": f"/docs/{i}", "visitor": "v-77"}}


def table_size(lake: EventLake) -> int:
    pages = lake.clients.dynamodb.get_paginator("scan").paginate(TableName=lake.settings.table)
    return sum(len(page["Items"]) for page in pages)


def throttle_paths(monkeypatch: pytest.MonkeyPatch, lake: EventLake, paths: set[str]
                   ) -> set[str]:
    """DynamoDB throttles every write of the events whose payload path is in `paths` (the
    returned set: clear it to stop throttling)."""
    ddb = lake.clients.dynamodb
    real_put = ddb.put_item
    error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
             "ResponseMetadata": {"HTTPStatusCode": 400}}

    def put_item(**kwargs: Any) -> Any:
        if json.loads(kwargs["Item"]["event_payload"]["S"])["path"] in paths:
            raise ClientError(error, "PutItem")  # type: ignore[arg-type]
        return real_put(**kwargs)

    monkeypatch.setattr(ddb, "put_item", put_item)
    return paths


def throttle_every_attempt(lake: EventLake, paths: set[str]) -> None:
    """DynamoDB throttles every attempt (below botocore's retries) to write a page view of
    `paths`."""
    error = dynamodb_error("ProvisionedThroughputExceededException")

    def throttled(body: dict[str, Any]) -> bool:
        return bool(json.loads(body["Item"]["event_payload"]["S"])["path"] in paths)

    inject_where(lake.clients.dynamodb, "PutItem", error, throttled)


def test_resending_a_half_throttled_request_without_ids_stores_each_event_once(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given 10 events without ids, of which DynamoDB throttles 5
    one_try = EventLake(lake.settings.with_(aws_max_attempts=1))
    ingest.reset(one_try)
    request = http_v2([page_view(i) for i in range(10)])
    throttled = throttle_paths(monkeypatch, one_try, {f"/docs/{i}" for i in range(0, 10, 2)})
    status, first, _ = invoke(request)
    # when the throttling stops and the client re-sends the whole request, as the 503 advises
    throttled.clear()
    again_status, again, _ = invoke(request)
    # then the table holds exactly 10 items, under the ids both answers reported
    assert table_size(one_try) == 10
    assert status == 503
    assert "re-send the same request" in first["message"]
    assert "same ids" in first["message"] and "`duplicate`" in first["message"]
    assert again_status == 207
    assert outcomes(again) == ["created" if i % 2 == 0 else "duplicate" for i in range(10)]
    assert [r["event_id"] for r in again["results"]] == [r["event_id"] for r in first["results"]]


def test_every_result_carries_the_event_id_generated_ones_too(installed: EventLake) -> None:
    status, body, _ = invoke(http_v2([page_view(1), page_view(2)]))

    assert status == 201
    ids = [r["event_id"] for r in body["results"]]
    assert all(isinstance(i, str) and len(i) == 36 for i in ids)
    assert all(stored(installed, i) is not None for i in ids)


def test_a_direct_invocation_that_raised_and_is_retried_stores_each_event_once(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a direct invocation of 4 events without ids, 2 of them throttled
    one_try = EventLake(lake.settings.with_(aws_max_attempts=1))
    ingest.reset(one_try)
    payload = [page_view(i) for i in range(4)]
    throttled = throttle_paths(monkeypatch, one_try, {"/docs/1", "/docs/3"})
    with pytest.raises(TransientError) as raised:
        ingest.handler(payload, FakeContext())
    # when Lambda retries the same payload after the throttling stopped
    throttled.clear()
    result = ingest.handler(payload, FakeContext())
    # then there are 4 items, not 6, and the error told what a retry does
    assert table_size(one_try) == 4
    assert "same ids" in str(raised.value) and "`duplicate`" in str(raised.value)
    assert result["statusCode"] == 207
    assert result["counts"]["created"] == 2 and result["counts"]["duplicate"] == 2


# --- bad input gets a rule (issue 8, items 9 and 13) ----------------------------------------

@pytest.mark.parametrize("field", ["event_id", "event_type", "source", "subject"])
def test_a_lone_surrogate_in_a_field_is_400_with_a_rule_and_the_valid_events_stored(
        installed: EventLake, field: str) -> None:
    # given a body whose second event holds "\ud800" (a JSON escape of a lone surrogate)
    bad = json.dumps(order("ord-bad") | {"subject": "order/7"}).replace(
        f'"{field}": "', f'"{field}": "\\ud800', 1)
    body = f"[{json.dumps(order('ord-1'))}, {bad}, {json.dumps(order('ord-2'))}]"
    assert "\\ud800" in body
    # when it is posted
    status, answer, _ = invoke(http_v2(body))
    # then it is a 400 naming the rule, and the valid events are stored
    assert status == 400
    assert outcomes(answer) == ["created", "invalid", "created"]
    assert answer["results"][1]["rule"] == f"{field}.invalid_unicode"
    assert stored(installed, "ord-1") is not None and stored(installed, "ord-2") is not None


def test_a_body_with_a_duplicate_key_is_400_naming_the_key_and_stores_nothing(
        installed: EventLake) -> None:
    body = ('[{"event_id": "ord-1", "event_type": "order.placed", "event_type": "order.paid",'
            ' "event_payload": {}}]')

    status, answer, _ = invoke(http_v2(body))

    assert (status, answer["rule"]) == (400, "request.duplicate_key")
    assert "`event_type`" in answer["message"] and "nothing was stored" in answer["message"]
    assert stored(installed, "ord-1") is None


def test_an_integer_of_4301_digits_is_stored_exactly(installed: EventLake) -> None:
    digits = "7" * 4301
    body = ('{"event_id": "num-long", "event_type": "meter.read", "timestamp": '
            f'"2026-03-14T09:26:51Z", "event_payload": {{"wh": {digits}}}}}')

    status, answer, _ = invoke(http_v2(body))

    assert status == 201, answer
    item = stored(installed, "num-long")
    assert item is not None and item["event_payload"]["S"] == f'{{"wh":{digits}}}'


def test_invalid_events_of_a_direct_invocation_are_logged_one_line_each_with_the_raw_event(
        installed: EventLake, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ingest.__name__)
    broken = {"event_id": "ord-bad", "event_type": "order.placed", "timestamp": "yesterday",
              "event_payload": {"note": "x" * 10_000}}

    result = ingest.handler([order("ord-1"), broken, {"event_type": 7}], FakeContext())

    assert result["statusCode"] == 400
    invalid = [x for x in ingest_lines(caplog) if x["msg"] == "ingest.invalid_event"]
    assert [(x["position"], x["event_id"], x["rule"]) for x in invalid] == [
        (1, "ord-bad", "timestamp.unparseable"), (2, None, "event_type.type")]
    assert all(x["request_id"] == FakeContext.aws_request_id for x in invalid)
    assert "[rule timestamp.unparseable]" in invalid[0]["message"]
    assert invalid[0]["raw"].startswith('{"event_id":"ord-bad"')
    assert len(invalid[0]["raw"]) <= ingest.MAX_LOGGED_EVENT_CHARS + 1
    assert invalid[0]["raw_truncated"] is True
    assert json.loads(invalid[1]["raw"]) == {"event_type": 7}
    assert any(r.levelno == logging.ERROR for r in caplog.records
               if "ingest.invalid_event" in r.getMessage())


def test_invalid_events_logged_per_invocation_are_capped_with_a_count_of_the_rest(
        installed: EventLake, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ingest.__name__)
    payload = [{"event_id": f"bad-{i}", "event_type": ""} for i in range(50)]

    ingest.handler(payload, FakeContext())

    lines = ingest_lines(caplog)
    invalid = [x for x in lines if x["msg"] == "ingest.invalid_event"]
    [rest] = [x for x in lines if x["msg"] == "ingest.invalid_events_not_logged"]
    assert len(invalid) == ingest.MAX_LOGGED_INVALID_EVENTS
    assert rest["count"] == 50 - ingest.MAX_LOGGED_INVALID_EVENTS
    assert rest["rules"] == {"event_type.format": rest["count"]}
    assert rest["event_ids"][0] == f"bad-{ingest.MAX_LOGGED_INVALID_EVENTS}"


def test_an_invalid_eventbridge_event_is_logged_and_not_raised(
        installed: EventLake, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ingest.__name__)
    event = load_event("eventbridge_order_shipped.json") | {"time": "not a time"}

    result = ingest.handler(event, FakeContext())

    assert result["statusCode"] == 400
    [line] = [x for x in ingest_lines(caplog) if x["msg"] == "ingest.invalid_event"]
    assert line["event_id"] == "7bf73129-1428-4cd3-a780-95db273d1602"
    assert line["rule"] == "timestamp.unparseable"
    assert json.loads(line["raw"])["detail-type"] == "order.shipped"


def test_api_gateway_requests_do_not_log_each_invalid_event(
        installed: EventLake, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ingest.__name__)
    invoke(http_v2([{"event_type": ""}]))
    assert [x["msg"] for x in ingest_lines(caplog)] == ["ingest"]


# --- answering in time (issue 8, item 10) ----------------------------------------------------

class ClockedContext(FakeContext):
    """A Lambda context whose remaining time runs down only when the store sleeps."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms
        self.slept: list[float] = []

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.remaining_ms -= int(seconds * 1000)


def test_a_store_that_always_throttles_is_answered_in_time_with_per_event_results(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a store that throttles every write and 50 attempts allowed (a look-back large
    # enough for them), 5 s of Lambda time left
    context = ClockedContext(remaining_ms=5_000)
    patient = EventLake(lake.settings.with_(aws_max_attempts=50, clock_skew_seconds=3000,
                                            put_concurrency=4))
    record_on_table(patient.clients, patient.settings)  # the table's look-back
    record_pauses(monkeypatch, context.sleep)
    ingest.reset(patient)
    throttle_every_attempt(patient, {f"/docs/{i}" for i in range(8)})
    request = http_v2([page_view(i) for i in range(8)])
    # when the request comes in
    response = ingest.handler(request, context)
    # then the answer comes while 2 s (the margin) are still left, with a result per event
    body = json.loads(response["body"])
    assert response["statusCode"] == 503
    assert context.remaining_ms >= 2_000
    assert [(r["outcome"], r["retryable"]) for r in body["results"]] == [("failed", True)] * 8
    assert "in time" in body["results"][0]["message"]


def test_the_margin_is_a_tenth_of_a_long_remaining_time(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    context = ClockedContext(remaining_ms=60_000)
    patient = EventLake(lake.settings.with_(aws_max_attempts=50, clock_skew_seconds=3000))
    record_on_table(patient.clients, patient.settings)  # the table's look-back
    record_pauses(monkeypatch, context.sleep)
    ingest.reset(patient)
    throttle_every_attempt(patient, {"/docs/1"})

    with pytest.raises(TransientError):
        ingest.handler(page_view(1), context)

    assert context.remaining_ms >= 6_000
    assert sum(context.slept) > 10  # it did keep retrying while there was time


def test_a_cold_start_whose_table_lookup_is_throttled_still_answers_in_time(
        lake: EventLake, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a fresh store (the table's settings not read yet), DynamoDB throttling every
    # DescribeTable, and 5 s of Lambda time left
    context = ClockedContext(remaining_ms=5_000)
    cold = EventLake(lake.settings)
    record_pauses(monkeypatch, context.sleep)
    ingest.reset(cold)
    lookups = inject_where(cold.hot.clients.dynamodb, "DescribeTable",
                           dynamodb_error("ThrottlingException"), lambda _: True)
    # when a request comes in, then the lookup stops retrying while the margin is left and
    # the request is answered as retryable
    with pytest.raises(TransientError, match="answer in time"):
        ingest.handler(page_view(1), context)
    assert context.remaining_ms >= 2_000
    assert 1 <= lookups.calls < cold.settings.aws_max_attempts


def test_conflicts_of_a_direct_invocation_are_logged_one_line_each_with_the_raw_event(
        installed: EventLake, caplog: pytest.LogCaptureFixture) -> None:
    # given a stored event, and an asynchronous invocation (nobody reads its answer) that sends
    # other content under its id
    ingest.handler(order("ord-1"), None)
    caplog.set_level(logging.INFO, logger=ingest.__name__)
    result = ingest.handler([order("ord-2"), order("ord-1", total=1)], FakeContext())
    # then the refused event, which is stored nowhere, is logged at ERROR with its content
    assert result["statusCode"] == 409
    [line] = [x for x in ingest_lines(caplog) if x["msg"] == "ingest.conflicting_event"]
    assert (line["position"], line["event_id"]) == (1, "ord-1")
    assert json.loads(line["raw"])["event_payload"]["total"] == 1
    assert "different content" in line["message"]
    assert any(r.levelno == logging.ERROR for r in caplog.records
               if "ingest.conflicting_event" in r.getMessage())
    # and stored items are untouched
    item = stored(installed, "ord-1")
    assert item is not None and '"total":48.48' in item["event_payload"]["S"]


@pytest.mark.parametrize("base64_encoded", [False, True])
def test_a_body_starting_with_a_utf8_byte_order_mark_is_read_either_way(
        installed: EventLake, base64_encoded: bool) -> None:
    # given the same JSON with a BOM (what .NET's UTF8 StreamWriter writes), as text or base64
    status, answer, _ = invoke(http_v2("\ufeff" + json.dumps(order("ord-bom")),
                                       base64_encoded=base64_encoded))
    # then both doors read it alike (RFC 8259 lets a parser ignore the mark)
    assert status == 201, answer
    assert stored(installed, "ord-bom") is not None

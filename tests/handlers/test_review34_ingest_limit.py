"""review34: the ingest Lambda's default body limit against Lambda's 6 MiB cap on the whole
event as JSON, for bodies whose payloads carry JSON as a string (a common producer habit: each
quote inside is escaped in the body, and escaped again in the event). Such a body under the
limit that made an event over the cap never reached the handler: API Gateway answered 5xx, a
status a client retries forever, where the handler's 413 says to split it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import load_event

from eventlake.config import Settings

LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
"""`Request must be smaller than 6291456 bytes for the InvokeFunction operation`."""


def stringified(i: int) -> dict[str, Any]:
    """An event whose payload holds another system's JSON document as a string."""
    order = {"order": f"o-{i:08d}", "sku": "sku-042", "qty": 2,
             "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 3}]}
    return {"event_id": f"ord-{i:08d}", "event_type": "order.placed",
            "timestamp": "2026-11-30T12:00:00Z",
            "event_payload": {"raw": json.dumps(order)}}


def body_near(limit: int) -> str:
    """A JSON body of `stringified` events (each of one length), as close to `limit` bytes as
    whole events allow."""
    one = len(json.dumps(stringified(0), separators=(",", ":"))) + 1  # with its comma
    body = json.dumps({"events": [stringified(i) for i in range((limit - 12) // one)]},
                      separators=(",", ":"))
    assert limit - one < len(body.encode()) <= limit
    return body


@pytest.mark.parametrize("base64", [False, True], ids=["text", "base64"])
def test_a_body_of_stringified_json_at_the_default_limit_reaches_the_handler(
        base64: bool) -> None:
    # given the largest such body the handler accepts by default, in a real HTTP API event
    # (base64: the limit counts the raw, encoded body, checked before decoding)
    import base64 as b64

    limit = Settings().max_request_bytes
    body = body_near(limit if not base64 else limit * 3 // 4)
    event = load_event("apigw_v2_cookies_list_body.json")
    if base64:
        event["body"], event["isBase64Encoded"] = b64.b64encode(body.encode()).decode(), True
    else:
        event["body"], event["isBase64Encoded"] = body, False
    assert limit - 1024 < len(event["body"]) <= limit

    # when API Gateway hands it to Lambda, then it fits Lambda's cap: an over-limit body gets
    # the handler's 413, an under-limit one the handler
    invoked = len(json.dumps(event).encode())
    assert invoked <= LAMBDA_PAYLOAD_LIMIT, (
        f"a {len(event['body']):,}-byte body made a {invoked:,}-byte event")

"""The ingest Lambda's default body limit against Lambda's own: 6 MB on the whole event as JSON.

A body is a string inside the API Gateway event: its quotes are escaped, its headers and request
context sit beside it. A request over Lambda's cap never reaches the handler (API Gateway
answers 5xx), so the handler's 413 must come first: the default leaves a margin.
"""

from __future__ import annotations

import json
from typing import Any

from conftest import load_event

from eventlake.config import Settings

LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
"""Lambda's synchronous invocation payload: 6 MB (the request as JSON)."""


def _body_of_size(limit: int) -> str:
    """A JSON body of real-looking events, as close to `limit` bytes as whole events allow."""
    events: list[dict[str, Any]] = []
    size = len('{"events":[]}')
    i = 0
    while True:
        event = {"event_id": f"ord-{i:08d}", "event_type": "order.placed",
                 "timestamp": "2026-11-30T12:00:00Z",
                 "event_payload": {"order": f"o-{i}", "sku": "sku-042", "qty": 2,
                                   "note": "gift \"wrap\"", "tags": ["a", "b"]}}
        text = json.dumps(event, separators=(",", ":"))
        if size + len(text) + 1 > limit:
            return json.dumps({"events": events}, separators=(",", ":"))
        events.append(event)
        size += len(text) + 1
        i += 1


def test_a_body_at_the_default_limit_fits_lambdas_payload_cap_as_an_api_gateway_event() -> None:
    # given the largest body the handler accepts by default, in a real HTTP API event
    limit = Settings().max_request_bytes
    body = _body_of_size(limit)
    event = load_event("apigw_v2_cookies_list_body.json")
    event["body"], event["isBase64Encoded"] = body, False

    # when API Gateway hands it to Lambda (the event serialised as JSON)
    invoked = len(json.dumps(event).encode())

    # then Lambda takes it, so an over-limit body gets the handler's 413, not AWS's 5xx
    assert len(body.encode()) > limit - 200
    assert invoked <= LAMBDA_PAYLOAD_LIMIT, (invoked, LAMBDA_PAYLOAD_LIMIT)

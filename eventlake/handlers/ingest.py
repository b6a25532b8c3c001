"""The ingestion Lambda: events in through API Gateway, direct invocation or EventBridge; one
`put_events` call (hot/put.py, what `EventLake.put_many` runs); a response that says what
happened to each event.

    API Gateway REST (v1) / HTTP API (v2) ─> body (base64?) ─> JSON ─┐
    direct invoke: event | [events] | {"events": [...]} ─────────────┼─> put_many ─> response
    EventBridge event {"detail-type": ...} ──────────────────────────┘

Status, first match wins (direct and EventBridge invocations get the same code in a plain dict):

    413  body over Settings.max_request_bytes (raw length, checked before decoding)
    400  unreadable request: empty body, bad base64, not JSON, not an event / array /
         {"events": [...]}, no events, more than MAX_EVENTS_PER_REQUEST (nothing stored)
    400  some event invalid (the valid ones are stored; `results` names each rule)
    409  some event conflicts with a stored one (the stored item is untouched)
    500  the store refused a write for good (missing table, no permission): an operator must act
    503  some event failed transiently, or retrying it would outlast the invocation
         (Retry-After; re-sending the whole request is safe, see below)
    201  all created · 200 all duplicates (an identical retry) · 207 created and duplicates
    500  unexpected error: a generic message with the request id; the traceback is logged

Retries never store an event twice: events sent without an event_id get one derived from
their content, so a re-sent request finds the same ids and stored events come back as
`duplicate`. Throttling retries stop when the invocation nears its end (the context's
remaining time less max(2 s, 10 %)), so the answer always names every event.

A direct or EventBridge invocation raises when an event failed transiently, so Lambda's async
retry re-sends it. Anything else is returned. Invalid events are not raised: a retry cannot
make them valid, nor conflicts stored content. Nobody may read the answer of an asynchronous
invocation, so each invalid or conflicting event (refused, stored nowhere) is logged at ERROR
(position, id, rule, message and the raw event up to 4 KB), at most MAX_LOGGED_INVALID_EVENTS
per outcome and invocation and a count of the rest.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from eventlake.aws import Clients, is_transient
from eventlake.config import Settings, redact
from eventlake.errors import StorageError, TransientError
from eventlake.events.canonical import DuplicateKeyError, canonical_json, kind_of, loads_exact
from eventlake.hot.put import put_events
from eventlake.hot.results import Deadline, Outcome, PutResult, count_outcomes
from eventlake.hot.store import HotStore

MAX_EVENTS_PER_REQUEST = 1000
"""More events than this in one request is a 400: it bounds the time one invocation takes."""
RETRY_AFTER_SECONDS = 1
"""The Retry-After header of a 503."""
DEADLINE_MARGIN_SECONDS = 2.0
DEADLINE_MARGIN_FRACTION = 0.1
"""Throttling retries stop when the invocation has max(2 s, 10 %) of its remaining time left:
room to answer (and for one slow DynamoDB call) before Lambda's timeout."""
MAX_LOGGED_INVALID_EVENTS = 20
"""Invalid (and, apart, conflicting) events of one asynchronous invocation logged one line each;
the rest are counted."""
MAX_LOGGED_EVENT_CHARS = 4096
"""The raw event in an invalid-event log line is cut to this many characters."""
RESEND_ADVICE = ("re-send the same request (safe: events get the same ids, stored ones come back "
                 "as `duplicate`)")

Kind = Literal["apigw-v1", "apigw-v2", "direct", "eventbridge"]

_log = logging.getLogger(__name__)
if _log.level == logging.NOTSET and "AWS_LAMBDA_LOG_LEVEL" not in os.environ:
    # Lambda's root logger sits at WARNING; the one line per invocation is INFO.
    _log.setLevel(logging.INFO)



class _HasHotStore(Protocol):
    """What `reset` accepts besides a HotStore: an EventLake (not imported here: it would
    bring the query layer into the Lambda)."""

    @property
    def hot(self) -> HotStore: ...


_STORE: HotStore | None = None


def _store() -> HotStore:
    """The hot store of this execution environment, built on first use and then reused."""
    global _STORE
    if _STORE is None:
        settings = Settings.from_env()
        _STORE = HotStore(settings, Clients(settings))
    return _STORE


def reset(lake: HotStore | _HasHotStore | None = None) -> None:
    """Forget the cached store (the next invocation builds one), or use `lake`'s (an
    EventLake or a HotStore) instead."""
    global _STORE
    _STORE = lake if lake is None or isinstance(lake, HotStore) else lake.hot


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Lambda entry point (`eventlake.handlers.ingest.handler`)."""
    started = time.perf_counter()
    kind = classify(event)
    request_id = getattr(context, "aws_request_id", None) or _apigw_request_id(event)
    try:
        reply = _ingest(event, kind, _deadline(context))
    except Exception as exc:
        if kind not in ("apigw-v1", "apigw-v2"):
            _log_invocation(logging.ERROR, kind, event, request_id, started, None, error=exc)
            raise  # Lambda records the error; an async invocation is retried
        if isinstance(exc, TransientError) or is_transient(exc):
            reply = _Reply(503, [], "the store is unavailable for now; after Retry-After "
                                    f"seconds, {RESEND_ADVICE}", "store.unavailable")
            _log_invocation(logging.WARNING, kind, event, request_id, started, reply, error=exc)
        else:
            reply = _Reply(500, [], f"internal error; quote request id `{request_id}` when "
                                    "reporting it", None)
            _log_invocation(logging.ERROR, kind, event, request_id, started, reply, error=exc)
        return _http_response(reply, request_id)
    level = logging.WARNING if reply.status >= 500 else logging.INFO
    _log_invocation(level, kind, event, request_id, started, reply)
    if kind in ("apigw-v1", "apigw-v2"):
        return _http_response(reply, request_id)
    _log_refused_events(reply, request_id)
    if reply.counts[Outcome.FAILED.value]:
        # Raise, so that Lambda's async retries (and then the on-failure destination,
        # infra/template.yaml's IngestFailures queue) keep the events.
        permanent = any(r.outcome is Outcome.FAILED and not r.retryable for r in reply.results)
        error = StorageError if permanent else TransientError
        raise error(f"{reply.message} (invocation raised so that Lambda retries it: "
                    f"{RESEND_ADVICE})")
    return reply.to_dict()


def classify(event: Any) -> Kind:
    """Which door the invocation came through."""
    if isinstance(event, Mapping):
        context = event.get("requestContext")
        if isinstance(context, Mapping) and (
                "httpMethod" in event or "routeKey" in event or "http" in context
                or event.get("version") in ("1.0", "2.0")):
            return "apigw-v2" if event.get("version") == "2.0" or "http" in context else "apigw-v1"
        if "detail-type" in event:
            return "eventbridge"
    return "direct"


# --- parsing ---------------------------------------------------------------------------

class _Rejected(Exception):
    """The request as a whole cannot be read; nothing was stored."""

    def __init__(self, status: int, rule: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.rule = rule
        self.message = message


@dataclass(frozen=True)
class _Reply:
    status: int
    results: list[PutResult]
    message: str | None
    rule: str | None
    events: Sequence[Any] = ()
    """The raw events, by position (for logging the invalid ones)."""

    @property
    def counts(self) -> dict[str, int]:
        return count_outcomes(self.results)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"statusCode": self.status, "counts": self.counts,
                               "results": [r.to_dict() for r in self.results]}
        if self.message:
            out["message"] = self.message
        if self.rule:
            out["rule"] = self.rule
        return out


def _deadline(context: Any) -> Deadline | None:
    """When retries must stop for this invocation to answer in time; None without a context."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining_ms):
        return None
    margin = max(DEADLINE_MARGIN_SECONDS, DEADLINE_MARGIN_FRACTION * remaining_ms() / 1000)
    # Ask the context each time: it is Lambda's own clock of this invocation.
    return Deadline(lambda: remaining_ms() / 1000 - margin)


def _ingest(event: Any, kind: Kind, deadline: Deadline | None = None) -> _Reply:
    try:
        if kind == "eventbridge":
            events: list[Any] = [event]
        elif kind == "direct":
            events = _events_of(event, "the invocation payload")
        else:
            events = _events_of(_read_body(event, _store().settings.max_request_bytes), "body")
    except _Rejected as rejected:
        return _Reply(rejected.status, [], rejected.message, rejected.rule)
    results = put_events(_store(), events, deadline=deadline)
    status = _status(results)
    return _Reply(status, results, _message(status, results), None, events)


def _read_body(event: Mapping[str, Any], limit: int) -> Any:
    """The parsed JSON body of an API Gateway proxy event (v1 and v2 alike)."""
    body = event.get("body")
    if body is None or (isinstance(body, str) and not body.strip()):
        raise _Rejected(400, "request.empty_body",
                        'empty body: send one event, a JSON array of events or {"events": [...]}')
    if not isinstance(body, str):
        raise _Rejected(400, "request.body_type",
                        f"body must be a string (API Gateway's proxy format), got {kind_of(body)}")
    size = _utf8_len(body)
    if size > limit:
        raise _Rejected(413, "request.too_large",
                        f"body is {size:,} bytes; at most {limit:,} are accepted "
                        "(EVENTLAKE_MAX_REQUEST_BYTES): split the events over several requests")
    # A leading UTF-8 byte order mark is ignored, as json.loads ignores it in bytes (base64)
    data: str | bytes = body.removeprefix("\ufeff")
    if event.get("isBase64Encoded") in (True, "true"):
        try:
            data = base64.b64decode(body, validate=True)
        except ValueError:
            raise _Rejected(400, "request.bad_base64",
                            "body is marked isBase64Encoded but is not valid base64") from None
        if not data.strip():
            raise _Rejected(400, "request.empty_body", "empty body (after base64 decoding)")
    try:
        return loads_exact(data)
    except DuplicateKeyError as exc:
        raise _Rejected(400, "request.duplicate_key",
                        f"body names the key `{exc.key}` twice in one object, so which value is "
                        "meant is unknown; nothing was stored: send each key once") from None
    except RecursionError:
        raise _Rejected(400, "request.not_json", "body is not usable JSON: it nests too deeply"
                        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity
        raise _Rejected(400, "request.not_json",
                        f"body is not valid JSON ({_short(exc)}); send one event, a JSON array "
                        'of events or {"events": [...]}') from None


def _events_of(data: Any, where: str) -> list[Any]:
    """One event, a list of events, or {"events": [...]} as a non-empty, bounded list."""
    if isinstance(data, list):
        events = data
    elif isinstance(data, Mapping):
        if "events" in data and "specversion" not in data and "detail-type" not in data:
            extra = sorted(str(k) for k in data if k != "events")
            if extra:
                raise _Rejected(400, "request.shape",
                                f"{where} has key(s) {', '.join(f'`{k}`' for k in extra)} beside "
                                '`events`; expected {"events": [...]} alone')
            events = data["events"]
            if not isinstance(events, list):
                raise _Rejected(400, "request.shape",
                                f"`events` must be a JSON array, got {kind_of(events)}")
        else:
            events = [data]
    else:
        raise _Rejected(400, "request.shape",
                        f"{where} is {kind_of(data)}; expected one event (a JSON object), an array "
                        'of events or {"events": [...]}')
    if not events:
        raise _Rejected(400, "request.no_events", f"{where} holds no events")
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise _Rejected(400, "request.too_many_events",
                        f"{where} holds {len(events):,} events; at most "
                        f"{MAX_EVENTS_PER_REQUEST:,} per request: split it")
    return events


# --- responses -------------------------------------------------------------------------

def _status(results: Sequence[PutResult]) -> int:
    counts = count_outcomes(results)
    if counts[Outcome.INVALID.value]:
        return 400
    if counts[Outcome.CONFLICT.value]:
        return 409
    if any(r.outcome is Outcome.FAILED and not r.retryable for r in results):
        return 500
    if counts[Outcome.FAILED.value]:
        return 503
    if not counts[Outcome.DUPLICATE.value]:
        return 201
    if not counts[Outcome.CREATED.value]:
        return 200
    return 207


_ADVICE = {
    400: "fix the invalid events and re-send them (re-sending stored events is harmless)",
    409: "events are immutable: send changed content as a new event with a new event_id",
    503: f"after {RETRY_AFTER_SECONDS} s, {RESEND_ADVICE}",
}


def _message(status: int, results: Sequence[PutResult]) -> str | None:
    if status < 400:
        return None
    counts = count_outcomes(results)
    problems = ", ".join(f"{counts[o.value]} {o.value}" for o in
                         (Outcome.INVALID, Outcome.CONFLICT, Outcome.FAILED) if counts[o.value])
    stored = counts[Outcome.CREATED.value] + counts[Outcome.DUPLICATE.value]
    if status == 500:  # the store's own reason (missing table? permissions?), said once
        reasons = dict.fromkeys(r.message for r in results
                                if r.outcome is Outcome.FAILED and not r.retryable)
        advice = (f"the store refused the write for good: {'; '.join(filter(None, reasons))}; "
                  "an operator must act; re-sending is safe once fixed")
    else:
        advice = _ADVICE[status]
    return f"{len(results)} event(s): {problems}, {stored} stored (see `results`); {advice}"


def _http_response(reply: _Reply, request_id: str | None) -> dict[str, Any]:
    body = reply.to_dict()
    del body["statusCode"]
    if request_id:
        body["request_id"] = request_id
    headers = {"content-type": "application/json"}
    if reply.status == 503:
        headers["retry-after"] = str(RETRY_AFTER_SECONDS)
    return {"statusCode": reply.status, "headers": headers, "isBase64Encoded": False,
            "body": json.dumps(body, separators=(",", ":"))}


def _log_invocation(level: int, kind: Kind, event: Any, request_id: str | None,
                    started: float, reply: _Reply | None,
                    error: BaseException | None = None) -> None:
    """One JSON line per invocation (with the traceback when something unexpected broke)."""
    line: dict[str, Any] = {"msg": "ingest", "kind": kind, "request_id": request_id}
    apigw_id = _apigw_request_id(event) if kind.startswith("apigw") else None
    if apigw_id and apigw_id != request_id:
        line["apigw_request_id"] = apigw_id
    if reply is not None:
        line.update(status=reply.status, counts=reply.counts)
        if reply.rule:
            line["rule"] = reply.rule
    line["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    if error is not None:
        # AWS errors embed the endpoint URL: never its password (redact), even in a log.
        line["error"] = redact(f"{type(error).__name__}: {_short(error, 500)}")
        line["traceback"] = redact("".join(traceback.format_exception(error)))
    _log_json(level, line)


_REFUSED = {Outcome.INVALID: ("ingest.invalid_event", "ingest.invalid_events_not_logged"),
            Outcome.CONFLICT: ("ingest.conflicting_event",
                               "ingest.conflicting_events_not_logged")}
"""The log lines of refused events: one per event, and the count of those past the cap."""


def _log_refused_events(reply: _Reply, request_id: str | None) -> None:
    """Per refused outcome (invalid, conflict: content stored nowhere), one ERROR line per event
    (raw event included, cut to MAX_LOGGED_EVENT_CHARS), at most MAX_LOGGED_INVALID_EVENTS, then
    one line counting the rest by rule."""
    for outcome, (each, not_logged) in _REFUSED.items():
        refused = [r for r in reply.results if r.outcome is outcome]
        for result in refused[:MAX_LOGGED_INVALID_EVENTS]:
            raw = _raw_text(reply.events[result.position]) if result.position < len(
                reply.events) else ""
            _log_json(logging.ERROR, {
                "msg": each, "request_id": request_id,
                "position": result.position, "event_id": result.event_id, "rule": result.rule,
                "message": result.message, "raw": raw[:MAX_LOGGED_EVENT_CHARS],
                "raw_truncated": len(raw) > MAX_LOGGED_EVENT_CHARS})
        rest = refused[MAX_LOGGED_INVALID_EVENTS:]
        if rest:
            rules = Counter(r.rule or "?" for r in rest)
            _log_json(logging.ERROR, {
                "msg": not_logged, "request_id": request_id,
                "count": len(rest), "rules": dict(rules),
                "positions": [r.position for r in rest],
                "event_ids": [r.event_id for r in rest]})


def _log_json(level: int, line: dict[str, Any]) -> None:
    _log.log(level, json.dumps(line, default=str, separators=(",", ":")))


def _raw_text(raw: Any) -> str:
    """The event as sent, as JSON text (numbers exact where they can be)."""
    try:
        return canonical_json(raw)
    except Exception:  # not canonical JSON as it stands (e.g. a lone surrogate)
        try:
            return json.dumps(raw, default=str, separators=(",", ":"))
        except Exception as exc:  # logging must never fail the invocation
            return f"<unprintable {kind_of(raw)}: {type(exc).__name__}>"


# --- helpers ---------------------------------------------------------------------------

def _apigw_request_id(event: Any) -> str | None:
    if isinstance(event, Mapping):
        context = event.get("requestContext")
        request_id = context.get("requestId") if isinstance(context, Mapping) else None
        if isinstance(request_id, str):
            return request_id
    return None


def _utf8_len(text: str) -> int:
    # ASCII (most JSON, every base64 body) is one byte a character: no copy needed.
    return len(text.encode("utf-8", "surrogatepass")) if not text.isascii() else len(text)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "…"

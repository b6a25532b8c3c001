"""The HTTP(S) target: each batch POSTed as one JSON array of shaped events.

    POST <url>   Content-Type: application/json
                 Idempotency-Key: "<digest of the batch's event_ids>"
                 body: [event, event, ...]   (each in the target's shape; `seed` by default)

    2xx                           acknowledged (the replay checkpoints the batch)
    429, 408, 5xx, no answer      retried with backoff.Backoff (a Retry-After in seconds or as
    (refused, reset, timed out:   an HTTP date is waited instead, up to `retry_after_cap_s`);
    no status within timeout_s)
                                  when the tries run out: DeliveryError
    other 4xx, 3xx, a bad TLS     DeliveryError at once: retrying will not change the answer
    certificate                   (redirects are not followed: a POST redirected would be
                                  re-sent as a GET by urllib, and lost)

DeliveryError names the batch's events, the URL (its password never shown) and the last
status with an excerpt of the body. A batch timed out or answered 5xx may still have been
taken by the receiver, so a retry can deliver it twice, as a resumed replay can: the
`Idempotency-Key` header (draft-ietf-httpapi-idempotency-key-header: a quoted string) is the
same for the same events in every try and every run with the same batch size, and every event
carries its event_id, the receiver's deduplication key.

`timeout_s` is each request's deadline, not only each socket read's: a server trickling bytes
slowly would otherwise hold a try for ever. A watchdog timer shuts the request's socket down
when the deadline passes (the blocked read then returns), and the try counts as timed out.

urllib (standard library) rather than httpx: eventlake's own dependencies are boto3 and pyarrow,
httpx only comes with prefect (an extra the library must not need), and one POST per batch of
hundreds of events needs no connection pool. A user and password in the URL are sent as HTTP
Basic authorization, never in a message or a log line.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import logging
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from typing import IO, Any

from eventlake.config import redact, redact_url
from eventlake.events.canonical import canonical_json, digest
from eventlake.replay.backoff import Backoff
from eventlake.replay.batch import Batch
from eventlake.replay.targets import DeliveryError, Target, TargetError

_log = logging.getLogger(__name__)

EXCERPT_CHARS = 200
"""How much of a refusal's body a DeliveryError quotes."""
RETRYABLE_4XX = frozenset({408, 429})
"""Client errors worth retrying: Request Timeout, Too Many Requests."""


@dataclass(frozen=True)
class _Answer:
    """What one POST came to: acknowledged, or why not and whether a retry may help."""

    ok: bool
    reason: str = ""
    retryable: bool = False
    retry_after: float | None = None


class HttpTarget(Target):
    """POST each batch to `url` as a JSON array of shaped events (see the module docstring).
    `timeout_s` bounds each request as a whole (connect, send, the answer's status);
    `headers` are added to each request (e.g. an Authorization header; never logged);
    `backoff` is the retry schedule."""

    def __init__(self, url: str, *, timeout_s: float = 30.0, backoff: Backoff | None = None,
                 headers: dict[str, str] | None = None,
                 retry_after_cap_s: float = 60.0) -> None:
        self.name = redact_url(url) or url
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetError(f"target `{self.name}` is not an http:// or https:// URL with a "
                              "host")
        if timeout_s <= 0:
            raise TargetError(f"target `{self.name}`: timeout `{timeout_s}` must be > 0 s")
        self.headers = {"Content-Type": "application/json", "User-Agent": "eventlake-replay",
                        **(headers or {})}
        if parts.username is not None or parts.password is not None:
            user = urllib.parse.unquote(parts.username or "")
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self.headers.setdefault("Authorization", f"Basic {token}")
            host = parts.hostname + (f":{parts.port}" if parts.port else "")
            parts = parts._replace(netloc=host)
        self.url = urllib.parse.urlunsplit(parts)
        self.timeout_s = timeout_s
        self.backoff = backoff or Backoff()
        self.retry_after_cap_s = retry_after_cap_s
        self._deadline: Deadline | None = None
        self._opener = urllib.request.OpenerDirector()
        for handler in (urllib.request.ProxyHandler(), _WatchedHTTPHandler(self._watch),
                        _WatchedHTTPSHandler(self._watch),
                        urllib.request.HTTPDefaultErrorHandler(),
                        urllib.request.HTTPErrorProcessor()):
            # no HTTPRedirectHandler: a 3xx ends in an HTTPError (urllib would re-send a
            # redirected POST as a GET)
            self._opener.add_handler(handler)

    def describe(self) -> str:
        return self.name

    def send(self, batch: Batch) -> int | None:
        event_ids = [str(i) for i in batch.rows.column("event_id").to_pylist()]
        body = self.body(batch)
        headers = {**self.headers, "Idempotency-Key": idempotency_key(event_ids)}
        waits = self.backoff.waits()
        tries = 0
        while True:
            tries += 1
            answer = self._post(body, headers)
            if answer.ok:
                return None
            if not answer.retryable:
                raise DeliveryError(self.name, event_ids,
                                    f"{answer.reason} (not retried: the same request would get "
                                    "the same answer)")
            wait = next(waits, None)
            if wait is None:
                raise DeliveryError(self.name, event_ids,
                                    f"still failing after {tries} tries: {answer.reason}")
            if answer.retry_after is not None:
                wait = min(answer.retry_after, self.retry_after_cap_s)
            _log.warning("replay to %s: %s; try %d of %d in %.1f s", self.name, answer.reason,
                         tries + 1, self.backoff.attempts, wait)
            self.backoff.sleep(wait)

    def body(self, batch: Batch) -> bytes:
        """The batch as a JSON array of events in the target's shape. `seed`: the seed lines
        joined (canonical JSON never holds a raw newline), no Python object per event."""
        if self.shape is None:
            lines = batch.seed_lines()
            return b"[" + lines[:-1].replace(b"\n", b",") + b"]"
        return canonical_json(batch.shaped(self.shape)).encode("utf-8")

    def _post(self, body: bytes, headers: dict[str, str]) -> _Answer:
        deadline = Deadline(self.timeout_s)
        self._deadline = deadline
        try:
            with deadline:
                answer = self._attempt(body, headers)
        finally:
            self._deadline = None
        if deadline.expired and not answer.ok and answer.retryable:
            return self._timed_out()
        return answer

    def _timed_out(self) -> _Answer:
        return _Answer(False, f"no answer within {self.timeout_s:g} s", True)

    def _watch(self, sock: socket.socket) -> None:
        """Put a request's socket under its deadline (called when it connects)."""
        if self._deadline is not None:
            self._deadline.attach(sock)

    def _attempt(self, body: bytes, headers: dict[str, str]) -> _Answer:
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            response = self._opener.open(request, timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            return _refusal(exc.code, exc.headers, exc)
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                return _Answer(False, f"TLS certificate not trusted: {exc.reason}")
            if isinstance(exc.reason, TimeoutError):
                return self._timed_out()
            return _Answer(False, f"connection failed: {redact(str(exc.reason))}", True)
        except TimeoutError:
            return self._timed_out()
        except (OSError, HTTPException) as exc:  # reset, closed without an answer
            return _Answer(False, f"connection failed: {redact(repr(exc))}", True)
        # the status is in: the batch is acknowledged whatever happens to the body
        with response, contextlib.suppress(OSError, HTTPException):
            response.read()
        return _Answer(True)


class Deadline:
    """A watchdog over one request: when `seconds` have passed since it was entered, every
    socket attached to it is shut down (a read blocked on it returns at once) and `expired`
    is set; a socket attached after that is shut down as it comes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    """urllib's HTTP handler, its connections' sockets handed to `watch` once connected."""

    def __init__(self, watch: Any) -> None:
        super().__init__()
        self._watch = watch

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        watch = self._watch

        class Connection(http.client.HTTPConnection):
            def connect(self) -> None:
                super().connect()
                watch(self.sock)

        return self.do_open(Connection, req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    """urllib's HTTPS handler (the default TLS context), its sockets handed to `watch`."""

    def __init__(self, watch: Any) -> None:
        super().__init__()
        self._watch = watch
        self._tls = ssl.create_default_context()

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        watch = self._watch

        class Connection(http.client.HTTPSConnection):
            def connect(self) -> None:
                super().connect()
                watch(self.sock)

        return self.do_open(Connection, req, context=self._tls)


def idempotency_key(event_ids: list[str]) -> str:
    """The Idempotency-Key of a batch: a quoted digest of its event_ids, in order."""
    return f'"{digest(chr(10).join(event_ids))}"'


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header as seconds from now (delay-seconds or an HTTP date; a date in
    the past is 0); None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _refusal(status: int, headers: Message[str, str] | None, body: IO[bytes]) -> _Answer:
    try:
        text = body.read(EXCERPT_CHARS * 4).decode("utf-8", "replace")
    except (OSError, HTTPException):
        text = ""
    excerpt = " ".join(text.split())[:EXCERPT_CHARS]
    reason = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    if 300 <= status < 400:
        reason += " (redirects are not followed: give the final URL)"
    retryable = status in RETRYABLE_4XX or status >= 500
    after = retry_after_seconds(headers.get("Retry-After")) if headers is not None else None
    return _Answer(False, reason, retryable, after if retryable else None)

"""The HTTP target against a local server that fails some requests: retried batches arrive once
each, in order; a 4xx is refused at once naming the events; retries run out loudly; a
Retry-After is honoured (capped); credentials in the URL never show; and a replay stops at the
batch the server refuses, its checkpoint at the last acknowledged one."""

from __future__ import annotations

import base64
import json
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from archive_support import NOW, World, hours
from replay_support import batch_of, row

from eventlake import EventLake
from eventlake.events.canonical import loads_exact
from eventlake.replay import checkpoint
from eventlake.replay.backoff import Backoff
from eventlake.replay.http import HttpTarget, idempotency_key, retry_after_seconds
from eventlake.replay.resolve import target_for
from eventlake.replay.run import replay
from eventlake.replay.select import Selection
from eventlake.replay.shapes import shape_for
from eventlake.replay.targets import DeliveryError, TargetError


@dataclass
class Reply:
    """What the server answers one request: a status, headers, a body; `hang` answers only
    when the test ends (the client times out first)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang: bool = False


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    status: int
    """What the server answered (0: nothing, the request hung)."""


class Receiver:
    """A local HTTP server answering POSTs from a script (then 200 for the rest), recording
    every request and which were acknowledged (2xx)."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[Received] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    reply = receiver.script.pop(0) if receiver.script else Reply()
                    # a hung request is never answered in time: not acknowledged
                    status = 0 if reply.hang else reply.status
                    receiver.requests.append(Received(body, dict(self.headers), status))
                if reply.hang:
                    receiver.release.wait(10)
                    return  # the client is gone: close without an answer
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def acknowledged(self) -> list[list[dict[str, Any]]]:
        """The JSON arrays of the requests answered 2xx, in arrival order."""
        return [loads_exact(r.body) for r in self.requests if 200 <= r.status < 300]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def target(url: str, sleeps: list[float], *, attempts: int = 5, **kwargs: Any) -> HttpTarget:
    backoff = Backoff(attempts=attempts, base_s=0.5, cap_s=4.0, sleep=sleeps.append,
                      rng=random.Random(7))
    return HttpTarget(url, backoff=backoff, **kwargs)


def ids_of(arrays: list[list[dict[str, Any]]]) -> list[list[str]]:
    return [[event["event_id"] for event in array] for array in arrays]


def test_failed_requests_are_retried_and_each_batch_arrives_once_in_order(
        receiver: Receiver, sleeps: list[float]) -> None:
    # given: the first batch meets a 429 (Retry-After 3) and a 500; the second a hang (the
    # client times out), then a 503
    receiver.script = [Reply(429, {"Retry-After": "3"}), Reply(500, body=b"oops"), Reply(200),
                       Reply(hang=True), Reply(503), Reply(204, body=b"")]
    http = target(receiver.url, sleeps, timeout_s=0.3)
    first = batch_of([row("a", seconds=1), row("b", seconds=2)])
    second = batch_of([row("c", seconds=3, payload='{"n":1}')])

    # when
    http.start(None)
    assert http.send(first) is None
    assert http.send(second) is None
    http.close()

    # then: six requests, two acknowledged, in order, each batch once
    assert len(receiver.requests) == 6
    assert ids_of(receiver.acknowledged()) == [["a", "b"], ["c"]]
    assert receiver.acknowledged()[1] == second.events
    assert sleeps[0] == 3.0  # the Retry-After, not the jittered wait
    assert len(sleeps) == 4 and all(0 <= s <= 4.0 for s in sleeps[1:])
    # every try of a batch carries the same key; another batch another one
    keys = [r.headers["Idempotency-Key"] for r in receiver.requests]
    assert keys[:3] == [idempotency_key(["a", "b"])] * 3
    assert keys[3:] == [idempotency_key(["c"])] * 3 and keys[0] != keys[3]
    assert {r.headers["Content-Type"] for r in receiver.requests} == {"application/json"}


def test_a_4xx_is_refused_at_once_naming_the_events_the_status_and_the_body(
        receiver: Receiver, sleeps: list[float]) -> None:
    receiver.script = [Reply(400, body=b'{"error": "field `x` is required"}\n' + b"y" * 5000)]
    http = target(receiver.url, sleeps)

    with pytest.raises(DeliveryError) as raised:
        http.send(batch_of([row("a"), row("b", seconds=1)]))

    error = raised.value
    assert error.event_ids == ["a", "b"]
    assert error.target == receiver.url
    assert 'HTTP 400: {"error": "field `x` is required"}' in error.reason
    assert "not retried" in error.reason
    assert len(error.reason) < 400  # an excerpt of the body, not all of it
    assert len(receiver.requests) == 1 and sleeps == []


def test_retries_run_out_into_a_delivery_error_with_the_last_answer(
        receiver: Receiver, sleeps: list[float]) -> None:
    receiver.script = [Reply(502, body=b"bad gateway")] * 2 + [Reply(500, body=b"down")] * 2
    http = target(receiver.url, sleeps, attempts=4)

    with pytest.raises(DeliveryError, match=r"still failing after 4 tries: HTTP 500: down") as e:
        http.send(batch_of([row("a")]))

    assert e.value.event_ids == ["a"]
    assert len(receiver.requests) == 4 and len(sleeps) == 3
    assert receiver.acknowledged() == []


def test_a_long_retry_after_is_capped_and_an_http_date_is_understood(
        receiver: Receiver, sleeps: list[float]) -> None:
    receiver.script = [Reply(429, {"Retry-After": "86400"}),
                       Reply(503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})]
    http = target(receiver.url, sleeps, retry_after_cap_s=30)

    http.send(batch_of([row("a")]))

    assert sleeps == [30.0, 0.0]  # capped; a date in the past: no wait
    assert ids_of(receiver.acknowledged()) == [["a"]]
    now = datetime(2015, 10, 21, 7, 27, 50, tzinfo=UTC)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now) == 10.0
    assert retry_after_seconds("soon") is None


def test_an_unreachable_server_is_retried_then_named(sleeps: list[float]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http = target(f"http://127.0.0.1:{port}/x", sleeps, attempts=3)

    with pytest.raises(DeliveryError, match="still failing after 3 tries: connection failed"):
        http.send(batch_of([row("a")]))
    assert len(sleeps) == 2


def test_a_redirect_is_not_followed_nor_taken_for_an_acknowledgement(
        receiver: Receiver, sleeps: list[float]) -> None:
    receiver.script = [Reply(302, {"Location": receiver.url + "/elsewhere"})]

    with pytest.raises(DeliveryError, match=r"HTTP 302.*redirects are not followed"):
        target(receiver.url, sleeps).send(batch_of([row("a")]))
    assert len(receiver.requests) == 1


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(
        receiver: Receiver, sleeps: list[float]) -> None:
    url = receiver.url.replace("http://", "http://replayer:s%3Acret@")
    receiver.script = [Reply(401, body=b"who are you")]

    with pytest.raises(DeliveryError) as raised:
        target_for(url).send(batch_of([row("a")]))

    sent = receiver.requests[0].headers["Authorization"]
    assert base64.b64decode(sent.removeprefix("Basic ")) == b"replayer:s:cret"
    assert "cret" not in str(raised.value) and "***@127.0.0.1" in str(raised.value)


def test_the_body_is_a_json_array_of_the_shaped_events(receiver: Receiver,
                                                        sleeps: list[float]) -> None:
    batch = batch_of([row("a", payload='{"n":1e+30,"s":"é\\n"}', subject="user/1"),
                      row("b", seconds=1, source=None)])
    seed = target(receiver.url, sleeps)
    cloud = target(receiver.url, sleeps)
    cloud.shape = shape_for("cloudevents")

    seed.send(batch)
    cloud.send(batch)

    as_seed, as_cloud = receiver.acknowledged()
    assert as_seed == batch.events
    assert [e["id"] for e in as_cloud] == ["a", "b"]
    assert as_cloud[0]["data"] == batch.events[0]["event_payload"]


def test_only_http_urls_with_a_host_are_targets() -> None:
    with pytest.raises(TargetError, match="not an http"):
        HttpTarget("http:///nohost")
    with pytest.raises(TargetError, match="not an http"):
        HttpTarget("ftp://example.com/x")
    with pytest.raises(TargetError, match="timeout `0` must be > 0"):
        HttpTarget("https://example.com/x", timeout_s=0)


def test_a_replay_stops_at_the_refused_batch_with_its_checkpoint_at_the_last_sent_one(
        world: World, receiver: Receiver, tmp_path: Path) -> None:
    # given: five events; the server takes the first two batches, then refuses with a 422
    world.put_items([world.item(f"e{i}", NOW - hours(1), timestamp=NOW - hours(2)
                                + timedelta(seconds=i)) for i in range(5)])
    el = EventLake(world.settings, clients=world.clients)
    selection = Selection(NOW - timedelta(days=1), NOW)
    receiver.script = [Reply(200), Reply(201), Reply(422, body=b"schema mismatch")]
    ckpt = tmp_path / "ckpt.json"

    # when
    with pytest.raises(DeliveryError) as raised:
        replay(el, selection, receiver.url, batch_size=2, checkpoint=ckpt, now=NOW)

    # then
    assert ids_of(receiver.acknowledged()) == [["e0", "e1"], ["e2", "e3"]]
    assert raised.value.event_ids == ["e4"] and "HTTP 422: schema mismatch" in str(raised.value)
    assert raised.value.report.sent == 4 and raised.value.report.failed == 1
    saved = checkpoint.load(ckpt, selection)
    assert saved is not None and (saved.event_id, saved.count) == ("e3", 4)

    # and a re-run, the server healed, sends the rest once
    replay(el, selection, receiver.url, batch_size=2, checkpoint=ckpt, now=NOW)
    assert ids_of(receiver.acknowledged())[2:] == [["e4"]]
    assert json.loads(receiver.requests[-1].body)[0]["event_id"] == "e4"


class Trickler:
    """A server that takes each request then answers one space every `every_s` (never a status
    line), recording per connection how many bytes it got out before the client hung up."""

    def __init__(self, every_s: float, chunks: int) -> None:
        self.sent: list[int] = []
        self._ended = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/events"
        self._stop = threading.Event()
        self._every_s, self._chunks = every_s, chunks
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                sent = 0
                try:
                    while sent < self._chunks and not self._stop.wait(self._every_s):
                        conn.sendall(b" ")
                        sent += 1
                except OSError:  # the client shut the connection
                    pass
                with self._ended:
                    self.sent.append(sent)
                    self._ended.notify_all()

    def connections_ended(self, n: int) -> list[int]:
        """Bytes sent on each of the first `n` connections, once the server saw them end."""
        with self._ended:
            self._ended.wait_for(lambda: len(self.sent) >= n, timeout=10)
            return list(self.sent)

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()


def test_a_server_trickling_bytes_is_cut_at_the_deadline_and_retried_like_a_timeout(
        sleeps: list[float]) -> None:
    # each byte comes well within timeout_s, so only a deadline on the whole request ends a try
    server = Trickler(every_s=0.05, chunks=400)  # 20 s of trickle per request
    try:
        sink = target(server.url, sleeps, attempts=2, timeout_s=0.5)

        with pytest.raises(DeliveryError) as info:
            sink.send(batch_of([row("a")]))

        assert "still failing after 2 tries: no answer within 0.5 s" in str(info.value)
        assert len(sleeps) == 1  # retried once, like a timeout
        sent = server.connections_ended(2)  # the client hung up, long before the trickle ended
        assert len(sent) == 2 and all(n < 400 for n in sent)
    finally:
        server.stop()

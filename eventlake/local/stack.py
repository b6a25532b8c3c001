"""The embedded local stack: moto's server on a loopback port, standing in for AWS.

Every client reaches it through AWS_ENDPOINT_URL, exactly as it would reach LocalStack or AWS,
so the demo and the end-to-end tests run the production code path over real HTTP.
`StreamPoller` (eventlake/local/poller.py) stands in for Lambda's stream trigger (moto's needs
Docker);
`expire_ttl` stands in for DynamoDB's TTL (moto accepts the setting but never deletes).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from eventlake.events.times import as_utc
from eventlake.local.poller import StreamPoller as StreamPoller

if TYPE_CHECKING:
    from eventlake.aws import Clients

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass
class MotoServer:
    """A running moto server; `endpoint_url` is where clients should point."""

    endpoint_url: str
    _server: Any
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


_S3_WRITES = frozenset({"PUT", "POST", "DELETE"})


def _is_s3(environ: dict[str, Any]) -> bool:
    """Whether a SigV4-signed request is for S3 (its credential scope names the service)."""
    authorization: str = environ.get("HTTP_AUTHORIZATION") or ""
    return "/s3/aws4_request" in authorization


class AtomicS3Writes:
    """WSGI middleware: S3 writes are handled one at a time, as S3's own writes are atomic.

    moto checks a conditional PUT's `If-None-Match` / `If-Match` and then stores the object in
    a second step; two threads racing to create the same key can both pass the check. S3 decides
    such a race for exactly one writer, so the local stack serialises every S3 write (PUT, POST,
    DELETE), the conditional ones and the plain ones they race with. Reads stay concurrent.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") in _S3_WRITES and _is_s3(environ):
            with self.lock:
                # the body is produced inside the lock: moto answers with a finished list
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


_STREAM_LOCK = threading.Lock()


def serialise_stream_records() -> None:
    """Give every record of moto's DynamoDB streams its own, increasing sequence number, as
    DynamoDB does. moto numbers a record `len(shard.items)` before appending it, so two writes
    at once (put_many, the server's threads) can share one number; a reader resuming after it
    (AFTER_SEQUENCE_NUMBER, which moto turns into a list index) is then handed a record twice.
    Appending under one lock closes the race. Idempotent."""
    from moto.dynamodb.models.table import StreamShard

    add = StreamShard.add
    if getattr(add, "eventlake_serialised", False):
        return

    def serialised(self: Any, old: Any, new: Any) -> None:
        with _STREAM_LOCK:
            add(self, old, new)

    serialised.eventlake_serialised = True  # type: ignore[attr-defined]
    StreamShard.add = serialised  # type: ignore[method-assign]


def start_moto_server(host: str = "127.0.0.1", port: int = 0) -> MotoServer:
    """Start moto's server in a thread (a thread per request); port 0 picks a free port, a
    port in use is a ConfigError.

    The server is moto's (`moto.server`), with S3 writes made atomic (`AtomicS3Writes`) and
    stream records numbered one at a time (`serialise_stream_records`).
    """
    try:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server
    except ImportError as exc:  # pragma: no cover - depends on the install
        from eventlake.errors import ConfigError

        raise ConfigError("the local stack needs moto's server: "
                          "pip install 'eventlake[local]'") from exc
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    serialise_stream_records()
    app = AtomicS3Writes(DomainDispatcherApplication(create_backend_app))
    try:
        server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    except SystemExit as exc:  # werkzeug prints "Address already in use" and exits the process
        from eventlake.errors import ConfigError

        raise ConfigError(f"the local stack cannot listen on {host}:{port}: the port is in use "
                          "by another program; stop it, or use another port (0 picks a free "
                          "one)") from exc
    thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    thread.start()
    return MotoServer(f"http://{host}:{server.server_port}", server, thread)


@contextmanager
def local_stack(env: MutableMapping[str, str] | None = None,
                region: str = "us-east-1") -> Iterator[MotoServer]:
    """Run a moto server and point the environment (AWS_ENDPOINT_URL, fake credentials) at it.

    The previous values of the variables are restored, and the server stopped, on exit.
    """
    env = os.environ if env is None else env
    server = start_moto_server()
    changes = {"AWS_ENDPOINT_URL": server.endpoint_url, **FAKE_CREDENTIALS}
    if not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        changes["AWS_DEFAULT_REGION"] = region
    saved = {k: env.get(k) for k in changes}
    env.update(changes)
    try:
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        server.stop()


def expire_ttl(clients: Clients, table: str, *, now: datetime | None = None,
               attribute: str = "expires_at") -> list[str]:
    """Delete the items whose TTL has passed, as DynamoDB's TTL would; their event_ids.

    An item is expired when `attribute` is a number (epoch seconds) <= `now`; items with no
    such number never expire. Each delete is conditional on the item still being expired, so
    an item rewritten meanwhile with a later expiry survives. Differences from the real thing,
    which matter when testing the archive against it:

    - DynamoDB deletes lazily, typically within 48 hours after expiry (an expired item can
      still be read, queried and archived until then); this deletes at once, when called.
    - DynamoDB skips items whose expiry is more than five years in the past; this does not.
    - A real TTL delete's stream REMOVE record carries `userIdentity` {"type": "Service",
      "principalId": "dynamodb.amazonaws.com"}; moto's REMOVE for this delete carries none,
      so it looks like a user delete to the stream path (counted as `other_removals`).
    """
    ddb = clients.dynamodb
    now = as_utc(now or datetime.now(UTC))
    cutoff = {"N": f"{now.timestamp():.6f}"}
    keys = [k["AttributeName"] for k in ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
    names = {"#ttl": attribute, **{f"#k{i}": key for i, key in enumerate(keys)}}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "attribute_type(#ttl, :n) AND #ttl <= :now",
        "ProjectionExpression": ", ".join(f"#k{i}" for i in range(len(keys))),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {":n": {"S": "N"}, ":now": cutoff},
    }
    deleted: list[str] = []
    while True:
        page = ddb.scan(**kwargs)
        for key in page.get("Items", []):
            try:
                ddb.delete_item(TableName=table, Key=key,
                                ConditionExpression="attribute_type(#ttl, :n) AND #ttl <= :now",
                                ExpressionAttributeNames={"#ttl": attribute},
                                ExpressionAttributeValues={":n": {"S": "N"}, ":now": cutoff})
            except ddb.exceptions.ConditionalCheckFailedException:
                continue  # rewritten with a later expiry (or deleted) since the scan
            value = key.get("event_id") or key[keys[0]]
            deleted.append(str(next(iter(value.values()))))
        if "LastEvaluatedKey" not in page:
            return deleted
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

"""The embedded local stack: moto's server on a loopback port, standing in for AWS.

Every client reaches it through AWS_ENDPOINT_URL, exactly as it would reach LocalStack or AWS,
so the demo and the end-to-end tests run the production code path over real HTTP.
`StreamPoller` (eventlake/poller.py) stands in for Lambda's stream trigger (moto's needs Docker);
TTL emulation is still to come.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eventlake.poller import StreamPoller as StreamPoller

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

    def stop(self) -> None:
        self._server.stop()


def start_moto_server(host: str = "127.0.0.1", port: int = 0) -> MotoServer:
    """Start moto's threaded server; port 0 picks a free port."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - depends on the install
        from eventlake.errors import ConfigError

        raise ConfigError("the local stack needs moto's server: "
                          "pip install 'eventlake[local]'") from exc
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return MotoServer(f"http://{bound_host}:{bound_port}", server)


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

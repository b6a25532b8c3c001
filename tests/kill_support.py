"""Hard kills of real eventlake processes (tests/integration/test_hard_kill.py).

`run_child` starts this file as a fresh Python process that runs real entry points (the
`eventlake` CLI, the stream Lambda's handler) and, with `kill=`, dies with `os._exit(137)` at
the N-th call of one function: no `finally`, no `with` exit, no temp-file cleanup, as a SIGKILL
(a Lambda timeout, the OOM killer, a spot reclaim) leaves things. The patch lives in the child
only; the library has no crash hooks.

    when="before"    die instead of making the N-th call (its work not done)
    when="after"     make the N-th call, then die (its work done, nobody told)
    when="truncate"  at the N-th call whose first argument is a file, cut that file to half
                     its size, then die (a local writer killed while writing its temp file)
    when="torn"      make the N-th call, then cut the file it wrote to (its first argument, or
                     that argument's `path`) back to halfway between its size before the call
                     and after it, then die (killed while its write was half on disk: a torn
                     last line)

The checks read the lake as other readers would: `plain_ids` with pyarrow.dataset alone, no
eventlake code; `state_problems` parses every state object.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

KILLED = 137
HERE = Path(__file__).resolve()


# -- the parent's side -------------------------------------------------------------------------

def run_child(actions: Sequence[Sequence[str]], *, env: Mapping[str, str],
              kill: str | None = None, n: int = 1, when: str = "before",
              lease_ttl: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run `actions` in order in a fresh process (each `["cli", *argv]`, `["stream", path]`
    for the stream handler on the Lambda event in that JSON file, `["ingest", path]` for the
    ingest handler on the one in that file (its response printed), or `["put", path]` for
    `EventLake.put_many` of the events in that JSON file, with settings from the environment,
    one result a line printed)."""
    spec = {"actions": [list(a) for a in actions], "kill": kill, "n": n, "when": when,
            "lease_ttl": lease_ttl}
    root = str(HERE.parent.parent)
    child_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(
        [root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return subprocess.run([sys.executable, str(HERE), json.dumps(spec)], env=child_env,
                          capture_output=True, text=True, timeout=120, check=False)


def plain_ids(events_dir: str, filesystem: Any = None) -> list[tuple[str, str]]:
    """(event_id, content_hash) of every row of every `*.parquet` under `events_dir`, read by
    pyarrow.dataset as any engine would (it skips names starting with "." or "_"), sorted."""
    import pyarrow.dataset as ds

    dataset = ds.dataset(events_dir, filesystem=filesystem, format="parquet",
                         partitioning="hive", exclude_invalid_files=False)
    table = dataset.to_table(columns=["event_id", "content_hash"])
    return sorted(zip(table["event_id"].to_pylist(), table["content_hash"].to_pylist(),
                      strict=True))


def state_problems(objects: Mapping[str, bytes]) -> list[str]:
    """Which lake state objects (`_eventlake/` key -> bytes) are not whole JSON objects.
    Hidden names (temp files, local lock files) are not state."""
    problems = []
    for key, data in sorted(objects.items()):
        if key.rpartition("/")[2].startswith("."):
            continue
        try:
            if not isinstance(json.loads(data), dict):
                problems.append(f"{key}: not a JSON object")
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
    return problems


# -- the child's side --------------------------------------------------------------------------

def _resolve(target: str) -> tuple[Any, str]:
    """`module:Attr.attr` -> (the object holding the last attribute, its name)."""
    module, _, attrs = target.partition(":")
    owner: Any = importlib.import_module(module)
    *path, name = attrs.split(".")
    for attr in path:
        owner = getattr(owner, attr)
    return owner, name


def _arm(target: str, n: int, when: str) -> None:
    owner, name = _resolve(target)
    real: Callable[..., Any] = getattr(owner, name)
    calls = [0]
    lock = threading.Lock()

    def die() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(KILLED)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if when == "truncate" and not os.path.isfile(str(args[0])):
            return real(*args, **kwargs)  # a directory's fsync: not a file being written
        with lock:
            calls[0] += 1
            hit = calls[0] == n
        if hit and when == "torn":
            path = str(getattr(args[0], "path", args[0]))
            before = os.path.getsize(path)
            real(*args, **kwargs)
            after = os.path.getsize(path)
            assert after > before, f"torn: the call wrote nothing to {path}"
            with open(path, "r+b") as f:
                f.truncate((before + after) // 2)
            die()
        if hit and when == "before":
            die()
        if hit and when == "truncate":
            path = str(args[0])
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
            die()
        result = real(*args, **kwargs)
        if hit:
            die()
        return result

    setattr(owner, name, staticmethod(wrapper) if isinstance(
        owner.__dict__.get(name), staticmethod) else wrapper)


def _short_leases(ttl: float) -> None:
    """The sweep takes its lease for `ttl` seconds (a test waits it out instead of 15 min)."""
    import eventlake.archive.sweep as sweep

    real = sweep.acquire_lease  # type: ignore[attr-defined]

    def acquire(*args: Any, **kwargs: Any) -> Any:
        kwargs["ttl_seconds"] = ttl
        return real(*args, **kwargs)

    sweep.acquire_lease = acquire  # type: ignore[attr-defined]


def _act(action: list[str]) -> int:
    kind, *rest = action
    if kind == "cli":
        from eventlake.cli.main import main

        return main(rest)
    if kind == "stream":
        from eventlake.handlers import stream

        stream.reset()
        result = stream.handler(json.loads(Path(rest[0]).read_text()))
        print(json.dumps(result))
        return 1 if result["batchItemFailures"] else 0
    if kind == "ingest":
        from eventlake.handlers import ingest

        ingest.reset()
        print(json.dumps(ingest.handler(json.loads(Path(rest[0]).read_text()))))
        return 0
    if kind == "put":
        from eventlake.api import EventLake
        from eventlake.config import Settings

        lake = EventLake(Settings.from_env())
        try:
            for result in lake.put_many(json.loads(Path(rest[0]).read_text())):
                print(json.dumps(result.to_dict()))
        finally:
            lake.close()
        return 0
    raise ValueError(f"unknown action {kind!r}")


def _main(spec: dict[str, Any]) -> int:
    if spec.get("lease_ttl"):
        _short_leases(float(spec["lease_ttl"]))
    if spec.get("kill"):
        _arm(spec["kill"], int(spec["n"]), spec["when"])
    for action in spec["actions"]:
        code = _act(action)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    raise SystemExit(_main(json.loads(sys.argv[1])))

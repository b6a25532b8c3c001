"""The parent's side of the peer benchmarks: the peers' venv worker, the moto server process,
interleaved rounds with per-candidate set-up, answer normalisation, and the markdown table."""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("worker.py")
PEERS_PYTHON_VARIABLE = "EVENTLAKE_PEERS_PYTHON"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def peers_python() -> str:
    """The peers' interpreter: $EVENTLAKE_PEERS_PYTHON, else `.venv-peers/bin/python`."""
    path = os.environ.get(PEERS_PYTHON_VARIABLE) or str(Path(".venv-peers/bin/python").absolute())
    if not Path(path).exists():
        raise SystemExit(f"the peers' venv is missing (`{path}`): run `make venv-peers`, or set "
                         f"{PEERS_PYTHON_VARIABLE} to a Python with awswrangler, "
                         "aws-lambda-powertools, polars and pandas")
    return path


class PeerError(RuntimeError):
    """A peer task failed in the worker; the message carries its traceback."""


class Peer:
    """A worker process in the peers' venv; `call` runs one task and returns (seconds, result),
    the seconds measured by the worker around the task alone."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([python, str(WORKER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def call(self, task: str, **args: Any) -> tuple[float, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"task": task, "args": args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise PeerError(f"peer worker exited (code {self.proc.wait()}) during `{task}`")
        answer = json.loads(line)
        if "error" in answer:
            raise PeerError(f"peer task `{task}` failed:\n{answer['error']}")
        return float(answer["seconds"]), answer["result"]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@contextmanager
def moto_server() -> Iterator[str]:
    """eventlake's local stack (moto + atomic S3 writes) in a process of its own, so it does
    not share a GIL with whoever is timed; yields its endpoint URL."""
    code = ("from eventlake.local.stack import start_moto_server; import threading; "
            "s = start_moto_server(); print(s.endpoint_url, flush=True); threading.Event().wait()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"moto server did not start (exit {proc.poll()})")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@dataclass
class Timings:
    """Seconds per candidate, one per round, in the order the rounds ran."""

    rounds: int
    times: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def spread(self, name: str) -> str:
        """min-max of the rounds, as a percentage around the median."""
        values, mid = self.times[name], self.median(name)
        return f"-{100 * (mid - min(values)) / mid:.0f}/+{100 * (max(values) - mid) / mid:.0f} %"


Candidate = Callable[[], float]
"""Runs once (its own set-up untimed) and returns the seconds its timed part took."""


def timed(run: Callable[[], Any]) -> float:
    gc.collect()
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def interleave(candidates: dict[str, Candidate], rounds: int) -> Timings:
    """Each candidate once per round, alternating, so machine noise hits all alike."""
    out = Timings(rounds)
    for _ in range(rounds):
        for name, run in candidates.items():
            out.add(name, run())
    return out


def normalise(rows: Any) -> list[tuple[Any, ...]]:
    """Rows as sorted tuples of comparable values: dates as ISO text, floats to 9 digits."""
    def value(v: Any) -> Any:
        if isinstance(v, float):
            return float(f"{v:.9g}")
        if hasattr(v, "isoformat"):
            return v.isoformat()[:10]
        return v
    return sorted(tuple(value(v) for v in row) for row in rows)


def machine(peer_versions: dict[str, str]) -> str:
    """One markdown line: CPU model, cores, RAM, Python, library versions."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                      .splitlines() if line.startswith("MemTotal"))
        ram = f"{mem_kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, StopIteration):
        ram = "RAM unknown"
    ours = ", ".join(f"{n} {version(n)}" for n in ("pyarrow", "duckdb", "boto3", "moto"))
    theirs = ", ".join(f"{n} {v}" for n, v in peer_versions.items() if n != "python")
    return (f"Machine: {cpu}, {os.cpu_count()} cores, {ram}, Linux {platform.release()}; "
            f"Python {platform.python_version()} (eventlake: {ours}); peers' venv: Python "
            f"{peer_versions.get('python', '?')}, {theirs}.")


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"

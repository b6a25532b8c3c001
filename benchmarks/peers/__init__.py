"""`python -m benchmarks peers` (`make bench-peers`): eventlake against what a user would pick
instead, one command, every pair's answers checked equal before any time counts.

Modules: `data` (stream events; lakes built through the stream handler and compaction, cached),
`harness` (the peers' worker process, the moto server process, interleaved rounds, markdown),
`worker` (runs in `.venv-peers`: Powertools, pandas, Polars, awswrangler; never imports
eventlake), and one module per comparison: `stream`, `query`, `cli`, `export`.

The peers run in their own venv (awswrangler 3.17 pins pyarrow below eventlake's) as a worker
process that times only its own work; eventlake's rounds run here, interleaved with theirs.
Sizes (flags, or `EVENTLAKE_BENCH_PEERS_*`) keep the whole command under ten minutes on two
cores. The output is markdown that README takes as is.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from benchmarks.peers import cli, export, query, stream
from benchmarks.peers.data import build_lakes, week
from benchmarks.peers.harness import FAKE_CREDENTIALS, Peer, machine, moto_server, peers_python


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    env = os.environ.get
    p.add_argument("--events", type=int, default=int(env("EVENTLAKE_BENCH_PEERS_EVENTS",
                                                         1_000_000)),
                   help="events in the local lakes (default 1,000,000)")
    p.add_argument("--days", type=int, default=60, help="days the local lakes span (60)")
    p.add_argument("--s3-events", type=int, default=int(env("EVENTLAKE_BENCH_PEERS_S3_EVENTS",
                                                            100_000)),
                   help="events in the S3 lakes (default 100,000)")
    p.add_argument("--s3-days", type=int, default=14, help="days the S3 lakes span (14)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of the local queries (5)")
    p.add_argument("--s3-rounds", type=int, default=3, help="rounds on moto S3 (3)")
    p.add_argument("--only", choices=["stream", "query", "cli", "export"], action="append",
                   help="run only these comparisons (repeatable)")
    return p.parse_args(argv)


def run(argv: list[str] | None = None) -> dict[str, float]:
    args = parse(argv if argv is not None else [])
    only = set(args.only or ["stream", "query", "cli", "export"])
    began = time.perf_counter()
    results: dict[str, float] = {}
    sections: list[str] = []
    local = build_lakes("local", args.events, args.days) if only & {"query", "cli"} else None
    remote = build_lakes("s3", args.s3_events, args.s3_days) if only & {"query",
                                                                          "export"} else None
    python = peers_python()
    with moto_server() as endpoint:
        saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", *FAKE_CREDENTIALS)}
        os.environ.update(FAKE_CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
        peer = Peer(python, dict(os.environ))
        try:
            versions = peer.call("versions")[1]
            if "stream" in only:
                text, ratios = stream.run(peer)
                sections.append(text)
                results.update(ratios)
            if "query" in only:
                assert local is not None and remote is not None
                rows, ratios = query.run_lakes(
                    peer, {"compacted": str(local / "compacted"),
                           "stream-fragmented": str(local / "stream")},
                    s3=False, rounds=args.rounds, start=week(args.days)[0],
                    end=week(args.days)[1])
                results.update(ratios)
                s3_lakes = {name: query.upload(remote / folder, "bench-peers", folder)
                            for name, folder in (("compacted", "compacted"),
                                                 ("stream-fragmented", "stream"))}
                s3_rows, ratios = query.run_lakes(peer, s3_lakes, s3=True, rounds=args.s3_rounds,
                                                  start=week(args.s3_days)[0],
                                                  end=week(args.s3_days)[1])
                results.update(ratios)
                sections.append(query.header(
                    args.rounds, args.s3_rounds, f"{args.events:,} events over {args.days} days",
                    f"{args.s3_events:,} events over {args.s3_days} days")
                    + query.table(rows + s3_rows))
            if "cli" in only:
                assert local is not None
                text, ratios = cli.run(str(local / "compacted"), week(args.days)[0])
                sections.append(text)
                results.update(ratios)
            if "export" in only:
                assert remote is not None
                if "query" not in only:
                    query.upload(remote / "compacted", "bench-peers", "compacted")
                text, ratios = export.run(peer, "s3://bench-peers/compacted", "bench-peers",
                                          *week(args.s3_days), rounds=args.s3_rounds)
                sections.append(text)
                results.update(ratios)
        finally:
            peer.close()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    print(f"\n## eventlake and its peers ({time.perf_counter() - began:.0f} s; measured by "
          "`python -m benchmarks peers`)\n")
    print(machine(versions) + "\n")
    print("\n\n".join(sections))
    return results


if __name__ == "__main__":
    run(sys.argv[1:])

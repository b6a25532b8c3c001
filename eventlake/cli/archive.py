"""The commands that move events into the lake and keep it: `eventlake archive` (the sweep),
`backfill`, `compact` and `reconcile`, each printing its report."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from eventlake.cli.common import open_lake

if TYPE_CHECKING:
    from eventlake.archive.report import SweepReport


def cmd_archive(args: argparse.Namespace) -> int:
    from eventlake.archive.ttlguard import TtlGuardError

    lake = open_lake(args)
    try:
        report = lake.archive(settle_seconds=args.settle_seconds)
    except TtlGuardError as exc:
        if exc.report is not None:
            _print_sweep(exc.report, args.json)
        print(f"eventlake: TTL guard: {exc}", file=sys.stderr)
        return 3
    _print_sweep(report, args.json)
    return _print_problems(report.problems())


def _print_sweep(report: SweepReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
        return
    c = report.counts
    print(f"window      {report.since.isoformat()} .. {report.until.isoformat()}")
    print(f"events      {c.read} read, {c.archived} archived, {c.already} already in the lake, "
          f"{c.quarantined} quarantined, {c.conflicts} id(s) reused (quarantined), "
          f"{len(c.files)} file(s) written")
    print(f"watermark   {report.watermark_after.isoformat()}")
    if report.overdue_until is not None:
        print(f"overdue     events ingested {report.since.isoformat()} .. "
              f"{report.overdue_until.isoformat()} passed their TTL expiry before any sweep "
              "read them (see below)")
    if report.expiry is not None and report.beyond_skew:
        ids = ", ".join(report.expiry.beyond_skew_ids[:5])
        print(f"expiry      {report.beyond_skew} event(s) found only by the expiry check, "
              f"stamped beyond the clock skew behind the watermark (e.g. {ids}): check "
              "producer clocks (NTP)")
    margin = report.ttl
    print("ttl margin  " + ("n/a (nothing unarchived)" if margin.hours_left is None else
                            f"{margin.hours_left:.1f} h for {margin.unarchived} unarchived, "
                            f"{margin.at_risk} at risk"))


def cmd_backfill(args: argparse.Namespace) -> int:
    report = open_lake(args).backfill(segments=args.segments)
    c = report.counts
    print(f"scanned {report.scanned} items in {report.segments} segments: {c.archived} archived, "
          f"{c.already} already in the lake, {c.quarantined} quarantined "
          f"({report.duration_s:.1f} s)")
    return _print_problems([p for p in [c.problem()] if p])


def _print_problems(problems: list[str]) -> int:
    """Say what an operator must look at although everything was archived (reused ids,
    events beyond the clock skew); exit 1 when there is anything."""
    for problem in problems:
        print(f"eventlake: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cmd_compact(args: argparse.Namespace) -> int:
    report = open_lake(args).compact(start=args.start, end=args.end, min_files=args.min_files,
                                 target_bytes=args.target_mb * 1024 * 1024)
    for part in report.partitions:
        print(f"  dt={part.dt}: {part.inputs} files -> {len(part.outputs)}, "
              f"{part.duplicates_dropped} duplicates dropped")
    print(f"compacted {len(report.partitions)} partition(s), skipped {report.skipped}: "
          f"{report.files_in} files -> {report.files_out} ({report.duration_s:.1f} s)")
    if report.quarantined:
        print(f"quarantined {report.quarantined} copies of reused event_ids "
              f"({', '.join(report.conflicts[:5])})", file=sys.stderr)
    for failed in report.failed:
        print(f"  dt={failed['dt']} not compacted: {failed['reason']}", file=sys.stderr)
    return 0 if report.ok else 1


def cmd_reconcile(args: argparse.Namespace) -> int:
    end = args.end or datetime.now(UTC).date()
    start = args.start or end - timedelta(days=1)
    report = open_lake(args).reconcile(start=start, end=end, repair=args.repair)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(f"{'day':<12}{'hot':>8}{'cold':>8}{'missing':>9}{'different':>11}{'repaired':>10}")
        for d in report.days:
            print(f"{d.day!s:<12}{d.hot:>8}{d.cold:>8}{d.missing:>9}{d.different:>11}"
                  f"{d.repaired:>10}")
        print(f"lost {report.lost}, different {report.different}, repaired {report.repaired}"
              f" (watermark {report.watermark.isoformat() if report.watermark else 'none'})")
        for event_id in report.missing_ids[:20]:
            print(f"  missing   {event_id}", file=sys.stderr)
        for event_id in report.different_ids[:20]:
            print(f"  different {event_id}", file=sys.stderr)
    return 0 if report.ok else 1


__all__ = ["cmd_archive", "cmd_backfill", "cmd_compact", "cmd_reconcile"]

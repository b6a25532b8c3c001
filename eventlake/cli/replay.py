"""`eventlake replay`: parse the selection, the target and the pace, call `EventLake.replay`,
and say how it went: a progress line on a terminal, then a summary line (on stderr when the
events themselves go to stdout). A delivery failure prints the summary, the error and how to
resume, and exits 1; usage and configuration errors exit 2, as everywhere in the CLI.

The progress line is plain text rewritten with `\\r` (rich is installed with Prefect, but not a
dependency of eventlake's base install, and a line needs no library). It shows only when stderr
is a terminal: its total then comes from counting the selection first (one aggregate query a
day, a small part of a replay's cost); piped or in a job, nothing is counted and only the
summary prints.

Once sending began, any failure prints the summary and how to resume before the error (a
DeliveryError exits 1, the others 2; Ctrl-C 130). A reader that goes away
(`eventlake replay ... | head -1`) ends the replay quietly with exit code 141, what a shell
reports for a writer killed by SIGPIPE (`yes | head -1`): the replay did not finish, so not 0
(`set -o pipefail` sees it), yet nothing went wrong that needs a message.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from eventlake.cli.common import add_selection_arguments, error, moment, open_lake, selection_of

if TYPE_CHECKING:
    from eventlake.replay.run import ReplayReport

DELIVERY_FAILED = 1
"""Exit code of a replay a target stopped (2 stays for usage and configuration errors)."""
READER_GONE = 141
"""Exit code when standard output's reader went away (128 + SIGPIPE, as a shell reports it)."""


SHAPES = ("seed", "cloudevents", "eventbridge", "stream")
"""`--shape`'s choices: replay.shapes.SHAPES's names, written here so that building the parser
imports no replay module (pyarrow and boto3 come with them); a test keeps the two equal."""
KINDS = ("stdout, jsonl:PATH (a local path or s3://), sqs:QUEUE, eventbridge:BUS, "
         "kinesis:STREAM, lambda:FUNCTION, http(s)://URL")
"""`--target`'s help: replay.resolve.KINDS, for the same reason and under the same test."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_selection_arguments(p)
    p.add_argument("--target", default="stdout", metavar="TARGET",
                   help=f"where the events go: {KINDS}; default stdout (JSON lines). E.g. "
                        "jsonl:out.jsonl, sqs:orders.fifo, kinesis:clicks, "
                        "https://example.com/hook")
    p.add_argument("--shape", default="seed", choices=list(SHAPES),
                   help="what each event looks like when sent (default seed: the event as "
                        "stored, payload as an object)")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="record the position after each acknowledged batch here; re-running "
                        "the same command resumes right after it")
    p.add_argument("--batch-size", type=positive_int, default=500, metavar="N",
                   help="events per batch (default 500): a checkpoint is written after each "
                        "acknowledged batch, so this is how much a resumed run may resend. "
                        "Targets split a batch into calls of what they take (SQS and "
                        "EventBridge 10 entries, Kinesis 500)")
    p.add_argument("--rate", type=rate, metavar="N",
                   help="send at most N events per second on average (a token bucket: one "
                        "batch at a time); default: as fast as the target acknowledges")
    p.add_argument("--dry-run", action="store_true",
                   help="count what would be sent (first and last timestamp, per type); send "
                        "nothing")
    p.epilog = ("examples:\n"
                "  eventlake replay --from 2026-01-01 --to 2026-01-02 --target jsonl:day.jsonl "
                "--checkpoint day.ckpt\n"
                "  eventlake replay --from 2026-01-01T00:00:00Z --to 2026-02-01 --type "
                "order.placed --dry-run\n"
                "  eventlake replay --from 2026-01-01 --to 2026-01-08 --target sqs:orders.fifo "
                "--rate 200 --checkpoint week.ckpt")
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def run(args: argparse.Namespace) -> int:
    """`eventlake replay`; returns the exit code."""
    from eventlake.replay.targets import DeliveryError

    selection = selection_of(args)
    out = sys.stderr if args.target == "stdout" and not args.dry_run else sys.stdout
    bar = ProgressLine(sys.stderr) if _wants_bar(args) else None
    try:
        try:
            report = open_lake(args).replay(
                selection, args.target, batch_size=args.batch_size, checkpoint=args.checkpoint,
                dry_run=args.dry_run, shape=args.shape, rate=args.rate, progress=bar,
                count_first=bar is not None)
        finally:
            if bar is not None:
                bar.clear()
    except BrokenPipeError:
        if args.target != "stdout":
            raise
        return _reader_gone()
    except DeliveryError as exc:
        if exc.report is not None:
            print(exc.report.summary(), file=out)
        error(str(exc))
        print(f"eventlake: {resume_hint(args.checkpoint, exc.report)}", file=sys.stderr)
        return DELIVERY_FAILED
    except BaseException as exc:
        stopped = getattr(exc, "report", None)
        if stopped is not None:  # sending had begun: say how far it got, then the error
            print(stopped.summary(), file=out)
            print(f"eventlake: {resume_hint(args.checkpoint, stopped)}", file=sys.stderr)
        raise
    try:
        if args.dry_run:
            print(f"first {report.first_timestamp or '-'}  last {report.last_timestamp or '-'}",
                  file=out)
            print("per type " + json.dumps(dict(sorted(report.per_type.items()))), file=out)
        print(report.summary(), file=out)
        out.flush()
    except BrokenPipeError:
        return _reader_gone()
    return 0


def _reader_gone() -> int:
    """Standard output's reader went away: point stdout at /dev/null (so the interpreter's
    final flush cannot fail again) and exit quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (a test's captured stream)
        pass
    finally:
        os.close(devnull)
    return READER_GONE


def resume_hint(checkpoint: str | None, report: ReplayReport | None) -> str:
    """What re-running does after a replay stopped."""
    if checkpoint is None:
        return ("no --checkpoint was given: re-running starts again from --from (give "
                "--checkpoint PATH to make a replay resumable)")
    done = "" if report is None else f" ({report.resumed_after + report.sent} events)"
    return (f"the checkpoint `{checkpoint}` holds the last acknowledged batch{done}: re-run "
            "the same command with the same --checkpoint to resume right after it")


def _wants_bar(args: argparse.Namespace) -> bool:
    """A progress line on stderr when it is a terminal, and not mixed with events shown on the
    same terminal."""
    if args.dry_run or not _isatty(sys.stderr):
        return False
    return not (args.target == "stdout" and _isatty(sys.stdout))


def _isatty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ProgressLine:
    """One line on a terminal, rewritten (at most every `interval` seconds) after each batch:
    events done of the total, events/s, ETA."""

    WIDTH = 24

    def __init__(self, stream: IO[str], *, clock: Callable[[], float] = time.monotonic,
                 interval: float = 0.1) -> None:
        self.stream = stream
        self.clock = clock
        self.interval = interval
        self._shown_at: float | None = None
        self._width = 0

    def __call__(self, report: ReplayReport) -> None:
        now = self.clock()
        finished = report.total is not None and report.sent >= report.total
        if self._shown_at is not None and now - self._shown_at < self.interval and not finished:
            return
        self._shown_at = now
        text = render(report, self.WIDTH)
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        """Erase the line (the summary prints in its place)."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def render(report: ReplayReport, width: int = 24) -> str:
    """`[#####-----]  45%  450,000/1,000,000 events  51,234 events/s  ETA 0:00:11` (without a
    total: events and events/s)."""
    rate = report.events_per_second
    speed = f"{rate:,.0f} events/s"
    if not report.total:
        return f"replay: {report.sent:,} events  {speed}"
    share = min(1.0, report.sent / report.total)
    filled = math.floor(share * width)
    left = report.total - report.sent
    eta = _clock_time(left / rate) if rate > 0 else "?"
    return (f"[{'#' * filled}{'-' * (width - filled)}] {share:4.0%}  "
            f"{report.sent:,}/{report.total:,} events  {speed}  ETA {eta}")


def _clock_time(seconds: float) -> str:
    total = math.ceil(seconds)
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"


def positive_int(text: str) -> int:
    """An integer of at least 1 (a batch size)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"`{text}` must be at least 1")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (a rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"`{text}` must be a number above 0")
    return value


def rate(text: str) -> float:
    """A rate in events/s: a finite number, at least the slowest rate taken (rate.MIN_RATE)."""
    from eventlake.replay.rate import MIN_RATE

    value = positive_float(text)
    if value < MIN_RATE:
        raise argparse.ArgumentTypeError(f"`{text}` is below the slowest rate taken, "
                                          f"{MIN_RATE} events per second")
    return value


__all__ = ["ProgressLine", "add_arguments", "moment", "positive_float", "positive_int",
           "rate", "render", "resume_hint", "run"]

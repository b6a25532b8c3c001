"""`eventlake export`: parse the selection, the format and the redaction rules, call
`EventLake.export`, print one summary line (events, bytes, file(s), duration). Usage and
configuration errors, and a failed write (which leaves nothing behind), exit 2 as everywhere
in the CLI."""

from __future__ import annotations

import argparse

from eventlake.cli.common import add_selection_arguments, open_lake, selection_of

FORMATS = ("parquet", "csv", "jsonl", "duckdb")
"""`--format`'s choices: export.run.FORMATS, written here so that building the parser imports
no DuckDB; a test keeps the two equal."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_selection_arguments(p)
    p.add_argument("--format", default="parquet", choices=list(FORMATS),
                   help="parquet (default), csv, jsonl (payload as an object), or duckdb (a "
                        "database file with an `events` table and the sql/ queries as views, "
                        "readable by DuckDB 1.1 and later)")
    p.add_argument("--out", required=True, metavar="PATH",
                   help="the file (or, partitioned, the folder) to write; written under a "
                        "temporary name, then renamed")
    p.add_argument("--partition-by", choices=["dt", "event_type"],
                   help="parquet only: Hive folders (dt=YYYY-MM-DD/ or event_type=.../)")
    p.add_argument("--redact", action="append", default=[], metavar="PATH",
                   help="drop this payload field, a dotted path such as customer.email "
                        "(repeatable)")
    p.add_argument("--hash", dest="hash_", action="append", default=[], metavar="PATH",
                   help="replace this payload field by sha256(salt || value) in hex, the salt "
                        "from $EVENTLAKE_EXPORT_SALT (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.epilog = ("examples:\n"
                "  eventlake export --from 2026-01-01 --to 2026-01-02 --out day.parquet\n"
                "  eventlake export --from 2026-01-01 --to 2026-02-01 --format parquet "
                "--partition-by dt --out january/\n"
                "  EVENTLAKE_EXPORT_SALT=... eventlake export --from 2026-01-01 --to 2026-02-01 "
                "--format duckdb --out bi.duckdb --redact customer.phone --hash customer.email")
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def run(args: argparse.Namespace) -> int:
    """`eventlake export`; returns the exit code."""
    report = open_lake(args).export(
        selection_of(args), args.out, format=args.format, partition_by=args.partition_by,
        redact=args.redact, hash_=args.hash_, overwrite=args.overwrite)
    print(report.summary())
    return 0

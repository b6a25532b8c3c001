"""`eventlake export`: parse the selection, the format, the named query and its parameters, and
the redaction rules, call `EventLake.export`, print one summary line (rows, bytes, file(s),
duration). Usage and configuration errors, and a failed write (which leaves nothing behind),
exit 2 as everywhere in the CLI."""

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
                        "database file with an `events` table, the sql/ queries and one typed "
                        "view ev_<type> per event type as views, readable by DuckDB 1.1 and "
                        "later)")
    p.add_argument("--out", required=True, metavar="PATH",
                   help="the file (or, partitioned, the folder) to write, a local path or "
                        "s3://bucket/key; written under a temporary name, then renamed (on S3: "
                        "one object, or a folder's objects then `_SUCCESS` last: readers wait "
                        "for `_SUCCESS`)")
    p.add_argument("--partition-by", choices=["dt", "event_type"],
                   help="parquet only: Hive folders (dt=YYYY-MM-DD/ or event_type=.../)")
    p.add_argument("--query", metavar="NAME",
                   help="write the result of this query of sql/ (run over the selected "
                        "events, redaction applied) instead of the events; in a duckdb file, "
                        "a table named after it (`eventlake sql --list` names the queries)")
    p.add_argument("--param", dest="params", action="append", default=[], type=parameter,
                   metavar="KEY=VALUE", help="a parameter of --query (repeatable), e.g. "
                                             "--param from_type=cart.created")
    p.add_argument("--redact", action="append", default=[], metavar="PATH",
                   help="drop this payload field, a dotted path such as customer.email "
                        "(repeatable); with any --redact/--hash, DuckDB re-writes the "
                        "payloads' JSON: integers stay exact, a number with a fraction or an "
                        "exponent becomes the nearest double (1.50 -> 1.5; "
                        "0.10000000000000000555 -> 0.1)")
    p.add_argument("--hash", dest="hash_", action="append", default=[], metavar="PATH",
                   help="replace this payload field by sha256(salt || value) in hex, the salt "
                        "from $EVENTLAKE_EXPORT_SALT (repeatable)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it exists (on S3, old objects the new export does "
                        "not have are deleted)")
    p.epilog = ("examples:\n"
                "  eventlake export --from 2026-01-01 --to 2026-01-02 --out day.parquet\n"
                "  eventlake export --from 2026-01-01 --to 2026-02-01 --format parquet "
                "--partition-by dt --out s3://bucket/exports/january\n"
                "  eventlake export --from 2026-01-01 --to 2026-02-01 --query funnel "
                "--param from_type=cart.created --param to_type=order.placed "
                "--param window_hours=24 --format csv --out funnel.csv\n"
                "  EVENTLAKE_EXPORT_SALT=... eventlake export --from 2026-01-01 --to 2026-02-01 "
                "--format duckdb --out bi.duckdb --redact customer.phone --hash customer.email")
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def parameter(text: str) -> tuple[str, str]:
    """`key=value` (the value may hold `=`; it is passed as text: the queries cast it)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"`{text}` is not KEY=VALUE")
    return key.strip(), value


def run(args: argparse.Namespace) -> int:
    """`eventlake export`; returns the exit code."""
    report = open_lake(args).export(
        selection_of(args), args.out, format=args.format, partition_by=args.partition_by,
        query=args.query, params=dict(args.params), redact=args.redact, hash_=args.hash_,
        overwrite=args.overwrite)
    print(report.summary())
    return 0

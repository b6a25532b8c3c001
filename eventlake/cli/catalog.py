"""`eventlake catalog`: the lake in other engines' catalogs. `catalog ddl --dialect D` prints the
DDL (eventlake.catalog.ddl); `catalog glue --database NAME` registers the Athena catalog in the
AWS Glue Data Catalog (eventlake.catalog.glue) and prints what it did. Both infer the typed
views from the lake's Parquet files only: the engines read S3, never DynamoDB."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DIALECTS = ("athena", "spark", "trino")
"""`--dialect`'s choices: catalog.model.DIALECTS, written here so that building the parser
imports nothing heavy; a test keeps the two equal."""


def add_arguments(p: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser]
                  ) -> None:
    """The `catalog` subcommands (`eventlake.cli.main` registers `catalog`); `parents` carry
    the options every command takes."""
    p.set_defaults(catalog_parser=p)
    sub = p.add_subparsers(dest="catalog_command", metavar="SUBCOMMAND")

    ddl = sub.add_parser("ddl", parents=list(parents), help="print the DDL for an engine",
                         description="Print the DDL of the lake for Athena, Spark or Trino: "
                                     "the table events_raw over events/, the view events (one "
                                     "row per event_id) and a typed view ev_<type> per type.")
    ddl.add_argument("--dialect", required=True, choices=list(DIALECTS))
    ddl.add_argument("--database", metavar="NAME",
                     help="qualify names with this database/schema (athena, trino; trino "
                          "defaults to `default`; spark's views are temporary: none)")
    _location(ddl)
    ddl.set_defaults(func=run_ddl)

    glue = sub.add_parser("glue", parents=list(parents),
                          help="register the lake in the AWS Glue Data Catalog (idempotent)",
                          description="Create or update, in the Glue Data Catalog, the table "
                                      "events_raw (partition projection on dt), the view "
                                      "events and the typed views: Athena, Redshift Spectrum, "
                                      "EMR and QuickSight then read the lake in place.")
    glue.add_argument("--database", required=True, metavar="NAME", help="the Glue database")
    _location(glue)
    glue.set_defaults(func=run_glue)


def _location(p: argparse.ArgumentParser) -> None:
    p.add_argument("--location", metavar="URI",
                   help="where the engine finds the lake's events/ folder (default: from the "
                        "lake URI: s3:// for athena/trino, s3a:// for spark, file:// for a "
                        "local lake, which athena cannot read)")


def run(args: argparse.Namespace) -> int:
    """`eventlake catalog` without a subcommand: the usage, exit 2."""
    args.catalog_parser.print_help(sys.stderr)
    return 2


def run_ddl(args: argparse.Namespace) -> int:
    """`eventlake catalog ddl`; returns the exit code."""
    from eventlake.catalog.ddl import ddl_text, plan_for
    from eventlake.cli.common import open_lake

    catalog = plan_for(open_lake(args), args.dialect, location=args.location,
                       database=args.database)
    sys.stdout.write(ddl_text(catalog))
    return 0


def run_glue(args: argparse.Namespace) -> int:
    """`eventlake catalog glue`; returns the exit code."""
    from eventlake.catalog.ddl import plan_for
    from eventlake.catalog.glue import register
    from eventlake.cli.common import open_lake

    lake = open_lake(args)
    catalog = plan_for(lake, "athena", location=args.location, database=args.database)
    report = register(lake.clients.glue, catalog, database=args.database)
    print(report.summary())
    return 0


__all__ = ["DIALECTS", "add_arguments", "run", "run_ddl", "run_glue"]

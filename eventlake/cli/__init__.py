"""The `eventlake` command (entry point `eventlake.cli.main:main`): argument parsing (`main`)
and the commands by group: `status` (init, status; the status rendering shared with the
demo), `put`, `archive` (archive, backfill, compact, reconcile), `sql`, `demo`; `common` has
what they share."""

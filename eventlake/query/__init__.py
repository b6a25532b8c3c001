"""Reading the lake and the hot tier as one: DuckDB views and their snapshot (`views`, over any
`Tiers`: an `EventLake` is one; on S3 through pyarrow datasets whose fragments keep their
footers, `fragments`), running SQL for `eventlake sql` and its prompt (`session`,
`prompt`; the command itself is `eventlake.cli.sql`), output formats (`format`, `values`), the
one aligned text table (`table`) and the named queries of `sql/`."""

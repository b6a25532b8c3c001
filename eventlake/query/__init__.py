"""Reading the lake and the hot tier as one: DuckDB views and their snapshot (`views`), the
SQL session shared by `eventlake sql` and its prompt (`session`, `prompt`), output formats
(`format`, `values`) and the named queries of `sql/`."""

"""The lake in other engines' catalogs: DDL for Athena, Spark and Trino (`ddl`), and the AWS Glue
Data Catalog (`glue`), built from one dialect-neutral description of the lake (`model`)."""

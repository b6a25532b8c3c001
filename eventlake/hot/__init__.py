"""The hot tier: the DynamoDB table (`store`: provisioning, conditional puts, the
ingestion-time index, TTL), raw events validated and stored (`put`), the results of a put and
the caller's deadline (`results`), and the settings recorded on the table (`tablesettings`)."""

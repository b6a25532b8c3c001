"""The hot tier: the DynamoDB table (`store`: puts, the ingestion-time index, TTL), the
settings recorded on the table (`tablesettings`) and the results of a put."""

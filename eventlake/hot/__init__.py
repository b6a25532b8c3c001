"""The hot tier: the DynamoDB table (`store`: provisioning, conditional puts, TTL, reads), the
ingestion-time index and its migration (`index`), whole items by event_id (`fetch`:
BatchGetItem), read units by DynamoDB's sizing rules (`capacity`), raw events validated and
stored (`put`), the results of a put and the caller's deadline (`results`), and the settings
recorded on the table (`tablesettings`)."""

-- How late events arrive: ingested_at - timestamp per event type, p50/p90/p99, in seconds.
--
-- grain:   one row per event_type
-- params:  none
-- reads:   events (both tiers, each event once)
-- method:  nearest-rank percentiles (quantile_disc: each value is a lag that occurred).
--          A negative lag is an event stamped ahead of the ingesting clock (the event model
--          accepts up to 5 minutes); a large one is a late event (old timestamp, ingested now).
-- columns: event_type VARCHAR, events BIGINT, p50_s, p90_s, p99_s, max_s DOUBLE (seconds)

WITH lags AS (
    SELECT
        event_type,
        CAST(date_diff('microsecond', "timestamp", ingested_at) AS DOUBLE) / 1e6 AS lag_s
    FROM events
)
SELECT
    CAST(event_type AS VARCHAR)             AS event_type,
    CAST(count(*) AS BIGINT)                AS events,
    CAST(quantile_disc(lag_s, 0.50) AS DOUBLE) AS p50_s,
    CAST(quantile_disc(lag_s, 0.90) AS DOUBLE) AS p90_s,
    CAST(quantile_disc(lag_s, 0.99) AS DOUBLE) AS p99_s,
    CAST(max(lag_s) AS DOUBLE)              AS max_s
FROM lags
GROUP BY event_type
ORDER BY event_type;

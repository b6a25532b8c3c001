-- Events of each type per UTC day: the day of the event's own timestamp (its partition, dt).
--
-- grain:   one row per (dt, event_type) that has events; days without events are absent
-- params:  none
-- reads:   events (both tiers, each event once)
-- columns: dt DATE, event_type VARCHAR, events BIGINT, subjects BIGINT (distinct, non-null)

SELECT
    CAST(dt AS DATE)                        AS dt,
    CAST(event_type AS VARCHAR)             AS event_type,
    CAST(count(*) AS BIGINT)                AS events,
    CAST(count(DISTINCT subject) AS BIGINT) AS subjects
FROM events
GROUP BY dt, event_type
ORDER BY dt, event_type;

-- Events per UTC hour of event time: how many, of how many types, about how many subjects.
--
-- grain:   one row per UTC hour that has events; hours without events are absent (a chart
--          fills them with 0: filling here would turn one event from 1999 into 230k rows)
-- params:  none
-- reads:   events (both tiers, each event once)
-- columns: hour TIMESTAMPTZ (start of the hour, UTC), events BIGINT, event_types BIGINT,
--          subjects BIGINT (distinct, non-null)

SELECT
    CAST(timezone('UTC', date_trunc('hour', timezone('UTC', "timestamp"))) AS TIMESTAMPTZ)
                                            AS hour,
    CAST(count(*) AS BIGINT)                AS events,
    CAST(count(DISTINCT event_type) AS BIGINT) AS event_types,
    CAST(count(DISTINCT subject) AS BIGINT) AS subjects
FROM events
GROUP BY 1
ORDER BY hour;

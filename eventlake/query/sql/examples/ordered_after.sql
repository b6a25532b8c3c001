-- Of the subjects that did $from_type, how many placed an order within $window_hours after it.
-- An example for `eventlake sql -f FILE --param ...` (the named queries are the folder above);
-- on the demo's shop events: --param from_type=product_added_to_cart --param window_hours=24
--
-- grain:   one row per UTC day of each subject's first $from_type event
-- params:  $from_type VARCHAR     the event type a subject starts from
--          $window_hours DOUBLE   how long after it an `order_placed` still counts
-- reads:   events (both tiers, each event once); events without a subject are left out
-- columns: dt DATE, subjects BIGINT, ordered BIGINT

WITH first_seen AS (
    SELECT subject, min("timestamp") AS at
    FROM events
    WHERE event_type = CAST($from_type AS VARCHAR) AND subject IS NOT NULL
    GROUP BY subject
),
orders AS (
    SELECT subject, "timestamp" AS at
    FROM events
    WHERE event_type = 'order_placed' AND subject IS NOT NULL
)
SELECT
    CAST(timezone('UTC', f.at) AS DATE)  AS dt,
    count(DISTINCT f.subject)            AS subjects,
    count(DISTINCT o.subject)            AS ordered
FROM first_seen AS f
LEFT JOIN orders AS o
    ON o.subject = f.subject
   AND o.at >= f.at
   AND o.at <= f.at + to_seconds(CAST(CAST($window_hours AS DOUBLE) * 3600 AS BIGINT))
GROUP BY ALL
ORDER BY dt;

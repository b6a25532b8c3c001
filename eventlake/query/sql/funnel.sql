-- Of the subjects that did one event type, how many did a second one within a time window.
--
-- grain:   one row per cohort day: the UTC date of each subject's first $from_type event
-- params:  $from_type VARCHAR     the event type that enters the funnel (e.g. 'cart.created')
--          $to_type VARCHAR       the event type that completes it (e.g. 'order.placed')
--          $window_hours DOUBLE   how long after entering a completion still counts
-- reads:   events (both tiers, each event once); events without a subject are left out
-- rule:    a subject enters once, at its first $from_type event (by event time); it converts
--          when a $to_type event, other than the entering one, has a timestamp at or after the
--          entry and at most $window_hours later
-- columns: cohort_dt DATE, entered BIGINT, converted BIGINT, conversion_rate DOUBLE (0..1),
--          median_hours_to_convert DOUBLE (over converted subjects; NULL when none)

WITH entered AS (
    SELECT
        subject,
        min("timestamp")                AS entered_at,
        arg_min(event_id, "timestamp")  AS entry_event_id
    FROM events
    WHERE event_type = CAST($from_type AS VARCHAR)
      AND subject IS NOT NULL
    GROUP BY subject
),
outcomes AS (
    SELECT
        entered.subject,
        entered.entered_at,
        min(later."timestamp") AS converted_at
    FROM entered
    LEFT JOIN events AS later
      ON later.subject = entered.subject
     AND later.event_type = CAST($to_type AS VARCHAR)
     AND later.event_id <> entered.entry_event_id
     AND later."timestamp" >= entered.entered_at
     AND later."timestamp" <= entered.entered_at
                              + CAST($window_hours AS DOUBLE) * INTERVAL 1 HOUR
    GROUP BY entered.subject, entered.entered_at
)
SELECT
    CAST(timezone('UTC', entered_at) AS DATE)                       AS cohort_dt,
    CAST(count(*) AS BIGINT)                                        AS entered,
    CAST(count(converted_at) AS BIGINT)                             AS converted,
    CAST(count(converted_at) / count(*) AS DOUBLE)                  AS conversion_rate,
    CAST(median(date_diff('microsecond', entered_at, converted_at)) / 3600e6 AS DOUBLE)
                                                                    AS median_hours_to_convert
FROM outcomes
GROUP BY cohort_dt
ORDER BY cohort_dt;

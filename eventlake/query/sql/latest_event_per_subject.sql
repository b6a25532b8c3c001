-- The latest event of each subject, by event time (ties: the larger event_id), and its count.
--
-- grain:   one row per subject; events without a subject are left out
-- params:  none
-- reads:   events (both tiers, each event once)
-- columns: subject VARCHAR, event_id VARCHAR, event_type VARCHAR, timestamp TIMESTAMPTZ,
--          event_payload VARCHAR (JSON text), subject_events BIGINT (all events of the subject)

SELECT
    CAST(subject AS VARCHAR)                              AS subject,
    CAST(event_id AS VARCHAR)                             AS event_id,
    CAST(event_type AS VARCHAR)                           AS event_type,
    CAST("timestamp" AS TIMESTAMPTZ)                      AS "timestamp",
    CAST(event_payload AS VARCHAR)                        AS event_payload,
    CAST(count(*) OVER (PARTITION BY subject) AS BIGINT)  AS subject_events
FROM events
WHERE subject IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY subject ORDER BY "timestamp" DESC, event_id DESC) = 1
ORDER BY subject;

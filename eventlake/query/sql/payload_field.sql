-- One field of the JSON payload of every event of one type, picked by a JSON path.
--
-- grain:   one row per event of $event_type; value is NULL where the path finds nothing
-- params:  $event_type VARCHAR    the event type to read (e.g. 'order.placed')
--          $json_path VARCHAR     JSONPath ('$.total', '$.items[0].sku') or JSON pointer ('/total')
-- reads:   events (both tiers, each event once)
-- columns: event_id VARCHAR, timestamp TIMESTAMPTZ, subject VARCHAR,
--          value VARCHAR (the field as text: strings without quotes, objects as JSON),
--          value_json VARCHAR (the field as JSON text: strings keep their quotes)

SELECT
    CAST(event_id AS VARCHAR)                                                  AS event_id,
    CAST("timestamp" AS TIMESTAMPTZ)                                           AS "timestamp",
    CAST(subject AS VARCHAR)                                                   AS subject,
    CAST(json_extract_string(event_payload, CAST($json_path AS VARCHAR)) AS VARCHAR) AS value,
    CAST(json_extract(event_payload, CAST($json_path AS VARCHAR)) AS VARCHAR)  AS value_json
FROM events
WHERE event_type = CAST($event_type AS VARCHAR)
ORDER BY "timestamp", event_id;

"""Replay: every selected past event, in order, once, into a target.

It reads both tiers through the query layer's views (`eventlake.query.views`) and owns:

- `select`      `Selection`: which events (time range, types, subject, a SQL predicate,
                cold only) and the SQL that reads them, every value a bound parameter; the
                `seed` JSON line DuckDB builds for each event
- `read`        the ordered stream: one query per UTC day, in (timestamp, event_id) order,
                read as Arrow record batches, so memory holds one day of selected events
- `batch`       `Batch`: a run of events as Arrow columns, with the views targets ask for
- `shapes`      what an event looks like on the wire: seed, cloudevents, eventbridge, stream
- `targets`     the Target contract, DeliveryError, and the local targets (stdout, a JSONL
                file, a callable); `resolve` turns a `--target` name into one
- `aws/`        sqs, eventbridge, kinesis, lambda; `http` an HTTP(S) endpoint; `s3jsonl`
                JSONL on S3 (a multipart upload, durable part by part)
- `backoff`     retrying refused entries and requests, with full-jitter waits
- `checkpoint`  the position after each acknowledged batch (local file or S3 object); resume
- `count`       what a selection holds (count, first/last, per type) without reading events:
                the dry run, and the progress bar's total
- `rate`        `TokenBucket`: `--rate` events/s on average, one batch at a time
- `run`         `replay(...)`: the loop tying them together, and its `ReplayReport`

The query and archive layers never import this package; `api` and the faces call it.
"""

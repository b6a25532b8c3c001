"""Replay: every selected past event, in order, once, into a target (issue #10, core slice).

It reads both tiers through the query layer's views (`eventlake.query.views`) and owns:

- `select`      `Selection`: which events (time range, types, subject, a SQL predicate,
                cold only) and the SQL that reads them, every value a bound parameter
- `read`        the ordered stream: one query per UTC day, in (timestamp, event_id) order,
                read as Arrow record batches, so memory holds one day of selected events
- `targets`     where events go (`stdout`, `jsonl:PATH`, any callable) and the `seed` shape
- `checkpoint`  the position after each acknowledged batch, written atomically; resume
- `count`       what a selection holds (count, first/last, per type) without reading events:
                the dry run, and the progress bar's total
- `rate`        `TokenBucket`: `--rate` events/s on average, one batch at a time
- `run`         `replay(...)`: the loop tying them together, and its `ReplayReport`

The query and archive layers never import this package; `api` and the faces call it.
"""

"""Hot -> cold: everything that moves events from DynamoDB into the lake.

    stream      one DynamoDB Streams batch -> Parquet (the stream Lambda's work)
    streamwrite one partition of that batch -> a file of what the lake lacks (the overlap check)
    streamfiles the stream's file names and the sequence ranges they carry
    removed     a REMOVE's old image: the event's last copy, archived if no sweep vouched for it
    sweep       the scheduled sweep: read the index since the watermark, write what the lake lacks
    lacking     the sweep's read path: index entries anti-joined on the lake, the rest fetched whole
    backfill    a parallel Scan of the whole table (items the index does not hold)
    writer      the writer both use: the first copy of each event, anti-joined on the lake
    expiry      the last look at every event before TTL may delete it
    ttlguard    how close the oldest unarchived event is to expiry
    lease       one sweep at a time
    lakeof      the table a lake's marker names: another table's sweep or backfill is refused
    reconcile   proof that the lake holds what the watermark vouches for
    report      what the sweep, its expiry check, the TTL guard and the backfill report
"""

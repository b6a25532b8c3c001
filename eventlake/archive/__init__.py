"""Hot -> cold: everything that moves events from DynamoDB into the lake.

    stream      one DynamoDB Streams batch -> Parquet (the stream Lambda's work)
    sweep       the scheduled sweep and the backfill: read the index, write what the lake lacks
    writer      the writer both use: the first copy of each event, anti-joined on the lake
    expiry      the last look at every event before TTL may delete it
    ttlguard    how close the oldest unarchived event is to expiry
    lease       one sweep at a time
    reconcile   proof that the lake holds what the watermark vouches for
"""

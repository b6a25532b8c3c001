"""The cold tier: Hive-partitioned Parquet on S3 or a local folder.

    layout       where things live; the Arrow schema is `eventlake.events.schema`
    fs           the filesystem (S3 or local), atomic publishing, partition listing
    bucket       the lake's S3 bucket
    store        `Lake`: list, read and write event files; quarantine
    names        the names eventlake's writers give event files (windows, own-file prefixes)
    state        small compare-and-swap objects under `_eventlake/`
    watermark    the ingestion time before which every event is in the lake
    shards       the largest index shard count the lake has seen (so readers of the hot index
                 query every shard)
    quarantine   what could not be archived, raw, with its reason
    dedup        the one-copy rule: which copy of an event_id readers see
    compact      compaction, and `compactplan` what it merges
"""

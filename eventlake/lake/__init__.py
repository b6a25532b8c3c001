"""The cold tier: Hive-partitioned Parquet on S3 or a local folder.

    layout       where things live: partitions (`split_by_dt`), `dt=` names, file names;
                 the Arrow schema is `eventlake.events.schema`
    fs           the filesystem (S3 or local), atomic publishing, partition listing
    bucket       the lake's S3 bucket
    store        `Lake`: list, read and write event files; quarantine
    names        the names eventlake's writers give event files (windows, own-file prefixes)
    state        small compare-and-swap objects under `_eventlake/`
    watermark    the ingestion time before which every event is in the lake
    shards       the largest index shard count the lake has seen (so readers of the hot index
                 query every shard)
    quarantine   what could not be archived, raw, with its reason
    dedup        the one first-copy rule (which copy of an event_id is kept) and the
                 de-duplicating read
    disjoint     per-partition manifests of files proven disjoint on event_id (`verify`,
                 run by the sweep): readers read those without de-duplicating;
                 `disjointids` the digest of their ids verify checks new files against
    vanish       files compacted away under a reader: list again and retry
    compact      compaction runs; `compactplan` what it merges, `compactmerge` the merge of
                 one partition, `compactrecord` its record for crash recovery
"""

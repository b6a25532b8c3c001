"""DynamoDB wire formats -> Python and Arrow: AttributeValues, stream records, lake rows.

    AttributeValue  {"N": "1e100"}          -> decode_value  -> int | Decimal | str | bytes | ...
    stream event    {"Records": [...]}      -> parse_stream_records -> StreamRecord | RecordError
    item image      {"event_id": {"S": ..}} -> RowBuilder.add_image -> pa.Table (EVENT_SCHEMA)
    Lambda batch    [INSERT, INSERT, ...]   -> lambda_insert_columns -> pa.Table, column-wise

    attributes  AttributeValue decoding (numbers, binary, sets) and CodecError
    times       ApproximateCreationDateTime and epoch times -> UTC datetimes
    records     stream events -> StreamRecord / RecordError (Lambda, Kinesis, GetRecords)
    rows        item images -> lake rows -> one Arrow table (RowBuilder, fast and slow paths)
    columns     a Lambda batch of eventlake INSERTs -> one Arrow table, no row objects

Import from here (`from eventlake.codec import RowBuilder`); the modules are how the code is
laid out, not a promise.
"""

from __future__ import annotations

from eventlake.codec.attributes import MAX_EXPONENT as MAX_EXPONENT
from eventlake.codec.attributes import MAX_NUMBER_DIGITS as MAX_NUMBER_DIGITS
from eventlake.codec.attributes import MIN_EXPONENT as MIN_EXPONENT
from eventlake.codec.attributes import (
    CodecError,
    decode_item,
    decode_value,
    payload_json_from_map,
    to_json_compatible,
)
from eventlake.codec.columns import FastColumns as FastColumns
from eventlake.codec.columns import lambda_insert_columns as lambda_insert_columns
from eventlake.codec.records import (
    EventName,
    RecordError,
    StreamRecord,
    parse_stream_event,
    parse_stream_records,
)
from eventlake.codec.rows import Row as Row
from eventlake.codec.rows import RowBuilder
from eventlake.codec.rows import fast_row as fast_row
from eventlake.codec.times import MILLIS_THRESHOLD as MILLIS_THRESHOLD
from eventlake.codec.times import approximate_time

__all__ = [
    "CodecError",
    "EventName",
    "RecordError",
    "RowBuilder",
    "StreamRecord",
    "approximate_time",
    "decode_item",
    "decode_value",
    "parse_stream_event",
    "parse_stream_records",
    "payload_json_from_map",
    "to_json_compatible",
]

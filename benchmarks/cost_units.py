"""DynamoDB request units by the published item-size rules, and the tallies the cost benchmark
keeps (a botocore `after-call` hook for DynamoDB, a WSGI counter on the moto server for S3, since
eventlake's Parquet IO goes through pyarrow's own S3 client, which botocore never sees).

Rules (developer guide, "Read/write capacity mode" and "Item sizes"): a write consumes 1 WRU per
1 KB of the item (rounded up), plus the same for each GSI the item appears in (its projected
size); a read 1 RRU per 4 KB strongly consistent, half that eventually consistent; a Query or
Scan sums the sizes of the items it reads and rounds the total up to 4 KB once per page.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


def attribute_size(value: Mapping[str, Any]) -> int:
    """The size of one AttributeValue, in bytes, by DynamoDB's published rules."""
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":  # ~1 byte per two significant digits, + 1
        digits = v.lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_size({kind[0]: x}) for x in v)
    if kind == "L":
        return 3 + sum(1 + attribute_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(x) for k, x in v.items())
    raise ValueError(f"unknown AttributeValue type `{kind}`")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Attribute names (UTF-8) plus values."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, *, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return float(units) if consistent else units / 2


@dataclass
class Index:
    """A GSI: its key attributes and what it projects (None: ALL)."""

    name: str
    keys: tuple[str, ...]
    projected: frozenset[str] | None


@dataclass
class Tally:
    """What a run did: botocore calls per operation, DynamoDB units by table/GSI, S3 requests
    (as the server saw them), stream record bytes, Lambda handler seconds."""

    calls: Counter[str] = field(default_factory=Counter)
    wru: Counter[str] = field(default_factory=Counter)
    rru: Counter[str] = field(default_factory=Counter)
    s3: Counter[str] = field(default_factory=Counter)
    stream_records: int = 0
    stream_bytes: int = 0
    lambda_seconds: float = 0.0
    lambda_invocations: int = 0
    table_keys: tuple[str, ...] = ("event_id",)
    indexes: list[Index] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """Held by every count: botocore hooks run in the readers' thread pools, and the moto
    server answers S3 from threads of its own (`+=` on a Counter loses updates between them)."""

    def entry_bytes(self, index: Index, item: Mapping[str, Any]) -> int | None:
        """Bytes of `item`'s entry in `index` (its keys, the table's and what it projects);
        None when the item lacks a key of the index (a sparse index leaves it out)."""
        if not all(k in item for k in index.keys):
            return None
        if index.projected is None:
            return item_size(item)
        names = set(index.projected) | set(index.keys) | set(self.table_keys)
        return item_size({k: v for k, v in item.items() if k in names})

    def record_write(self, phase: str, item: Mapping[str, Any]) -> None:
        self.wru[f"{phase}: table"] += write_units(item_size(item))
        for index in self.indexes:
            entry = self.entry_bytes(index, item)
            if entry is not None:
                self.wru[f"{phase}: index {index.name}"] += write_units(entry)

    def record_read(self, phase: str, items: list[Mapping[str, Any]], *, consistent: bool,
                    per_item: bool) -> None:
        if per_item:
            for item in items:
                self.rru[phase] += read_units(item_size(item), consistent=consistent)
        elif items:
            self.rru[phase] += read_units(sum(item_size(i) for i in items), consistent=consistent)
        else:
            self.rru[phase] += read_units(0, consistent=consistent)  # an empty page costs 0.5/1

    def on_dynamodb_call(self, phase: str, operation: str, params: Mapping[str, Any],
                         parsed: Mapping[str, Any]) -> None:
        """Units for one DynamoDB / Streams call, from what it sent and what it got back."""
        with self.lock:
            self._on_dynamodb_call(phase, operation, params, parsed)

    def count_s3(self, key: str) -> None:
        with self.lock:
            self.s3[key] += 1

    def _on_dynamodb_call(self, phase: str, operation: str, params: Mapping[str, Any],
                          parsed: Mapping[str, Any]) -> None:
        self.calls[f"{phase}: {operation}"] += 1
        consistent = bool(params.get("ConsistentRead"))
        if operation == "PutItem":
            self.record_write(phase, params["Item"])
        elif operation == "BatchWriteItem":
            unprocessed = parsed.get("UnprocessedItems") or {}
            for table, requests in params["RequestItems"].items():
                left = unprocessed.get(table, [])
                for request in requests:
                    if "PutRequest" in request and request not in left:
                        self.record_write(phase, request["PutRequest"]["Item"])
        elif operation in ("Query", "Scan"):
            self.record_read(phase, parsed.get("Items", []), consistent=consistent,
                             per_item=False)
        elif operation == "GetItem":
            self.record_read(phase, [parsed.get("Item") or {}], consistent=consistent,
                             per_item=True)
        elif operation == "BatchGetItem":
            for table, items in (parsed.get("Responses") or {}).items():
                wanted = params["RequestItems"][table]
                self.record_read(phase, items, consistent=bool(wanted.get("ConsistentRead")),
                                 per_item=True)
        elif operation == "GetRecords":
            for record in parsed.get("Records", []):
                self.stream_records += 1
                self.stream_bytes += int(record.get("dynamodb", {}).get("SizeBytes", 0))


S3_WRITES = {"PUT", "POST", "COPY"}


def s3_request_kind(method: str, query: str) -> str:
    """How S3 bills a request: PUT (PUT, COPY, POST, LIST), GET (GET, SELECT, others), or free
    (DELETE, HEAD is billed as GET)."""
    args = parse_qs(query, keep_blank_values=True)
    if method == "GET" and ("list-type" in args or "delimiter" in args or "prefix" in args
                            or "uploads" in args):
        return "LIST"
    if method in S3_WRITES:
        return "PUT"
    if method in ("GET", "HEAD"):
        return "GET"
    return method  # DELETE: free

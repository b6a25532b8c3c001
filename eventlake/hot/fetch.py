"""Whole items by event_id: BatchGetItem, 100 keys a call, for the events the lake lacks.

    ids -> unique, in batches of 100 (DynamoDB's limit; it refuses duplicate keys)
        -> BatchGetItem, eventually consistent (half the read units)
             UnprocessedKeys (throttling, 16 MB) -> asked again, backing off; given up
                                                    after UNPROCESSED_ATTEMPTS calls in a row
                                                    that returned none of the keys left
        -> ids it did not return -> asked again with ConsistentRead
        -> ids still not returned: `vanished` (TTL deleted them after the index listed them)

The index is eventually consistent and the base table is read after it, so an item the index
lists exists unless something deleted it; an eventually consistent read may still miss one
written a moment ago, hence the consistent second ask before calling it gone. Items are
immutable: whichever read returns an item returns its only content.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from eventlake.errors import TransientError

__all__ = ["BATCH_KEYS", "UNPROCESSED_ATTEMPTS", "Fetched", "fetch_items"]

BATCH_KEYS = 100
"""Keys per BatchGetItem call (DynamoDB's maximum)."""
UNPROCESSED_ATTEMPTS = 8
"""Calls in a row that return none of the keys left, before TransientError. A call that
returns some of them starts the count again: DynamoDB cuts a response at 16 MB and returns a
throttled table's keys a few at a time, and a fetch it keeps advancing must not be given up."""
_FIRST_PAUSE, _MAX_PAUSE = 0.05, 2.0

Item = dict[str, Any]
Call = Callable[[Callable[[], Any]], Any]


@dataclass
class Fetched:
    """What a fetch returned: the items by event_id, and the ids no read found."""

    items: dict[str, Item] = field(default_factory=dict)
    vanished: list[str] = field(default_factory=list)


def fetch_items(ddb: Any, table: str, event_ids: Sequence[str], *, call: Call = lambda f: f(),
                workers: int = 1, sleep: Callable[[float], None] = time.sleep) -> Fetched:
    """The items of `event_ids` (see the module docstring). `call` wraps each request (the
    store's error mapping); `workers` batches run at once."""
    unique = list(dict.fromkeys(event_ids))
    fetched = Fetched()
    batches = [unique[i:i + BATCH_KEYS] for i in range(0, len(unique), BATCH_KEYS)]

    def one(batch: list[str]) -> dict[str, Item]:
        return _batch(ddb, table, batch, call, sleep, consistent=False)

    if len(batches) > 1 and workers > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(batches)),
                                thread_name_prefix="eventlake-fetch") as pool:
            results = list(pool.map(one, batches))
    else:
        results = [one(batch) for batch in batches]
    for result in results:
        fetched.items.update(result)
    unseen = [i for i in unique if i not in fetched.items]
    for start in range(0, len(unseen), BATCH_KEYS):
        fetched.items.update(_batch(ddb, table, unseen[start:start + BATCH_KEYS], call, sleep,
                                    consistent=True))
    fetched.vanished = [i for i in unseen if i not in fetched.items]
    return fetched


def _batch(ddb: Any, table: str, ids: list[str], call: Call, sleep: Callable[[float], None],
           *, consistent: bool) -> dict[str, Item]:
    found: dict[str, Item] = {}
    request: dict[str, Any] = {table: {"Keys": [{"event_id": {"S": i}} for i in ids],
                                       "ConsistentRead": consistent}}
    pause = _FIRST_PAUSE
    asked, stalled = len(ids), 0
    while True:
        response = call(partial(ddb.batch_get_item, RequestItems=request))
        for item in response.get("Responses", {}).get(table, []):
            event_id = item.get("event_id", {}).get("S")
            if isinstance(event_id, str):
                found[event_id] = item
        request = response.get("UnprocessedKeys") or {}
        left = len(request.get(table, {}).get("Keys") or [])
        if not left:
            return found
        # each call leaves fewer keys or counts as a stall: the loop ends either way
        stalled = 0 if left < asked else stalled + 1
        asked = left
        if stalled >= UNPROCESSED_ATTEMPTS:
            break
        sleep(pause)
        pause = min(pause * 2, _MAX_PAUSE)
    keys = [k["event_id"]["S"] for k in request[table]["Keys"]]
    examples = ", ".join(f"`{i}`" for i in keys[:5])
    raise TransientError(
        f"DynamoDB left {len(keys)} key(s) of table `{table}` unprocessed after "
        f"{UNPROCESSED_ATTEMPTS} BatchGetItem calls in a row that returned none of them "
        f"(throttled), e.g. {examples}: retry later")

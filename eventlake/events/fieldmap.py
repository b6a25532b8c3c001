"""Map records of other shapes onto the event model: `--map event_type=type,...`.

Real data rarely arrives with eventlake's field names (GH Archive has `id, type, created_at,
payload`; CloudTrail's LookupEvents `EventId, EventName, EventTime, CloudTrailEvent`). A field
map names, for each event field, the record's field that holds it. Fields the map does not name
are, by choice of the caller, refused (`reject`, the default: nothing is lost silently), folded
into the payload under their own names (`payload`), or dropped (`drop`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from eventlake.errors import ConfigError, InvalidEventError
from eventlake.events.canonical import loads_exact

EVENT_FIELDS = ("event_id", "event_type", "timestamp", "event_payload", "source", "subject")


class Unmapped(StrEnum):
    REJECT = "reject"
    PAYLOAD = "payload"
    DROP = "drop"


def parse_field_map(specs: list[str]) -> dict[str, str]:
    """`["event_type=type", "timestamp=created_at,event_id=id"]` -> {event field: record field}."""
    mapping: dict[str, str] = {}
    for spec in specs:
        for pair in filter(None, (p.strip() for p in spec.split(","))):
            target, sep, source = pair.partition("=")
            target, source = target.strip(), source.strip()
            if not sep or not source:
                raise ConfigError(f"field map `{pair}` must look like `event_type=type`")
            if target not in EVENT_FIELDS:
                raise ConfigError(f"field map `{pair}`: `{target}` is not an event field; "
                                  f"expected one of {', '.join(EVENT_FIELDS)}")
            if target in mapping:
                raise ConfigError(f"field map names `{target}` twice")
            mapping[target] = source
    return mapping


def remap(record: Any, mapping: Mapping[str, str], unmapped: Unmapped = Unmapped.REJECT,
          position: int = 0) -> Any:
    """The record in the seed shape. Non-objects pass through (parse_event rejects them)."""
    if not mapping or not isinstance(record, Mapping):
        return record
    out = {target: record[source] for target, source in mapping.items() if source in record}
    used = set(mapping.values())
    rest = {k: v for k, v in record.items() if k not in used}
    if not rest or unmapped is Unmapped.DROP:
        return out
    if unmapped is Unmapped.REJECT:
        hint = out.get("event_id") if isinstance(out.get("event_id"), str) else None
        raise InvalidEventError(
            "event.unmapped_field",
            f"field(s) {', '.join(f'`{k}`' for k in sorted(rest))} are not in the field map; "
            "map them, or choose --unmapped payload (keep them in the payload) or drop",
            position=position, event_id=hint)
    payload = out.get("event_payload", {})
    if isinstance(payload, str | bytes):
        try:
            payload = loads_exact(payload)
        except ValueError:
            payload = {"payload": payload}
    if not isinstance(payload, Mapping):
        payload = {"payload": payload}
    clashes = set(payload) & set(rest)
    if clashes:
        raise InvalidEventError(
            "event.unmapped_field",
            f"unmapped field(s) {', '.join(sorted(clashes))} clash with payload keys",
            position=position)
    out["event_payload"] = {**payload, **rest}
    return out

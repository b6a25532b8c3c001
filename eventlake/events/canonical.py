"""Canonical JSON and the event's one digest: what is stored and hashed.

Canonical JSON: keys sorted, no spaces, UTF-8, and numbers written exactly (no float round-off:
JSON input is parsed with `Decimal`; 1.50 and 1.5 are the same number and are both written `1.5`,
large or tiny magnitudes use `1e+30` as ECMAScript does, except integers, which are always plain
digits so that every JSON reader gets an integer back).

`digest` (SHA-256 of UTF-8 text, hex) is the one digest: `content_hash` (the stored
`content_hash`) and the derived event ids (ids.py) take it of `canonical_event`; the writers'
file names take (a prefix of) it of event ids or of `raw_identity`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from eventlake.errors import InvalidEventError

MAX_PAYLOAD_DEPTH = 64


class DuplicateKeyError(ValueError):
    """JSON text names the same key twice in one object (which value was meant is unknown)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"duplicate key `{key}` in one JSON object")


def loads_exact(text: str | bytes) -> Any:
    """Parse JSON keeping every number exact (Decimal for non-integers, `BigInt` for integers
    past Python's int/str digit limit); reject NaN/Infinity and duplicate keys
    (DuplicateKeyError, a ValueError)."""
    return json.loads(text, parse_float=Decimal, parse_int=_parse_int,
                      parse_constant=_reject_constant, object_pairs_hook=_object)


class BigInt(Decimal):
    """An integer too long for Python's int/str conversion limit (4,300 digits by default),
    kept exact as a Decimal and written back as plain digits."""

    __slots__ = ()


def _parse_int(text: str) -> int | BigInt:
    try:
        return int(text)
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        return BigInt(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_encode_str: Callable[[str], str] = json.encoder.py_encode_basestring
try:  # the C speedup, with ensure_ascii=False semantics
    from _json import encode_basestring as _c_encode_str
    _encode_str = _c_encode_str
except ImportError:  # pragma: no cover - CPython always has it
    pass


def canonical_json(value: Any) -> str:
    """Sorted keys, compact separators, raw UTF-8, exact numbers. Raises InvalidEventError."""
    parts: list[str] = []
    _encode(value, parts, "$", 0)
    text = "".join(parts)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEventError("payload.invalid_unicode",
                                "`event_payload` holds a lone UTF-16 surrogate; "
                                "strings must be valid Unicode") from None
    return text


def _encode(value: Any, out: list[str], path: str, depth: int) -> None:
    if depth > MAX_PAYLOAD_DEPTH:
        raise too_deep()
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        # Integers are plain digits whatever their size: in exponent form (1e+21) every JSON
        # reader, DuckDB included, would take them for floats.
        out.append(_int_text(value))
    elif isinstance(value, BigInt):
        out.append(str(value))
    elif isinstance(value, float | Decimal):
        try:
            out.append(canonical_number(value))
        except ValueError:
            raise InvalidEventError("payload.not_json",
                                    f"number `{value}` at {path} is not finite") from None
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        try:
            keys = sorted(value)
        except TypeError:  # a Python caller's keys of mixed types: name one that is not a string
            key = next(k for k in value if not isinstance(k, str))
            raise InvalidEventError("payload.not_json",
                                    f"key {key!r} at {path} is not a string") from None
        for key in keys:
            if not isinstance(key, str):
                raise InvalidEventError("payload.not_json",
                                        f"key {key!r} at {path} is not a string")
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(key))
            out.append(":")
            _encode(value[key], out, f"{path}.{key}", depth + 1)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, f"{path}[{i}]", depth + 1)
        out.append("]")
    else:
        raise InvalidEventError("payload.not_json",
                                f"value at {path} is {kind_of(value)}, which is not JSON")


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # past the int/str digit limit: Decimal converts without one
        return str(Decimal(value))



def too_deep() -> InvalidEventError:
    """The rule a payload nested deeper than MAX_PAYLOAD_DEPTH breaks."""
    return InvalidEventError("payload.too_deep",
                             f"`event_payload` nests deeper than {MAX_PAYLOAD_DEPTH} levels")


def canonical_number(value: float | int | Decimal) -> str:
    """Exact shortest text of a number, laid out as ECMAScript's Number#toString does."""
    d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not d.is_finite():
        raise ValueError(f"{value} is not finite")
    sign, digits_t, exp = d.as_tuple()
    assert isinstance(exp, int)
    # Strip trailing zeros by hand: Decimal.normalize rounds to its context's precision.
    # (A Decimal's coefficient has no leading zeros: zero's is the one digit 0, stripped below.)
    full = "".join(map(str, digits_t))
    digits = full.rstrip("0")
    if not digits:
        return "0"
    exp += len(full) - len(digits)
    n, k = len(digits), len(digits) + exp
    if exp >= 0 and k <= 21:
        body = digits + "0" * exp
    elif 0 < k <= 21:
        body = f"{digits[:k]}.{digits[k:]}"
    elif -6 < k <= 0:
        body = f"0.{'0' * -k}{digits}"
    else:
        mantissa = digits[0] + (f".{digits[1:]}" if n > 1 else "")
        e = k - 1
        body = f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"
    return ("-" if sign else "") + body


def digest(text: str) -> str:
    """SHA-256 of `text` (UTF-8), as 64 hex digits: the one digest of event content."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(event_id: str, event_type: str, timestamp_iso: str, payload_json: str,
                 source: str | None, subject: str | None) -> str:
    """SHA-256 of the event's canonical JSON (keys sorted; absent source/subject omitted)."""
    return digest(canonical_event(event_id, event_type, timestamp_iso, payload_json, source,
                                  subject))


def raw_identity(raw: Any) -> str:
    """The same text for the same raw record or item, whatever it holds (datetimes, bytes,
    Decimals...): what the names of files holding records that are not events yet (a stream
    batch, quarantined items) are digested from."""
    try:
        return json.dumps(raw, sort_keys=True, default=repr)
    except (TypeError, ValueError):  # keys of mixed types, a cycle: still deterministic
        return repr(raw)


def canonical_event(event_id: str | None, event_type: str, timestamp_iso: str | None,
                     payload_json: str, source: str | None, subject: str | None) -> str:
    """The event as canonical JSON; fields given as None are left out."""
    parts = [f'"event_id":{_encode_str(event_id)}'] if event_id is not None else []
    parts.append(f'"event_payload":{payload_json}')
    parts.append(f'"event_type":{_encode_str(event_type)}')
    if source is not None:
        parts.append(f'"source":{_encode_str(source)}')
    if subject is not None:
        parts.append(f'"subject":{_encode_str(subject)}')
    if timestamp_iso is not None:
        parts.append(f'"timestamp":{_encode_str(timestamp_iso)}')
    return "{" + ",".join(parts) + "}"



def kind_of(value: Any) -> str:
    """What a JSON-ish value is, for error messages: "a string", "an object", "bytes"..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, Sequence):
        return "an array"
    return f"a {type(value).__name__}"


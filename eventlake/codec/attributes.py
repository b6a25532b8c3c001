"""AttributeValues -> Python: `decode_value`, `decode_item`, `payload_json_from_map`, and
`CodecError`, the one error every part of the codec raises.

    {"N": "1e100"}  -> decode_value -> int | Decimal | str | bytes | bool | None | dict | list

Decoding is lossless and strict. Numbers keep every digit (int for integer literals, exact
Decimal otherwise) under DynamoDB's own rules (38 significant digits, magnitude 1e-130 ..
9.99..e125); boto3's TypeDeserializer is not used because its Decimal context raises on valid
values such as 1e100. Binary is strict base64 in Lambda's JSON and raw bytes from boto3. Sets
come out as sorted lists without duplicates (DynamoDB never stores duplicates; hand-written
fixtures have them), so the same item always decodes, and hashes, the same way.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from eventlake.errors import EventLakeError, InvalidEventError
from eventlake.events.canonical import canonical_json
from eventlake.events.canonical import kind_of as _kind
from eventlake.events.times import format_ts

__all__ = [
    "EXACT_CONTEXT",
    "MAX_EXPONENT",
    "MAX_NUMBER_DIGITS",
    "MIN_EXPONENT",
    "NUMBER_PATTERN",
    "CodecError",
    "av_kind",
    "decode_item",
    "decode_number",
    "decode_value",
    "payload_json_from_map",
    "to_json_compatible",
]

MAX_NUMBER_DIGITS = 38
MIN_EXPONENT, MAX_EXPONENT = -130, 125
"""Adjusted exponents DynamoDB stores: 1e-130 <= |n| <= 9.99...9e125 (38 nines)."""


class CodecError(EventLakeError, ValueError):
    """Input that cannot be decoded: a malformed AttributeValue, stream event or item.

    `rule` is a short stable name (``attribute.number_digits``, ``record.not_an_event``...);
    `path` the attribute path inside an item, `index` the record's position in its batch,
    `event_id` the event's id when known, `rows` the RowBuilder rows at fault (``to_table``).
    """

    def __init__(self, rule: str, message: str, *, path: str | None = None,
                 index: int | None = None, event_id: str | None = None,
                 rows: Sequence[int] = ()) -> None:
        self.rule = rule
        self.detail = message
        self.path = path
        self.index = index
        self.event_id = event_id
        self.rows = tuple(rows)
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.index is not None:
            where.append(f"record #{self.index}")
        if self.event_id is not None:
            where.append(f"event `{self.event_id}`")
        if self.path:
            where.append(f"attribute `{self.path}`")
        prefix = f"{', '.join(where)}: " if where else ""
        return f"{prefix}{self.detail} [rule {self.rule}]"

    def with_context(self, *, index: int | None = None, event_id: str | None = None,
                     path: str | None = None) -> CodecError:
        """The same error, naming more of where it happened."""
        return CodecError(self.rule, self.detail, path=path or self.path,
                          index=self.index if index is None else index,
                          event_id=self.event_id if event_id is None else event_id,
                          rows=self.rows)


class _Bad(Exception):
    """Internal: an AttributeValue problem; containers add path segments while unwinding."""

    def __init__(self, rule: str, detail: str) -> None:
        self.rule = rule
        self.detail = detail
        self.parts: list[str] = []

    def error(self, root: str | None) -> CodecError:
        path = "".join(reversed(self.parts))
        if root:
            path = root + path
        return CodecError(self.rule, self.detail, path=path.lstrip(".") or None)


# --- AttributeValue -> Python ------------------------------------------------------------

def decode_value(av: Mapping[str, Any]) -> Any:
    """One AttributeValue (Lambda JSON or boto3 low-level form) as a lossless Python value."""
    try:
        return _decode(av, False)
    except _Bad as bad:
        raise bad.error(None) from None


def decode_item(image: Mapping[str, Any]) -> dict[str, Any]:
    """An item (attribute name -> AttributeValue) as a plain dict."""
    if not isinstance(image, Mapping):
        raise CodecError("attribute.type_descriptor",
                         f"an item must be a map of attributes, got {_kind(image)}")
    out: dict[str, Any] = {}
    for name, av in image.items():
        try:
            out[name] = _decode(av, False)
        except _Bad as bad:
            raise bad.error(str(name)) from None
    return out


def to_json_compatible(value: Any) -> Any:
    """A decoded value that `events.canonical_json` accepts: bytes become standard padded
    base64 text, sets sorted lists, datetimes `format_ts` text (naive means UTC)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {k: to_json_compatible(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_compatible(v) for v in value]
    if isinstance(value, set | frozenset):
        try:
            members = sorted(value)
        except TypeError:
            members = list(value)
        return [to_json_compatible(v) for v in members]
    if isinstance(value, datetime):
        return format_ts(value)
    return value


def payload_json_from_map(av_map: Mapping[str, Any]) -> str:
    """Canonical JSON (`events.canonical_json`) of a payload stored as an M.

    Takes the AttributeValue (`{"M": {...}}`, as in an item) or the map inside it; a map whose
    only attribute is named `M` and holds a map is read as the AttributeValue.
    """
    try:
        if isinstance(av_map, Mapping) and len(av_map) == 1 and "M" in av_map:
            value = _decode(av_map, True)
        else:
            value = _decode({"M": av_map}, True)
    except _Bad as bad:
        raise bad.error("event_payload") from None
    try:
        return canonical_json(value)
    except InvalidEventError as exc:
        raise CodecError("record.bad_payload", exc.detail, path="event_payload") from exc


def _decode(av: Any, text_binary: bool) -> Any:
    """`text_binary`: B values stay/become base64 text (for JSON) instead of bytes."""
    if type(av) is not dict and not isinstance(av, Mapping):
        raise _Bad("attribute.type_descriptor",
                   f"expected an AttributeValue like {{\"S\": ...}}, got {_kind(av)}")
    if len(av) != 1:
        raise _Bad("attribute.type_descriptor",
                   f"an AttributeValue has exactly one type key, got "
                   f"{sorted(map(str, av)) or 'none'}")
    ((tag, value),) = av.items()
    if tag == "S":
        if type(value) is not str:
            raise _Bad("attribute.value_type", f"S must hold a string, got {_kind(value)}")
        return value
    if tag == "N":
        return _number(value)
    if tag == "M":
        if not isinstance(value, Mapping):
            raise _Bad("attribute.value_type", f"M must hold a map, got {_kind(value)}")
        out: dict[str, Any] = {}
        for key, member in value.items():
            try:
                out[key] = _decode(member, text_binary)
            except _Bad as bad:
                bad.parts.append(f".{key}")
                raise
        return out
    if tag == "L":
        if not isinstance(value, list | tuple):
            raise _Bad("attribute.value_type", f"L must hold a list, got {_kind(value)}")
        items: list[Any] = []
        for i, member in enumerate(value):
            try:
                items.append(_decode(member, text_binary))
            except _Bad as bad:
                bad.parts.append(f"[{i}]")
                raise
        return items
    if tag == "BOOL":
        if type(value) is not bool:
            raise _Bad("attribute.value_type", f"BOOL must hold true or false, got {value!r}")
        return value
    if tag == "NULL":
        if value is not True:
            raise _Bad("attribute.value_type", f"NULL must hold true, got {value!r}")
        return None
    if tag == "B":
        raw = _binary(value)
        return base64.b64encode(raw).decode("ascii") if text_binary else raw
    if tag in ("SS", "NS", "BS"):
        return _set(tag, value, text_binary)
    raise _Bad("attribute.type_descriptor",
               f"unknown AttributeValue type `{tag}`; expected one of S, N, B, BOOL, NULL, M, L, "
               "SS, NS, BS")


def _set(tag: str, value: Any, text_binary: bool) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise _Bad("attribute.value_type", f"{tag} must hold a list, got {_kind(value)}")
    members: list[Any] = []
    for i, member in enumerate(value):
        try:
            if tag == "SS":
                if type(member) is not str:
                    raise _Bad("attribute.value_type",
                               f"SS members must be strings, got {_kind(member)}")
                members.append(member)
            elif tag == "NS":
                members.append(_number(member))
            else:
                members.append(_binary(member))
        except _Bad as bad:
            bad.parts.append(f"[{i}]")
            raise
    # Duplicates are dropped: DynamoDB refuses them on write, so a duplicate only comes from a
    # hand-written record, and 1 and 1.0 are the same member as DynamoDB sees numbers.
    unique = sorted(dict.fromkeys(members))
    if tag == "BS" and text_binary:
        return [base64.b64encode(m).decode("ascii") for m in unique]
    return unique


NUMBER_PATTERN = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
"""A number as text: sign, whole digits, fraction, exponent (a number when it has a digit)."""
EXACT_CONTEXT = Context(prec=200)
"""A Decimal context wide enough that scaling a DynamoDB number (38 digits) loses nothing."""


def decode_number(text: Any) -> int | Decimal:
    """The text of an N AttributeValue as an exact number (int for integer literals); a
    CodecError when it is not text, not a number, or outside what DynamoDB stores."""
    try:
        return _number(text)
    except _Bad as bad:
        raise bad.error(None) from None


def _number(text: Any) -> int | Decimal:
    if type(text) is not str:
        raise _Bad("attribute.value_type",
                   f"N must hold the number as a string, got {_kind(text)} `{text!r}`")
    if len(text) <= MAX_NUMBER_DIGITS and text.isascii() and text.isdigit():
        return int(text)  # the common case: a plain non-negative integer
    match = NUMBER_PATTERN.fullmatch(text)
    if match is None or not (match.group(2) or match.group(3)):
        raise _Bad("attribute.number_format", f"`{text[:80]}` is not a number")
    _, whole, frac, exp = match.groups()
    significant = (whole + (frac or "")).lstrip("0")
    if significant:
        digits = significant.rstrip("0")
        if len(digits) > MAX_NUMBER_DIGITS:
            raise _Bad("attribute.number_digits",
                       f"number `{text[:80]}` has {len(digits)} significant digits; DynamoDB "
                       f"keeps at most {MAX_NUMBER_DIGITS}")
        try:
            exponent = int(exp) if exp else 0
        except ValueError:  # more exponent digits than int() will read
            exponent = MAX_EXPONENT * 10 * (-1 if exp.lstrip("+").startswith("-") else 1)
        head = whole.lstrip("0")
        leading = len(frac or "") - len((frac or "").lstrip("0"))
        adjusted = exponent + len(head) - 1 if head else exponent - leading - 1
        if not MIN_EXPONENT <= adjusted <= MAX_EXPONENT:
            raise _Bad("attribute.number_range",
                       f"number `{text[:80]}` is outside DynamoDB's range: magnitude must be "
                       "between 1E-130 and 9.9999999999999999999999999999999999999E+125")
    if frac is None and exp is None:
        return int(text)
    try:
        return Decimal(text)
    except InvalidOperation:  # a zero with an exponent too large for Decimal: still zero
        return Decimal(0)


def _binary(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if type(value) is not str:
        raise _Bad("attribute.value_type",
                   f"B must hold base64 text (or bytes), got {_kind(value)}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = None
    # Strict: only the one canonical encoding of these bytes (padding, zero trailing bits).
    if raw is None or base64.b64encode(raw).decode("ascii") != value:
        raise _Bad("attribute.base64", f"`{value[:80]}` is not valid (padded, canonical) base64")
    return raw


# --- helpers -------------------------------------------------------------------------------

def av_kind(av: Any) -> str:
    """What `av` is, for messages: `type S` for an AttributeValue, else its Python kind."""
    if isinstance(av, Mapping) and len(av) == 1:
        return f"type {next(iter(av))}"
    return _kind(av)

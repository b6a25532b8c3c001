"""Redaction rules for an export: `--redact PATH` drops a payload field, `--hash PATH` replaces
it by a salted SHA-256, as one DuckDB SQL expression over `event_payload` (no Python per row).

PATH is a dotted path of object keys (`customer.email`); each key goes into DuckDB's JSON path
quoted (`$."customer"."email"`), and the path is a bound parameter, never SQL text. A field the
payload lacks is left alone, as is a JSON `null` to hash (nothing personal to hide). The hash
is `sha256(salt || value)` in lowercase hex, where `value` is the field as text: a string's
own characters, any other JSON value (number, object, array) its compact JSON text. The same
salt gives the same hash, so hashed columns still join across exports.

A payload DuckDB cannot parse as JSON cannot be redacted: the export fails naming the event,
rather than ship the field it was asked to hide. So does a payload where a rule's path runs
through a list (`items.email` with `items` a list, or a payload that is a list): DuckDB's
json_remove/json_replace take no wildcards, so the items' fields would ship.

With any rule, DuckDB re-writes each payload's JSON: integers stay exact (yyjson keeps big ones
as raw text), a number with a fraction or an exponent becomes the nearest double (`1.50` ->
`1.5`, 34 digits -> 17), as `eventlake export --help` says. Kept so: an exact re-write would
apply the rules in Python per row (the payload parsed with decimals) and hash a number's own
text where DuckDB hashes its double's, so hashes would no longer join with earlier exports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from eventlake.errors import ConfigError

SALT_VARIABLE = "EVENTLAKE_EXPORT_SALT"
"""The environment variable `--hash` takes its salt from (the API reads it; never logged)."""


class RedactionError(ConfigError):
    """A redaction rule that cannot be applied (a malformed path, a hash without a salt)."""


@dataclass(frozen=True)
class Rule:
    """Drop (`redact`) or hash (`hash`) the payload field at `path` (dotted keys)."""

    action: Literal["redact", "hash"]
    path: str

    def __post_init__(self) -> None:
        json_path(self.path)  # refuse a malformed path when the rule is made

    @property
    def json_path(self) -> str:
        return json_path(self.path)


def json_path(path: str) -> str:
    """`customer.email` -> `$."customer"."email"`; RedactionError for an empty key or a key
    holding `"` or `\\` (DuckDB's quoted path keys cannot escape them)."""
    keys = path.split(".")
    for key in keys:
        if not key or '"' in key or "\\" in key:
            raise RedactionError(f"the payload path `{path}` is not a dotted path of field "
                                 "names (e.g. `customer.email`; no empty names, no `\"` or "
                                 "`\\`)")
    return "$." + ".".join(f'"{key}"' for key in keys)


def rules(redact: Sequence[str] = (), hash_: Sequence[str] = ()) -> tuple[Rule, ...]:
    """The rules of `--redact` and `--hash`, redactions first; a path named twice is refused
    (dropping and hashing the same field says two things)."""
    out = tuple(Rule("redact", p) for p in redact) + tuple(Rule("hash", p) for p in hash_)
    seen: set[str] = set()
    for rule in out:
        if rule.json_path in seen:
            raise RedactionError(f"the payload path `{rule.path}` is named twice in "
                                 "--redact/--hash: name it once")
        seen.add(rule.json_path)
    return out


def payload_layers(rules_: Sequence[Rule], salt: str | None
                   ) -> tuple[list[str], dict[str, Any]]:
    """The SQL expressions that, applied one after another (each over the previous one's
    `event_payload`: one query layer each, so the SQL grows linearly with the rules), give the
    payload with `rules_` applied; and their parameters (`$redact_path_N`, `$export_salt`).
    Without rules, none: the payload is exported as stored."""
    if not rules_:
        return [], {}
    if any(r.action == "hash" for r in rules_):
        if salt is None:
            raise RedactionError(f"--hash needs a salt: set {SALT_VARIABLE} (a secret string; "
                                 "the same salt gives the same hashes across exports)")
        if not salt:
            raise RedactionError(f"{SALT_VARIABLE} is empty: an empty salt makes the hashes "
                                 "guessable; set it to a secret string")
    params: dict[str, Any] = {}
    layers = [_checked(rules_, params)]
    for n, rule in enumerate(rules_):
        path = f"$redact_path_{n}"
        params[path[1:]] = rule.json_path
        if rule.action == "redact":
            layers.append(f"json_remove(event_payload, {path})")
        else:
            params["export_salt"] = salt
            value = f"json_extract_string(event_payload, {path})"
            layers.append(f"CASE WHEN {value} IS NULL THEN event_payload ELSE json_replace("
                          f"event_payload, {path}, to_json(sha256($export_salt || {value}))) END")
    return layers, params


def _checked(rules_: Sequence[Rule], params: dict[str, Any]) -> str:
    """The payload, or an error naming the event when a rule cannot apply to it: a payload
    that is not JSON, or one where a rule's path runs through a list (the JSON path functions
    that drop or replace a field cannot reach into a list's items, so the field would ship)."""
    fail = ("error('event `' || event_id || '`: {what}; leave the event out of the selection "
            "(--where), or export without that rule')")
    checks = [("NOT json_valid(event_payload)",
               fail.format(what="its payload is not JSON, so --redact/--hash cannot apply "
                                "to it"))]
    for n, rule in enumerate(rules_):
        keys = rule.path.split(".")
        params[f"redact_name_{n}"] = rule.path
        for depth in range(len(keys)):
            where = "json_type(event_payload)"
            at = "the payload''s root"
            if depth:
                params[f"redact_within_{n}_{depth}"] = json_path(".".join(keys[:depth]))
                params[f"redact_within_name_{n}_{depth}"] = ".".join(keys[:depth])
                where = f"json_type(event_payload, $redact_within_{n}_{depth})"
                at = f"`' || $redact_within_name_{n}_{depth} || '`"
            checks.append((f"{where} = 'ARRAY'", fail.format(
                what=f"the payload path `' || $redact_name_{n} || '` runs through a list at "
                     f"{at}, and --redact/--hash cannot reach into the items of a list")))
    whens = " ".join(f"WHEN {condition} THEN {error}" for condition, error in checks)
    return f"CASE {whens} ELSE event_payload END"

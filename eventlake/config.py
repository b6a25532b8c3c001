"""Settings: the one object that holds every knob, read from the environment.

Each field reads one variable (named in its metadata); explicit keyword arguments to
`Settings.from_env` win over the environment. Values are validated once, at start-up, and a bad
one raises `ConfigError` naming the variable and what it expected.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any

from eventlake.errors import ConfigError
from eventlake.logs import lazy_logger

VERSION = "0.1.0"

AWS_CONNECT_TIMEOUT_S = 5
AWS_READ_TIMEOUT_S = 30
LAMBDA_READ_TIMEOUT_S = 900 + 60
"""The Lambda client's read timeout: a synchronous Invoke answers when the function returns,
after up to 900 s (Lambda's longest timeout), plus room for an init phase and the network. At
AWS_READ_TIMEOUT_S, a slower function's Invoke would time out and be sent again while the first
invocation still runs (the replay's `lambda:` target: the same batch twice, then a failure)."""
AWS_MAX_PAUSE_S = 20.0
"""botocore's cap on one pause between attempts (standard and adaptive modes)."""
_RENAMED = {"EVENTLAKE_MAX_ATTEMPTS": "aws_max_attempts"}
"""Variables of earlier versions, still read: old name -> field."""
"""eventlake's version (also `eventlake.__version__`; the lake marker records it)."""

_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_USER_INFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s\"'`]*@")
"""`scheme://user:password@`: everything between `://` and the authority's last `@` (as URL
parsers split it: an unescaped `@` in a password stays hidden too)."""
AWS_RETRY_MODES = ("standard", "adaptive")
"""botocore's retry modes (EVENTLAKE_AWS_RETRY_MODE); not `legacy`, whose pauses have no cap."""
METRICS_BACKENDS = ("off", "cloudwatch")
"""Where the sweep publishes its metrics (EVENTLAKE_METRICS): nowhere, or CloudWatch."""
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _env(name: str) -> dict[str, str]:
    return {"env": name}


_log = lazy_logger("eventlake.config")

@dataclass(frozen=True)
class Settings:
    table: str = field(default="eventlake-events", metadata=_env("EVENTLAKE_TABLE"))
    """DynamoDB table of the hot tier."""

    lake_uri: str = field(default="./eventlake-data", metadata=_env("EVENTLAKE_LAKE_URI"))
    """Root of the cold tier: `s3://bucket/prefix` or a local path."""

    retention_days: float = field(default=30.0, metadata=_env("EVENTLAKE_RETENTION_DAYS"))
    """How long an event stays in DynamoDB before TTL removes it (sets `expires_at`). Recorded on
    the table by `eventlake init`; a process that does not set it uses the table's."""

    ttl_safety_hours: float = field(default=24.0, metadata=_env("EVENTLAKE_TTL_SAFETY_HOURS"))
    """The sweep fails loudly when an unarchived event is this close to its TTL."""

    archive_settle_seconds: float = field(
        default=60.0, metadata=_env("EVENTLAKE_ARCHIVE_SETTLE_SECONDS"))
    """The sweep leaves events ingested in the last N seconds to the stream path. Recorded on
    the table by `eventlake init` (tablesettings.py): a process that does not set it uses the
    table's, one set to another value refuses to run; not changeable on a live table."""

    clock_skew_seconds: float = field(default=600.0, metadata=_env("EVENTLAKE_CLOCK_SKEW_SECONDS"))
    """How far behind the watermark a producer's clock may stamp ingested_at; the sweep,
    events_hot and the TTL guard re-read this much before the watermark. Recorded on the table
    by `eventlake init` like the settle (a writer's retry budget must fit the sweeps'
    look-back); `init` may raise it on a live table, never lower it (tablesettings.py)."""

    clock_correction: bool = field(default=True, metadata=_env("EVENTLAKE_CLOCK_CORRECTION"))
    """Stamp ingested_at with this host's clock corrected by the offset measured from AWS's
    `Date` response headers (applied when 2 s or more); false: the host's clock as it is."""

    index_shards: int = field(default=8, metadata=_env("EVENTLAKE_INDEX_SHARDS"))
    """Write shards per day of the ingestion-time index; readers query all of them. Recorded on
    the table by `eventlake init`; a process that does not set it uses the table's, one set to
    another value refuses to run (tablesettings.py). Readers also query the shards of the
    largest count the lake has seen in force (shardrecord.py), so lowering it hides nothing."""

    put_concurrency: int = field(default=16, metadata=_env("EVENTLAKE_PUT_CONCURRENCY"))
    """Parallel conditional writes in `put_many` (and the HTTP pool size)."""

    aws_retry_mode: str = field(default="standard", metadata=_env("EVENTLAKE_AWS_RETRY_MODE"))
    """botocore's retry mode for every AWS call: `standard`, or `adaptive` (adds client-side
    rate limiting, whose waits no deadline bounds). botocore is the one retry layer (aws.py)."""

    aws_max_attempts: int = field(default=8, metadata=_env("EVENTLAKE_AWS_MAX_ATTEMPTS"))
    """Attempts in total (the first one included) of one AWS call on throttling, 5xx or a
    dropped connection, with botocore's jittered exponential backoff (at most 20 s a pause)."""

    max_request_bytes: int = field(
        default=4 * 1024 * 1024, metadata=_env("EVENTLAKE_MAX_REQUEST_BYTES"))
    """Largest request body the ingest Lambda accepts (413 above it). Lambda's own cap, 6 MiB,
    is on the whole event as JSON: the body is a string in it (its quotes escaped, base64 a
    third longer) next to headers and the request context. A request over that cap is refused
    by AWS before the handler runs (API Gateway answers 5xx, which clients retry), so the
    default leaves a margin: payloads carrying JSON as strings make the event ~1.26x the body
    (5 MiB of them did not fit); a body of mostly quotes or backslashes doubles, and only a
    lower limit lets it through."""

    metrics: str = field(default="off", metadata=_env("EVENTLAKE_METRICS"))
    """`cloudwatch`: the sweep publishes ArchiveLagSeconds and TtlMarginHours (namespace
    `eventlake`, dimension Table) for the template's alarms; `off`: it publishes nothing."""

    region: str = field(default="us-east-1", metadata=_env("AWS_REGION"))
    """AWS region (AWS_REGION, else AWS_DEFAULT_REGION)."""

    endpoint_url: str | None = field(default=None, metadata=_env("AWS_ENDPOINT_URL"))
    """Send every AWS client here (moto, LocalStack); unset means real AWS."""

    def __repr__(self) -> str:
        # A logged Settings must not print the endpoint's password.
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["endpoint_url"] = redact_url(self.endpoint_url)
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in values.items())})"

    def __post_init__(self) -> None:
        # Built directly (not by from_env): what differs from the defaults was chosen.
        object.__setattr__(self, "_explicit", frozenset(
            f.name for f in fields(self) if getattr(self, f.name) != f.default))

        def bad(name: str, value: object, expected: str) -> ConfigError:
            var = self.env_name(name)
            shown = redact(value) if isinstance(value, str) else value
            return ConfigError(f"{var}={shown!r} is not valid: expected {expected}")

        # Types first: explicit arguments bypass `_coerce`, and a comparison with a wrong type
        # would raise TypeError instead of naming the variable.
        for f in fields(self):
            value = getattr(self, f.name)
            expected = _type_problem(str(f.type), value)
            if expected:
                raise bad(f.name, value, expected)
        if not isinstance(self.table, str) or not _TABLE_NAME.fullmatch(self.table):
            raise bad("table", self.table,
                      "a DynamoDB table name: 3-255 of letters, digits, `_`, `-`, `.`")
        if not self.lake_uri:
            raise bad("lake_uri", self.lake_uri, "`s3://bucket/prefix` or a local path")
        if self.lake_uri.startswith("s3://") and not self.lake_uri[5:].split("/")[0]:
            raise bad("lake_uri", self.lake_uri, "`s3://bucket/prefix` with a bucket name")
        if "://" in self.lake_uri and not self.lake_uri.startswith(("s3://", "file://")):
            raise bad("lake_uri", self.lake_uri, "an `s3://` URI or a local path")
        if self.lake_uri.lower().startswith("s3:") and not self.lake_uri.startswith("s3://"):
            raise bad("lake_uri", self.lake_uri, "`s3://bucket/prefix` (two slashes; a local "
                                                 "folder named `s3:` is not a lake)")
        if not self.retention_days > 0:
            raise bad("retention_days", self.retention_days, "a number of days > 0")
        if not self.ttl_safety_hours >= 0:
            raise bad("ttl_safety_hours", self.ttl_safety_hours, "a number of hours >= 0")
        if self.ttl_safety_hours >= self.retention_days * 24:
            raise bad("ttl_safety_hours", self.ttl_safety_hours,
                      f"fewer hours than the retention ({self.retention_days * 24:g} h)")
        if not self.archive_settle_seconds >= 0:
            raise bad("archive_settle_seconds", self.archive_settle_seconds, "seconds >= 0")
        if not self.clock_skew_seconds >= 0:
            raise bad("clock_skew_seconds", self.clock_skew_seconds, "seconds >= 0")
        if not 1 <= self.index_shards <= 100:
            raise bad("index_shards", self.index_shards, "an integer from 1 to 100")
        if not 1 <= self.put_concurrency <= 256:
            raise bad("put_concurrency", self.put_concurrency, "an integer from 1 to 256")
        if self.aws_retry_mode not in AWS_RETRY_MODES:
            raise bad("aws_retry_mode", self.aws_retry_mode,
                      " or ".join(f"`{m}`" for m in AWS_RETRY_MODES))
        if not 1 <= self.aws_max_attempts <= 50:
            raise bad("aws_max_attempts", self.aws_max_attempts, "an integer from 1 to 50")
        if self.metrics not in METRICS_BACKENDS:
            raise bad("metrics", self.metrics, " or ".join(f"`{m}`" for m in METRICS_BACKENDS))
        if self.max_request_bytes < 1024:
            raise bad("max_request_bytes", self.max_request_bytes, "bytes >= 1024")
        if self.endpoint_url is not None and not self.endpoint_url.startswith(
                ("http://", "https://")):
            raise bad("endpoint_url", self.endpoint_url, "an http:// or https:// URL")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `env` (default: the process environment), then `overrides`."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = f.metadata["env"]
            raw = env.get(var)
            if f.name == "region" and not raw:
                raw = env.get("AWS_DEFAULT_REGION")
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = _coerce(var, raw.strip(), f.type)
        for old, name in _RENAMED.items():
            raw = (env.get(old) or "").strip()
            if not raw:
                continue
            new = env_name_of(name)
            value = _coerce(old, raw, "int")
            if name in values and values[name] != value:
                raise ConfigError(f"{old}={raw} and {new}={values[name]} disagree: {old} is "
                                  f"the old name of {new}; set only {new}")
            if name not in values:
                _log.warning("%s is the old name of %s (attempts in total, botocore's "
                             "retries included): reading %s=%s; rename it", old, new, old, raw)
                values[name] = value
        overrides = _renamed_keywords(overrides)
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        types = {f.name: str(f.type) for f in fields(cls)}
        env_names = {f.name: f.metadata["env"] for f in fields(cls)}
        for name, value in overrides.items():
            if value is None:
                continue
            if isinstance(value, str) and types[name] in ("int", "float", "bool"):
                value = _coerce(env_names[name], value.strip(), types[name])
            values[name] = value
        settings = cls(**values)
        object.__setattr__(settings, "_explicit", frozenset(values))
        return settings

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        settings = replace(self, **changes)
        object.__setattr__(settings, "_explicit", self.explicit | frozenset(changes))
        return settings

    @property
    def explicit(self) -> frozenset[str]:
        """Names of the fields that were set (by a variable or an argument), not defaulted:
        a process can tell "configured to the default" from "never configured"."""
        explicit: frozenset[str] = getattr(self, "_explicit", frozenset())
        return explicit

    def env_name(self, name: str) -> str:
        """The environment variable of field `name` (e.g. `EVENTLAKE_TABLE`)."""
        return env_name_of(name)

    @property
    def retention_seconds(self) -> int:
        return int(self.retention_days * 86400)

    @property
    def write_retry_seconds(self) -> float:
        """How long a write keeps retrying. `ingested_at` is stamped before the first attempt,
        so a write that lands later than the sweep re-reads behind its watermark (clock skew
        + settle) would be behind every sweep window: retries stop in time for the last
        attempt (connect + read timeout) to end within that look-back. The store uses the
        table's values (`HotStore.table_settings`), the sweeps' look-back, not the process's."""
        return max(0.0, self.clock_skew_seconds + self.archive_settle_seconds
                   - AWS_CONNECT_TIMEOUT_S - AWS_READ_TIMEOUT_S)

    @property
    def clock_skew(self) -> timedelta:
        return timedelta(seconds=self.clock_skew_seconds)


def _type_problem(kind: str, value: object) -> str | None:
    """What `value` should have been for a field annotated `kind`, or None when it fits."""
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "an integer"
    if kind == "float":
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value))
        return None if ok else "a finite number"
    if kind == "bool":
        return None if isinstance(value, bool) else "true or false"
    if kind == "str":
        return None if isinstance(value, str) else "a string"
    if kind == "str | None":
        return None if value is None or isinstance(value, str) else "a string"
    return None


def _coerce(var: str, raw: str, type_name: object) -> Any:
    kind = str(type_name)
    if kind == "bool":
        if raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        raise ConfigError(f"{var}={raw!r} is not valid: expected true or false")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
    except ValueError:
        expected = "an integer" if kind == "int" else "a number"
        raise ConfigError(f"{var}={raw!r} is not valid: expected {expected}") from None
    return raw


def redact_url(url: str | None) -> str | None:
    """`url` with its user info (user and password) shown as `***`; the rest kept. For every
    endpoint URL that is printed, logged or put in an error."""
    return None if url is None else redact(url)


def redact(text: str) -> str:
    """`text` with the user info of every URL in it shown as `***` (botocore and pyarrow put
    the endpoint URL in their error messages, password included)."""
    return _USER_INFO.sub(r"\1***@", text)


def env_name_of(name: str) -> str:
    """The environment variable of Settings field `name`."""
    return str(next(f.metadata["env"] for f in fields(Settings) if f.name == name))


_RENAMED_KEYWORDS = {"max_attempts": "aws_max_attempts"}
"""Settings keywords of earlier versions, still taken: old name -> field."""


def _renamed_keywords(overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` with the keywords of earlier versions renamed (a WARNING says so); both
    names given with different values: ConfigError."""
    out = dict(overrides)
    for old, name in _RENAMED_KEYWORDS.items():
        if old not in out:
            continue
        value = out.pop(old)
        if out.get(name) is not None and value is not None and out[name] != value:
            raise ConfigError(f"{old}={value!r} and {name}={out[name]!r} disagree: {old} is "
                              f"the old name of {name}; give only {name}")
        _log.warning("setting `%s` is the old name of `%s` (attempts in total, botocore's "
                     "retries included); rename it", old, name)
        out.setdefault(name, value)
    return out

"""Settings: one object, read from EVENTLAKE_* / AWS_* variables, overridden by arguments."""

from __future__ import annotations

from typing import Any

import pytest

from eventlake.config import Settings, redact, redact_url
from eventlake.errors import ConfigError


@pytest.mark.parametrize(("var", "raw", "field", "value"), [
    ("EVENTLAKE_TABLE", "orders-events", "table", "orders-events"),
    ("EVENTLAKE_LAKE_URI", "s3://acme-lake/events", "lake_uri", "s3://acme-lake/events"),
    ("EVENTLAKE_RETENTION_DAYS", "7.5", "retention_days", 7.5),
    ("EVENTLAKE_TTL_SAFETY_HOURS", "12", "ttl_safety_hours", 12.0),
    ("EVENTLAKE_ARCHIVE_SETTLE_SECONDS", "90", "archive_settle_seconds", 90.0),
    ("EVENTLAKE_CLOCK_SKEW_SECONDS", "300", "clock_skew_seconds", 300.0),
    ("EVENTLAKE_CLOCK_CORRECTION", "false", "clock_correction", False),
    ("EVENTLAKE_CLOCK_CORRECTION", "No", "clock_correction", False),
    ("EVENTLAKE_CLOCK_CORRECTION", "1", "clock_correction", True),
    ("EVENTLAKE_INDEX_SHARDS", "16", "index_shards", 16),
    ("EVENTLAKE_PUT_CONCURRENCY", "32", "put_concurrency", 32),
    ("EVENTLAKE_AWS_MAX_ATTEMPTS", "3", "aws_max_attempts", 3),
    ("EVENTLAKE_AWS_RETRY_MODE", "adaptive", "aws_retry_mode", "adaptive"),
    ("EVENTLAKE_MAX_REQUEST_BYTES", "1048576", "max_request_bytes", 1048576),
    ("AWS_REGION", "eu-west-1", "region", "eu-west-1"),
    ("AWS_DEFAULT_REGION", "ap-southeast-2", "region", "ap-southeast-2"),
    ("AWS_ENDPOINT_URL", "http://localhost:4566", "endpoint_url", "http://localhost:4566"),
])
def test_each_variable_sets_its_field(monkeypatch: pytest.MonkeyPatch, var: str, raw: str,
                                      field: str, value: Any) -> None:
    # given one variable set in the environment
    monkeypatch.setenv(var, raw)
    # when settings are read
    settings = Settings.from_env()
    # then its field has the typed value
    assert getattr(settings, field) == value
    assert type(getattr(settings, field)) is type(value)


def test_defaults_apply_when_nothing_is_set() -> None:
    settings = Settings.from_env()
    assert settings == Settings()
    assert settings.table == "eventlake-events"
    assert settings.retention_days == 30.0
    assert settings.endpoint_url is None


def test_a_blank_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLAKE_INDEX_SHARDS", "  ")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    assert Settings.from_env() == Settings()


def test_surrounding_spaces_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLAKE_INDEX_SHARDS", " 4 ")
    assert Settings.from_env().index_shards == 4


def test_aws_region_beats_aws_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert Settings.from_env().region == "eu-central-1"


def test_an_explicit_environment_mapping_replaces_the_process_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLAKE_TABLE", "from-process")
    settings = Settings.from_env({"EVENTLAKE_TABLE": "from-mapping"})
    assert settings.table == "from-mapping"
    assert settings.region == "us-east-1"


def test_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # given variables in the environment
    monkeypatch.setenv("EVENTLAKE_TABLE", "from-env")
    monkeypatch.setenv("EVENTLAKE_RETENTION_DAYS", "7")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    # when some settings are passed explicitly
    settings = Settings.from_env(table="from-arg", retention_days=14, region=None)
    # then the arguments win, and a None argument leaves the environment's value
    assert settings.table == "from-arg"
    assert settings.retention_days == 14
    assert settings.region == "eu-west-1"


def test_a_numeric_override_given_as_text_is_read_like_the_variable() -> None:
    assert Settings.from_env(index_shards="12").index_shards == 12
    with pytest.raises(ConfigError, match="EVENTLAKE_INDEX_SHARDS='twelve'"):
        Settings.from_env(index_shards="twelve")


@pytest.mark.parametrize(("var", "raw"), [
    ("EVENTLAKE_RETENTION_DAYS", "abc"),
    ("EVENTLAKE_RETENTION_DAYS", "0"),
    ("EVENTLAKE_RETENTION_DAYS", "nan"),
    ("EVENTLAKE_RETENTION_DAYS", "inf"),
    ("EVENTLAKE_TTL_SAFETY_HOURS", "-1"),
    ("EVENTLAKE_TTL_SAFETY_HOURS", "720"),
    ("EVENTLAKE_ARCHIVE_SETTLE_SECONDS", "-5"),
    ("EVENTLAKE_CLOCK_SKEW_SECONDS", "-1"),
    ("EVENTLAKE_CLOCK_CORRECTION", "maybe"),
    ("EVENTLAKE_INDEX_SHARDS", "0"),
    ("EVENTLAKE_INDEX_SHARDS", "101"),
    ("EVENTLAKE_INDEX_SHARDS", "8.0"),
    ("EVENTLAKE_PUT_CONCURRENCY", "257"),
    ("EVENTLAKE_AWS_MAX_ATTEMPTS", "0"),
    ("EVENTLAKE_AWS_MAX_ATTEMPTS", "51"),
    ("EVENTLAKE_AWS_RETRY_MODE", "forever"),
    ("EVENTLAKE_MAX_REQUEST_BYTES", "100"),
    ("EVENTLAKE_TABLE", "t" * 256),
    ("EVENTLAKE_LAKE_URI", "s3:///no-bucket"),
    ("EVENTLAKE_LAKE_URI", "https://example.com/lake"),
    ("AWS_ENDPOINT_URL", "localhost:4566"),
])
def test_a_bad_value_raises_config_error_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, var: str, raw: str) -> None:
    monkeypatch.setenv(var, raw)
    with pytest.raises(ConfigError) as info:
        Settings.from_env()
    assert var in str(info.value)
    assert "expected" in str(info.value)


@pytest.mark.parametrize(("override", "var"), [
    ({"retention_days": "abc"}, "EVENTLAKE_RETENTION_DAYS"),
    ({"retention_days": float("inf")}, "EVENTLAKE_RETENTION_DAYS"),
    ({"index_shards": 2.5}, "EVENTLAKE_INDEX_SHARDS"),
    ({"put_concurrency": True}, "EVENTLAKE_PUT_CONCURRENCY"),
    ({"table": 42}, "EVENTLAKE_TABLE"),
    ({"endpoint_url": 4566}, "AWS_ENDPOINT_URL"),
    ({"clock_correction": "sometimes"}, "EVENTLAKE_CLOCK_CORRECTION"),
    ({"clock_correction": 1}, "EVENTLAKE_CLOCK_CORRECTION"),
])
def test_a_bad_override_raises_config_error_naming_the_variable(
        override: dict[str, Any], var: str) -> None:
    with pytest.raises(ConfigError, match=var):
        Settings.from_env(**override)


def test_a_bad_value_given_to_the_constructor_is_refused_too() -> None:
    with pytest.raises(ConfigError, match="EVENTLAKE_AWS_MAX_ATTEMPTS"):
        Settings(aws_max_attempts="3")  # type: ignore[arg-type]


def test_an_unknown_override_is_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match="retention_dayz"):
        Settings.from_env(retention_dayz=7)


def test_a_changed_copy_is_validated_again() -> None:
    settings = Settings.from_env()
    assert settings.with_(index_shards=4).index_shards == 4
    assert settings.index_shards == 8
    with pytest.raises(ConfigError, match="EVENTLAKE_INDEX_SHARDS"):
        settings.with_(index_shards=0)


def test_retention_is_also_available_in_seconds() -> None:
    assert Settings.from_env(retention_days=2).retention_seconds == 172_800
    assert Settings.from_env(retention_days=1.5, ttl_safety_hours=1).retention_seconds == 129_600


def test_explicit_names_the_settings_that_were_set_not_the_defaults() -> None:
    settings = Settings.from_env({"EVENTLAKE_TABLE": "orders"}, index_shards=16)
    assert settings.explicit == {"table", "index_shards"}
    assert settings.with_(retention_days=7.0).explicit == {"table", "index_shards",
                                                           "retention_days"}
    assert Settings.from_env({}).explicit == frozenset()
    assert Settings(table="orders").explicit == {"table"}
    assert settings.env_name("index_shards") == "EVENTLAKE_INDEX_SHARDS"


@pytest.mark.parametrize(("url", "shown"), [
    ("http://user:secret@127.0.0.1:4566", "http://***@127.0.0.1:4566"),
    ("https://token@localstack.example:443/path?x=1", "https://***@localstack.example:443/path?x=1"),
    ("http://user:p%40ss@[::1]:4566/", "http://***@[::1]:4566/"),
    ("http://user:p@ss@host:4566", "http://***@host:4566"),
    ("http://127.0.0.1:4566", "http://127.0.0.1:4566"),
    (None, None),
])
def test_redact_url_hides_user_and_password_and_keeps_the_rest(
        url: str | None, shown: str | None) -> None:
    assert redact_url(url) == shown


def test_redact_hides_credentials_of_every_url_in_a_message() -> None:
    message = ('Could not connect to the endpoint URL: "http://user:secret@127.0.0.1:1/"; '
               "also tried https://a:b@host/x and s3://bucket/key")
    assert redact(message) == ('Could not connect to the endpoint URL: "http://***@127.0.0.1:1/"; '
                               "also tried https://***@host/x and s3://bucket/key")


def test_a_bad_endpoint_is_refused_without_printing_its_password() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"AWS_ENDPOINT_URL": "ftp://user:secret@host:21"})
    assert "AWS_ENDPOINT_URL" in str(info.value)
    assert "secret" not in str(info.value) and "ftp://***@host:21" in str(info.value)


def test_the_settings_repr_hides_the_endpoint_password() -> None:
    settings = Settings.from_env({"AWS_ENDPOINT_URL": "http://user:secret@127.0.0.1:4566"})
    assert settings.endpoint_url == "http://user:secret@127.0.0.1:4566"  # the clients need it
    assert "secret" not in repr(settings) and "http://***@127.0.0.1:4566" in repr(settings)


# -- retries against the sweep's look-back ---------------------------------------------------

def test_a_write_retries_for_the_sweeps_look_back_less_one_attempt() -> None:
    # ingested_at is stamped before the first attempt: retries stop in time for the last
    # attempt (5 s connect + 30 s read) to land within clock skew + settle
    assert Settings().write_retry_seconds == 600 + 60 - 35
    assert Settings(clock_skew_seconds=0, archive_settle_seconds=10).write_retry_seconds == 0
    # any number of attempts is accepted: the budget bounds them, not a start-up refusal
    assert Settings(aws_max_attempts=50, clock_skew_seconds=0).aws_max_attempts == 50


def test_legacy_retries_are_refused_for_their_uncapped_pauses() -> None:
    with pytest.raises(ConfigError, match="EVENTLAKE_AWS_RETRY_MODE='legacy'"):
        Settings.from_env({"EVENTLAKE_AWS_RETRY_MODE": "legacy"})


def test_the_old_attempts_keyword_is_still_taken(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="eventlake.config"):
        assert Settings.from_env({}, max_attempts=5).aws_max_attempts == 5
    assert "`max_attempts` is the old name of `aws_max_attempts`" in caplog.text
    with pytest.raises(ConfigError, match="disagree"):
        Settings.from_env({}, max_attempts=5, aws_max_attempts=6)


def test_the_old_attempts_variable_is_still_read_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="eventlake.config"):
        settings = Settings.from_env({"EVENTLAKE_MAX_ATTEMPTS": "5"})
    assert settings.aws_max_attempts == 5
    assert "EVENTLAKE_MAX_ATTEMPTS is the old name of EVENTLAKE_AWS_MAX_ATTEMPTS" in caplog.text
    # both set to the same value: fine; to different values: refused, naming both
    assert Settings.from_env({"EVENTLAKE_MAX_ATTEMPTS": "5",
                              "EVENTLAKE_AWS_MAX_ATTEMPTS": "5"}).aws_max_attempts == 5
    with pytest.raises(ConfigError, match="EVENTLAKE_MAX_ATTEMPTS=5 and "
                                          "EVENTLAKE_AWS_MAX_ATTEMPTS=6 disagree"):
        Settings.from_env({"EVENTLAKE_MAX_ATTEMPTS": "5", "EVENTLAKE_AWS_MAX_ATTEMPTS": "6"})
    with pytest.raises(ConfigError, match="EVENTLAKE_MAX_ATTEMPTS"):
        Settings.from_env({"EVENTLAKE_MAX_ATTEMPTS": "many"})

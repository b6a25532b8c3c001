"""logs.lazy_logger: the real logger, fetched on use (levels, handlers, caplog all see it)."""

from __future__ import annotations

import logging

import pytest

from eventlake.logs import lazy_logger


def test_a_lazy_logger_logs_through_the_logger_of_its_name(caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    log = lazy_logger("eventlake.test_logs")
    with caplog.at_level(logging.WARNING, logger="eventlake.test_logs"):
        log.info("not at this level")
        log.warning("dt=%s: %d file(s)", "2026-11-30", 3)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("eventlake.test_logs", logging.WARNING, "dt=2026-11-30: 3 file(s)")]
    assert log.isEnabledFor(logging.WARNING) and not log.isEnabledFor(logging.INFO)


def test_a_lazy_logger_follows_its_logger_configured_after_it_was_made() -> None:
    log = lazy_logger("eventlake.test_logs.later")
    logging.getLogger("eventlake.test_logs.later").setLevel(logging.ERROR)
    try:
        assert not log.isEnabledFor(logging.WARNING)
        assert log.getEffectiveLevel() == logging.ERROR
    finally:
        logging.getLogger("eventlake.test_logs.later").setLevel(logging.NOTSET)

"""Quarantine file names, in the cases mutation testing found unchecked (mutants35): they are
the stream's two name forms, carry the records' range numerically, and are stable across
releases (a batch re-delivered after a deploy must rewrite its own file, not add a second)."""

from __future__ import annotations

from eventlake.archive.streamfiles import name_range, quarantine_name


def test_records_all_with_sequence_numbers_name_their_numeric_range() -> None:
    name = quarantine_name(["9", "10"], ["a", "b"])

    assert name == "stream-9-10-7e18f737311b"  # pinned: a re-delivery finds this very file
    assert name_range(f"{name}.parquet") == (9, 10)


def test_records_without_a_sequence_number_are_named_by_content() -> None:
    some = quarantine_name(["9", None], ["a", "b"])
    none = quarantine_name([None, None], ["a", "b"])

    assert some == none == "stream-x7e18f737311b2dc3b2f269dd"
    assert name_range(f"{some}.parquet") is None

"""The one aligned text table (`eventlake sql`, the demo and the benchmarks print through it)."""

from __future__ import annotations

from eventlake.query.table import aligned, cut, display_width


def test_columns_align_under_a_rule_numbers_to_the_right() -> None:
    lines = list(aligned(["name", "n"], [["a", "1"], ["long name", "234"]], [False, True]))

    assert lines == ["name         n",
                     "---------  ---",
                     "a            1",
                     "long name  234"]


def test_wide_characters_take_two_columns_and_trailing_spaces_are_dropped() -> None:
    lines = list(aligned(["city", "x"], [["東京", ""], ["Oslo", "y"]], rule=False))

    assert lines == ["city  x", "東京", "Oslo  y"]
    assert display_width("東京") == 4 and display_width("e\u0301") == 1


def test_a_table_without_columns_prints_only_its_rows() -> None:
    assert list(aligned([], [[], []])) == ["", ""]


def test_cut_ends_with_an_ellipsis_within_the_width() -> None:
    assert cut("abcdef", 4) == "abc…"
    assert cut("東京タワー", 5) == "東京…"

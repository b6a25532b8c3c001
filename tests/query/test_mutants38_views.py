"""Which partitions a connection reads by pattern, the choice mutation testing found unchecked
(mutants38, docs/mutation-testing.md): a lone file is read bare by its listed path, so a copy
written beside it later is not read bare too (counted twice); a day of two unverified files is
read by pattern, so compaction under a long-lived connection does not break it."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventlake.config import Settings
from eventlake.lake.compact import compact
from eventlake.lake.store import Lake
from tests.query.test_disjoint_reads import con_of, event, rows, write


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(Settings(lake_uri=str(tmp_path / "lake")))


def test_a_copy_written_beside_a_lone_file_after_connecting_is_not_counted_twice(
        lake: Lake) -> None:
    # given a day of one stream file, and a connection of DuckDB's reader made over it
    write(lake, [event(n) for n in range(3)], "stream-000000-000000-d00")
    con = con_of(lake, "duckdb")
    before = rows(con)
    # when the stream re-delivers event 1 into a second file of that day
    write(lake, [event(1, late=1), event(7)], "stream-000001-000001-d01")
    # then the connection still reads the file it listed, alone: event 1 once
    assert rows(con) == before
    assert [r[0] for r in rows(con)].count(event(1)["event_id"]) == 1


def test_a_connection_keeps_reading_a_day_of_two_unverified_files_while_it_is_compacted(
        lake: Lake) -> None:
    # given a day of two unverified files sharing event 1, and a connection made over them
    write(lake, [event(n) for n in range(3)], "stream-000000-000000-d00")
    write(lake, [event(1, late=1), event(3)], "stream-000001-000001-d01")
    con = con_of(lake, "duckdb")
    before = rows(con)
    # when compaction merges them into one file and deletes the two it listed
    compact(lake, min_files=2)
    assert len(lake.list_files()) == 1
    # then the connection reads the day by its pattern: the same events, each once
    assert rows(con) == before
    assert len(before) == 4

"""Reading what an engine run left: its artifacts. (The engine itself, `prefect_server`, is
one per session, in tests/conftest.py.)"""

from __future__ import annotations

from prefect.artifacts import Artifact


def artifact(key: str) -> tuple[dict[str, str], str]:
    """The latest artifact `key` of the engine: its table's rows (name -> value), and the
    whole markdown."""
    found = Artifact.get(key)
    assert found is not None, f"no artifact `{key}`"
    markdown = str(found.data)
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 2 and cells[0]:
            rows[cells[0]] = cells[1]
    return rows, markdown

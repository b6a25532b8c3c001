"""The one aligned text table: each column as wide as its widest cell reads on a terminal (a
wide East Asian character takes two columns, a combining mark none), two spaces between
columns, numbers right-aligned, a rule of dashes under the header. `eventlake sql`'s table
format (`format`), the demo's tables and the benchmarks' print through it; how a value reads as
a cell is the caller's business."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any


def aligned(header: Sequence[str], rows: Sequence[Sequence[str]],
            right: Sequence[bool] | None = None, *, rule: bool = True) -> Iterator[str]:
    """The table's lines, without line ends: the header (none when it has no columns), the
    rule under it (`rule`), then the rows. `right[i]` right-aligns column i (default: none).
    Trailing spaces are dropped from the header and the rows."""
    right = right if right is not None else [False] * len(header)
    widths = [max([display_width(h), *(display_width(r[i]) for r in rows)])
              for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        padded = (_pad(c, w, r) for c, w, r in zip(cells, widths, right, strict=True))
        return "  ".join(padded).rstrip()

    if header:
        yield line(header)
        if rule:
            yield "  ".join("-" * w for w in widths)
    for cells in rows:
        yield line(cells)


def is_number(arrow_type: Any) -> bool:
    """Whether a column of this Arrow type is right-aligned: integers, floats, decimals."""
    import pyarrow as pa

    return bool(pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)
                or pa.types.is_decimal(arrow_type))


def display_width(cell: str) -> int:
    """Columns a terminal gives `cell`: wide East Asian characters take two, combining none."""
    if cell.isascii():
        return len(cell)
    return sum(_char_width(c) for c in cell)


def cut(cell: str, max_width: int) -> str:
    """`cell` cut to `max_width` terminal columns, the last one `…`."""
    used, out = 0, []
    for char in cell:
        w = _char_width(char)
        if used + w > max_width - 1:
            break
        out.append(char)
        used += w
    return "".join(out) + "…"


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _pad(cell: str, width: int, right: bool) -> str:
    fill = " " * (width - display_width(cell))
    return fill + cell if right else cell + fill


__all__ = ["aligned", "cut", "display_width", "is_number"]

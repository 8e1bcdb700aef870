"""Small-cell suppression of the counts a catalogue publishes.

A count between 1 and ``min_cell - 1`` never leaves the site (primary suppression). Where the
withheld cell could be worked out from the others and a published total (one withheld cell
in a table), the next smallest cell is withheld too (secondary suppression). Zeros are
published: they say that a value does not occur, not who has it.
"""

from __future__ import annotations

from collections.abc import Sequence


def small(n: int, min_cell: int) -> bool:
    """Whether ``n`` is a small cell: ``0 < n < min_cell``."""
    return 0 < n < min_cell


def withhold(n: int, min_cell: int) -> int | None:
    """``n``, or ``None`` when it is a small cell.

    Parameters
    ----------
    n : int
        A count of patients or values.
    min_cell : int
        The site policy's minimum cell count.
    """
    return None if small(n, min_cell) else n


def withhold_part(n: int, total: int, min_cell: int) -> int | None:
    """A count of a published total, withheld when it or its complement is a small cell.

    ``24`` patients with a value out of ``25`` would tell that one patient has none.

    Parameters
    ----------
    n : int
        The part.
    total : int
        The published total it is part of.
    min_cell : int
        The minimum cell count.
    """
    return None if small(n, min_cell) or small(total - n, min_cell) else n


def suppress_cells(counts: Sequence[int], min_cell: int) -> list[int | None]:
    """Counts of one table with small cells withheld, and the next smallest when needed.

    Parameters
    ----------
    counts : sequence of int
        The cells of a frequency table (histogram bins, answer counts) whose total may be
        known.
    min_cell : int
        The minimum cell count.

    Returns
    -------
    list of int or None
        The cells, ``None`` where withheld.
    """
    out: list[int | None] = [withhold(n, min_cell) for n in counts]
    if sum(c is None for c in out) == 1:
        shown = [(n, i) for i, n in enumerate(counts) if out[i] is not None and n > 0]
        if shown:
            out[min(shown)[1]] = None
    return out

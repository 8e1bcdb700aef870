"""Small-cell suppression rules."""

from __future__ import annotations

from cardiobox.catalogue.suppress import small, suppress_cells, withhold, withhold_part


def test_primary_suppression() -> None:
    assert [withhold(n, 10) for n in (0, 1, 9, 10, 11)] == [0, None, None, 10, 11]
    assert not small(0, 10) and small(9, 10) and not small(10, 10)


def test_complement_of_a_published_total() -> None:
    assert withhold_part(24, 25, 10) is None  # one left over: a small cell
    assert withhold_part(15, 25, 10) == 15
    assert withhold_part(25, 25, 10) == 25  # nothing left over
    assert withhold_part(3, 25, 10) is None


def test_secondary_suppression_hides_the_next_smallest_cell() -> None:
    assert suppress_cells([40, 3, 25, 0], 10) == [40, None, None, 0]
    assert suppress_cells([40, 3, 2, 25], 10) == [40, None, None, 25]  # two withheld: enough
    assert suppress_cells([40, 30], 10) == [40, 30]
    assert suppress_cells([5], 10) == [None]
    assert suppress_cells([], 10) == []

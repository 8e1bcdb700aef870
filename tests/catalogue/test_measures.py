"""Coarse public histograms regrouped from the quality report's fine bins."""

from __future__ import annotations

from cardiobox.catalogue.measures import coarse_histogram
from cardiobox.cdm.dictionary import load_dictionary
from cardiobox.quality.distributions import bins_for


def _fine(variable: str, log: bool, values: list[float]) -> dict[str, object]:
    """A quality-style histogram of ``values`` (edges trimmed to the non-empty bins)."""
    b = bins_for(load_dictionary()[variable], log)
    assert b is not None
    counts = [0] * b.n
    below = above = 0
    for x in values:
        if x < b.lo:
            below += 1
        elif x > b.hi:
            above += 1
        else:
            i = next(k for k in range(b.n) if x < b.edges[k + 1] or k == b.n - 1)
            counts[i] += 1
    inside = [i for i, c in enumerate(counts) if c]
    first, last = inside[0], inside[-1]
    return {
        "edges": list(b.edges[first : last + 2]),
        "counts": counts[first : last + 1],
        "below": below,
        "above": above,
    }


def test_linear_bins_merge_into_round_bins() -> None:
    v = load_dictionary()["lvef"]
    values = [12.0, 25.0, 27.5, 33.0, 61.0]
    bins = coarse_histogram(v, False, _fine("lvef", False, values))
    assert [(b.lower, b.upper, b.count) for b in bins] == [
        (10.0, 20.0, 1), (20.0, 30.0, 2), (30.0, 40.0, 1), (40.0, 50.0, 0), (50.0, 60.0, 0),
        (60.0, 70.0, 1),
    ]  # fmt: skip


def test_log_bins_merge_into_decades_and_keep_out_of_range_values() -> None:
    v = load_dictionary()["nt_probnp"]
    assert v.range is not None
    values = [150.0, 2000.0, 3000.0, 45000.0, v.range[1] * 10]
    bins = coarse_histogram(v, True, _fine("nt_probnp", True, values))
    assert (bins[-1].lower, bins[-1].upper, bins[-1].count) == (v.range[1], None, 1)
    inside = [(b.lower, b.upper, b.count) for b in bins[:-1]]
    assert inside == [(100.0, 1000.0, 1), (1000.0, 10000.0, 2), (10000.0, 100000.0, 1)]


def test_no_histogram_without_bins() -> None:
    assert coarse_histogram(load_dictionary()["lvef"], False, None) == []

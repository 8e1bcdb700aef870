from __future__ import annotations

import json

import numpy as np
import pytest

from cardiobox.synth.compress import (
    Compression,
    CompressionError,
    compress_domain,
)
from cardiobox.synth.marginals import Measurement, marginal

SIGMA = 2.0  # 3σ = 6


def one_way(column: int, values: list[float], sigma: float = SIGMA) -> Measurement:
    return Measurement((column,), np.array(values, dtype=np.float64), sigma)


def test_rare_merges_every_code_below_three_sigma_into_one_bucket() -> None:
    m = one_way(0, [50.0, 1.0, 30.0, -3.0, 4.0, 0.5])
    compression, (merged,) = compress_domain([6], [m], merge="rare")
    # Codes 0 and 2 stay apart; codes 1, 3, 4, 5 (below 6) form the last group.
    np.testing.assert_array_equal(compression.groups[0], [0, 2, 1, 2, 2, 2])
    assert compression.compressed_sizes == (3,) and compression.sizes == (6,)
    # Shares ∝ non-negative noisy counts: 1, 0, 4, 0.5 of 5.5.
    np.testing.assert_allclose(compression.shares[0], [1, 1 / 5.5, 1, 0, 4 / 5.5, 0.5 / 5.5])
    # The merged cell is the sum of its members' noisy counts, with the noise of a sum.
    np.testing.assert_allclose(merged.values, [50.0, 30.0, 2.5])
    np.testing.assert_allclose(merged.sigma, [SIGMA, SIGMA, SIGMA * 2.0])


def test_adjacent_cuts_runs_of_rare_codes_where_they_reach_three_sigma() -> None:
    m = one_way(0, [2.0, 3.0, 40.0, 1.0, 2.0, 4.0, 20.0, 0.0, -1.0])
    compression, (merged,) = compress_domain([9], [m], merge="adjacent")
    # 40 and 20 (≥ 6) stay alone; the run {3, 4, 5} reaches 7; the ends of runs that never
    # reach 6, {0, 1} (5, a sign of rows) and {7, 8} (-1), are groups of their own.
    np.testing.assert_array_equal(compression.groups[0], [0, 0, 1, 2, 2, 2, 3, 4, 4])
    np.testing.assert_allclose(merged.values, [5.0, 40.0, 7.0, 20.0, -1.0])
    root2, root3 = np.sqrt(2.0), np.sqrt(3.0)
    np.testing.assert_allclose(merged.sigma, SIGMA * np.array([root2, 1, root3, 1, root2]))
    np.testing.assert_allclose(compression.shares[0][:2], [0.4, 0.6])
    np.testing.assert_allclose(compression.shares[0][7:], [0.5, 0.5])  # none positive


def test_adjacent_pools_the_leftovers_that_look_empty() -> None:
    values = [0.5, -1.0, 40.0, 30.0, 0.2, 1.0, 50.0, -0.5, 0.0, 2.0, 4.0, 1.0]
    compression, (merged,) = compress_domain([12], [one_way(0, values)], merge="adjacent")
    # {0, 1} (-0.5) and {4, 5} (1.2) are within one σ·sqrt(2) of zero: one bucket; the run
    # {7, ..., 11} reaches 6.5.
    np.testing.assert_array_equal(compression.groups[0], [0, 0, 1, 2, 0, 0, 3, 4, 4, 4, 4, 4])
    np.testing.assert_allclose(merged.values, [0.7, 40.0, 30.0, 50.0, 6.5])
    np.testing.assert_allclose(merged.sigma, SIGMA * np.array([2.0, 1, 1, 1, np.sqrt(5.0)]))
    bucket = compression.shares[0][[0, 1, 4, 5]]
    np.testing.assert_allclose(bucket, np.array([0.5, 0.0, 0.2, 1.0]) / 1.7)


def test_columns_are_left_alone_when_merging_gains_nothing() -> None:
    sizes = [3, 4, 3, 2]
    measurements = [
        one_way(0, [10.0, 1.0, 20.0]),  # one rare code: a bucket of one is that code
        one_way(1, [100.0, 1.0, 2.0, 3.0]),  # "rare" would keep one code only
        one_way(3, [1.0, 2.0]),  # "adjacent": one run, the whole column
    ]
    for merge in ("rare", "adjacent"):
        compression, out = compress_domain(sizes, measurements, merge=merge)
        if merge == "rare":
            assert compression.is_identity()
            assert all(a is b for a, b in zip(out, measurements, strict=True))
        # Column 2 has no measurement: untouched either way.
        np.testing.assert_array_equal(compression.groups[2], [0, 1, 2])
        np.testing.assert_array_equal(compression.groups[3], [0, 1])


def test_shares_are_uniform_when_no_member_count_is_positive() -> None:
    compression, _ = compress_domain([4], [one_way(0, [30.0, 20.0, -1.0, -2.0])], merge="rare")
    np.testing.assert_allclose(compression.shares[0], [1.0, 1.0, 0.5, 0.5])


def test_codes_compress_and_expand_back_by_the_shares() -> None:
    compression = Compression(
        [np.array([0, 1, 1, 1, 2]), np.array([0, 1])],
        [np.array([1.0, 0.5, 0.25, 0.25, 1.0]), np.array([1.0, 1.0])],
    )
    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, 5, 4000), rng.integers(0, 2, 4000)], axis=1)
    grouped = compression.compress_codes(codes)
    np.testing.assert_array_equal(grouped[:, 0], compression.groups[0][codes[:, 0]])
    expanded = compression.expand_codes(grouped.copy(), rng)
    # Codes alone in their group come back as they were; column 1 is untouched.
    alone = np.isin(codes[:, 0], [0, 4])
    np.testing.assert_array_equal(expanded[alone, 0], codes[alone, 0])
    np.testing.assert_array_equal(expanded[:, 1], codes[:, 1])
    # The merged group's rows are dealt codes 1, 2, 3 by their shares, each within one row.
    members = grouped[:, 0] == 1
    counts = np.bincount(expanded[members, 0], minlength=5)[1:4]
    assert np.all(np.abs(counts - members.sum() * np.array([0.5, 0.25, 0.25])) < 1.0)
    independent = compression.expand_codes(grouped.copy(), rng, rounded=False)
    assert set(np.unique(independent[members, 0])) == {1, 2, 3}


def test_tables_expand_by_the_shares() -> None:
    compression = Compression(
        [np.array([0, 1, 1]), np.array([1, 0, 0, 1])],
        [np.array([1.0, 0.75, 0.25]), np.array([0.4, 0.5, 0.5, 0.6])],
    )
    table = np.array([[2.0, 6.0], [4.0, 8.0]])  # groups of column 0 × groups of column 1
    full = compression.expand_table(table, (0, 1))
    assert full.shape == (3, 4)
    # Cell (code a, code b) = table[group a, group b] · share a · share b.
    g0, g1 = compression.groups
    s0, s1 = compression.shares
    np.testing.assert_allclose(full, table[np.ix_(g0, g1)] * np.outer(s0, s1))
    np.testing.assert_allclose(full.sum(), table.sum())
    np.testing.assert_allclose(compression.expand_table(table.T, (1, 0)), full.T)


def test_expanding_a_marginal_of_grouped_codes_is_consistent_with_the_codes() -> None:
    compression, _ = compress_domain([5], [one_way(0, [40.0, 2.0, 2.0, 0.0, 60.0])], merge="rare")
    codes = np.array([[0], [0], [1], [2], [4], [4], [4]])
    grouped = marginal(compression.compress_codes(codes), compression.compressed_sizes, (0,))
    full = compression.expand_table(grouped, (0,))
    np.testing.assert_allclose(full, [2.0, 1.0, 1.0, 0.0, 3.0])


def test_json_round_trip() -> None:
    compression, _ = compress_domain(
        [6, 3], [one_way(0, [50.0, 1.0, 30.0, -3.0, 4.0, 0.5]), one_way(1, [9, 9, 9])]
    )
    back = Compression.from_dict(json.loads(json.dumps(compression.to_dict())))
    assert back.sizes == compression.sizes
    for mine, theirs in (
        (back.groups, compression.groups),
        (back.shares, compression.shares),
    ):
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_array_equal(a, b)


def test_invalid_maps_and_arguments_are_refused() -> None:
    with pytest.raises(CompressionError, match=r"be 0\.\.k-1, each used"):
        Compression([np.array([0, 2])], [np.array([1.0, 1.0])])
    with pytest.raises(CompressionError, match="add up to 1"):
        Compression([np.array([0, 0])], [np.array([0.5, 0.6])])
    with pytest.raises(CompressionError, match="finite and >= 0"):
        Compression([np.array([0, 0])], [np.array([1.5, -0.5])])
    with pytest.raises(CompressionError, match="same length"):
        Compression([np.array([0, 0])], [np.array([1.0])])
    with pytest.raises(CompressionError, match="malformed"):
        Compression.from_dict({"groups": [[0]]})
    good = one_way(0, [1.0, 2.0])
    with pytest.raises(CompressionError, match="compress must be"):
        compress_domain([2], [good], merge="bucket")
    with pytest.raises(CompressionError, match="compress_threshold"):
        compress_domain([2], [good], threshold=0.0)
    with pytest.raises(CompressionError, match="only 1-way marginal"):
        compress_domain([2], [good, good])
    with pytest.raises(CompressionError, match="only 1-way marginal"):
        compress_domain([3], [good])

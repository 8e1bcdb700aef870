from __future__ import annotations

import numpy as np

from cardiobox.synth.rounding import draw_rounded, rounded_counts


def test_counts_add_up_and_round_the_expected_counts() -> None:
    rng = np.random.default_rng(0)
    totals = np.array([0, 1, 7, 100, 12345], dtype=np.int64)
    probabilities = rng.dirichlet(np.ones(6), size=totals.size)
    probabilities[2, 3] = 0.0  # an impossible outcome is never drawn
    for _ in range(50):
        counts = rounded_counts(totals, probabilities.copy(), rng)
        assert counts.dtype == np.int64 and counts.shape == probabilities.shape
        np.testing.assert_array_equal(counts.sum(axis=1), totals)
        expected = totals[:, None] * probabilities / probabilities.sum(axis=1, keepdims=True)
        assert np.all(counts >= np.floor(expected - 1e-9))
        assert np.all(counts <= np.ceil(expected + 1e-9))
        assert counts[2, 3] == 0


def test_rounding_is_unbiased() -> None:
    rng = np.random.default_rng(1)
    totals = np.array([3, 10], dtype=np.int64)
    probabilities = np.array([[0.15, 0.5, 0.35], [0.07, 0.33, 0.6]])
    draws = 20_000
    mean = sum(rounded_counts(totals, probabilities.copy(), rng) for _ in range(draws)) / draws
    # Each count is a floor or a ceiling: variance ≤ 1/4, so 5 standard errors ≤ 2.5/sqrt(draws).
    np.testing.assert_allclose(mean, totals[:, None] * probabilities, atol=2.5 / np.sqrt(draws))


def test_each_state_gets_its_rounded_counts_in_random_order() -> None:
    rng = np.random.default_rng(2)
    states = rng.integers(0, 3, 3000)
    conditional = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7], [0.0, 0.0, 0.0]])
    outcomes = draw_rounded(states, conditional, rng)
    assert outcomes.shape == states.shape and outcomes.dtype == np.int64
    for state, weights in enumerate(conditional):
        rows = states == state
        counts = np.bincount(outcomes[rows], minlength=3)
        # A state without weight is uniform; every count is within one of its expectation.
        share = weights / weights.sum() if weights.sum() > 0 else np.full(3, 1 / 3)
        assert np.all(np.abs(counts - rows.sum() * share) < 1.0)
    # Dealt in random order: the first half of state 0's rows is not all one outcome.
    first = outcomes[states == 0][:100]
    assert 0 < first.sum() < 100


def test_draws_are_reproducible() -> None:
    states = np.repeat(np.arange(4), 25)
    conditional = np.random.default_rng(3).random((4, 5))
    a = draw_rounded(states, conditional, np.random.default_rng(4))
    b = draw_rounded(states, conditional, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)

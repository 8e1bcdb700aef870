from __future__ import annotations

import itertools

import numpy as np
import pytest

from cardiobox.privacy.zcdp import PrivacyParameterError, gaussian_sigma
from cardiobox.synth import marginals as marginals_module
from cardiobox.synth.marginals import (
    CodesError,
    check_codes,
    check_rho,
    exponential_mechanism,
    marginal,
    measure,
)

SIZES = [3, 4, 2, 5]


def random_codes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, k, n) for k in SIZES], axis=1)


def brute_force(codes: np.ndarray, clique: tuple[int, ...], weights=None) -> np.ndarray:
    table = np.zeros(tuple(SIZES[c] for c in clique))
    for row in range(codes.shape[0]):
        table[tuple(codes[row, list(clique)])] += 1.0 if weights is None else weights[row]
    return table


@pytest.mark.parametrize("clique", [(0,), (2, 0), (1, 3, 2), (3, 2, 1, 0)])
def test_marginal_counts_every_code_combination(clique: tuple[int, ...]) -> None:
    codes = random_codes(500)
    table = marginal(codes, SIZES, clique)
    assert table.shape == tuple(SIZES[c] for c in clique)
    assert table.dtype == np.float64
    np.testing.assert_array_equal(table, brute_force(codes, clique))


def test_marginal_sums_weights() -> None:
    codes = random_codes(300, seed=1)
    weights = np.random.default_rng(2).random(300)
    np.testing.assert_allclose(
        marginal(codes, SIZES, (1, 3), weights=weights), brute_force(codes, (1, 3), weights)
    )


def test_marginal_of_no_rows_is_all_zero() -> None:
    table = marginal(np.zeros((0, 4), dtype=np.int64), SIZES, (0, 1))
    np.testing.assert_array_equal(table, np.zeros((3, 4)))


@pytest.mark.parametrize(
    ("codes", "sizes", "message"),
    [
        (np.array([[0, 4, 0, 0]]), SIZES, "column 1"),
        (np.array([[0, -1, 0, 0]]), SIZES, "column 1"),
        (np.array([[0, 1, 0]]), SIZES, "3 columns"),
        (np.array([0, 1, 0, 0]), SIZES, "2-D"),
        (np.array([[0.5, 1, 0, 0]]), SIZES, "integers"),
        (np.array([[0, 0, 0, 0]]), [3, 0, 2, 5], r"sizes\[1\]"),
    ],
)
def test_check_codes_names_the_problem(codes, sizes, message: str) -> None:
    with pytest.raises(CodesError, match=message):
        check_codes(codes, sizes)


def test_check_codes_returns_column_major_int64() -> None:
    matrix, sizes = check_codes(random_codes(10).astype(np.int32), SIZES)
    assert matrix.dtype == np.int64 and matrix.flags.f_contiguous
    assert sizes == tuple(SIZES)


@pytest.mark.parametrize(
    ("clique", "message"), [((), "at least one"), ((1, 1), "repeats"), ((4,), "outside")]
)
def test_marginal_rejects_bad_cliques(clique, message: str) -> None:
    with pytest.raises(CodesError, match=message):
        marginal(random_codes(5), SIZES, clique)


def test_marginal_refuses_tables_above_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(marginals_module, "MAX_TABLE_CELLS", 10)
    with pytest.raises(CodesError, match="12 cells"):
        marginal(random_codes(5), SIZES, (0, 1))


def test_marginal_rejects_weights_of_the_wrong_length() -> None:
    with pytest.raises(CodesError, match="weights"):
        marginal(random_codes(5), SIZES, (0,), weights=np.ones(4))


def test_measure_adds_noise_of_the_closed_form_scale() -> None:
    rho = 0.02
    counts = np.zeros(200_000)
    m = measure(counts, (0,), rho, np.random.default_rng(3))
    assert m.sigma == gaussian_sigma(1.0, rho) == 1.0 / np.sqrt(2 * rho)
    assert m.clique == (0,)
    # The sample standard deviation of 200k draws is within 1% of σ (about 6 standard errors).
    assert np.std(m.values) == pytest.approx(m.sigma, rel=0.01)


def test_noisy_marginals_are_unbiased() -> None:
    codes = random_codes(400, seed=4)
    exact = marginal(codes, SIZES, (0, 2))
    rng = np.random.default_rng(5)
    draws = np.stack([measure(exact, (0, 2), 0.5, rng).values for _ in range(4000)])
    sigma = gaussian_sigma(1.0, 0.5)
    # The mean of 4000 draws has standard error σ/sqrt(4000) per cell; allow 4.5 of them.
    assert np.all(np.abs(draws.mean(axis=0) - exact) < 4.5 * sigma / np.sqrt(4000))


def test_measure_rejects_a_bad_budget() -> None:
    with pytest.raises(PrivacyParameterError):
        measure(np.zeros(3), (0,), 0.0, np.random.default_rng(0))


def test_exponential_mechanism_follows_its_distribution() -> None:
    scores = np.array([0.0, 1.0, 2.0, 4.0])
    epsilon, sensitivity = 1.5, 2.0
    expected = np.exp(epsilon * scores / (2 * sensitivity))
    expected /= expected.sum()
    rng = np.random.default_rng(6)
    draws = 20_000
    picks = np.bincount(
        [exponential_mechanism(scores, epsilon, sensitivity, rng) for _ in range(draws)],
        minlength=4,
    )
    standard_error = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(picks / draws - expected) < 5 * standard_error)


def test_exponential_mechanism_is_stable_for_huge_scores() -> None:
    pick = exponential_mechanism([1e6, 1e6 + 1e4, 0.0], 1.0, 1.0, np.random.default_rng(0))
    assert pick == 1


@pytest.mark.parametrize(
    ("scores", "epsilon", "sensitivity"),
    [([1.0], 0.0, 1.0), ([1.0], 1.0, -1.0), ([], 1.0, 1.0), ([np.nan], 1.0, 1.0)],
)
def test_exponential_mechanism_rejects_bad_parameters(scores, epsilon, sensitivity) -> None:
    with pytest.raises(PrivacyParameterError):
        exponential_mechanism(scores, epsilon, sensitivity, np.random.default_rng(0))


def test_every_pair_marginal_sums_to_the_row_count() -> None:
    codes = random_codes(123, seed=7)
    for clique in itertools.combinations(range(4), 2):
        assert marginal(codes, SIZES, clique).sum() == 123


@pytest.mark.parametrize("rho", [0.0, -1.0, float("nan"), float("inf")])
def test_check_rho_refuses_non_positive_or_non_finite_budgets(rho: float) -> None:
    with pytest.raises(PrivacyParameterError, match="rho"):
        check_rho(rho)
    assert check_rho(0.25) == 0.25

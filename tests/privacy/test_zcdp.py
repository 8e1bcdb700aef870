"""zCDP primitives and the RDP accountant, against closed forms and reference values.

Reference values marked "dp_accounting" come from Google's dp-accounting 0.4 (the library
behind TF Privacy); those marked "mpmath" from 40-digit adaptive quadrature of
A_α = E_{z~N(0,σ²)}[((1−q) + q·exp((2z−1)/(2σ²)))^α].
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cardiobox.privacy import zcdp
from cardiobox.privacy.zcdp import (
    DEFAULT_ORDERS,
    PrivacyParameterError,
    Release,
    add_gaussian_noise,
    compose,
    dpsgd_epsilon,
    eps_delta_to_rho,
    gaussian_rho,
    gaussian_sigma,
    rdp_subsampled_gaussian,
    rdp_to_eps,
    rho_to_eps,
    rho_to_eps_classic,
)

RHOS = [1e-4, 1e-3, 0.01, 0.1, 0.5, 1.0, 5.0, 50.0]
DELTAS = [1e-12, 1e-9, 1e-6, 1e-3, 0.1]


# --- Gaussian mechanism -------------------------------------------------------------------


def test_gaussian_sigma_closed_form_and_inverse() -> None:
    assert gaussian_sigma(1.0, 0.5) == pytest.approx(1.0)
    assert gaussian_sigma(2.0, 0.125) == pytest.approx(4.0)
    for sensitivity, rho in [(1.0, 0.01), (3.5, 0.2), (0.1, 7.0)]:
        sigma = gaussian_sigma(sensitivity, rho)
        assert sigma == pytest.approx(sensitivity / math.sqrt(2 * rho))
        assert gaussian_rho(sensitivity, sigma) == pytest.approx(rho)


def test_noise_std_matches_sigma() -> None:
    rng = np.random.default_rng(20240601)
    n = 200_000
    sigma = gaussian_sigma(2.0, 0.1)
    noisy = add_gaussian_noise(np.zeros(n), 2.0, 0.1, rng)
    # The sample standard deviation has standard error σ / sqrt(2n).
    assert abs(noisy.std(ddof=1) - sigma) < 5 * sigma / math.sqrt(2 * n)


def test_noisy_sums_are_unbiased_and_keep_shape() -> None:
    rng = np.random.default_rng(7)
    sums = np.array([[120.0, 3.0, 0.0], [45.5, 1e4, 17.0]])
    original = sums.copy()
    draws = np.stack([add_gaussian_noise(sums, 1.0, 0.05, rng) for _ in range(4000)])
    assert draws.shape == (4000, *sums.shape)
    np.testing.assert_array_equal(sums, original)  # the input is not modified
    standard_error = gaussian_sigma(1.0, 0.05) / math.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - sums) < 4 * standard_error)


def test_noise_accepts_integer_counts_and_returns_floats() -> None:
    out = add_gaussian_noise(np.array([3, 5, 8]), 1.0, 1.0, np.random.default_rng(1))
    assert out.dtype == np.float64
    assert out.shape == (3,)


def test_noise_rejects_legacy_seed_and_non_finite_values() -> None:
    with pytest.raises(TypeError, match="rng"):
        add_gaussian_noise(np.zeros(3), 1.0, 1.0, 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="values"):
        add_gaussian_noise(np.array([1.0, np.nan]), 1.0, 1.0, np.random.default_rng(0))


# --- declared costs and composition -------------------------------------------------------


def test_release_gaussian_matches_the_mechanism() -> None:
    release = Release.gaussian(2.0, 0.3, note="sum of ages, clipped to [0, 2]")
    assert release.mechanism == "gaussian"
    assert release.rho == 0.3
    assert release.sensitivity == 2.0
    assert release.sigma == pytest.approx(gaussian_sigma(2.0, 0.3))


def test_release_none_costs_nothing_and_needs_a_note() -> None:
    release = Release.none("counts by NYHA class, cells below 10 suppressed")
    assert release.mechanism == "none"
    assert release.rho == 0.0
    assert release.sigma is None
    with pytest.raises(ValueError, match="note"):
        Release.none("  ")


def test_release_rejects_bad_fields() -> None:
    with pytest.raises(ValueError, match="rho"):
        Release("gaussian", -0.1)
    with pytest.raises(ValueError, match="mechanism"):
        Release("", 0.1)
    with pytest.raises(ValueError, match="sigma"):
        Release("gaussian", 0.1, sensitivity=1.0, sigma=0.0)


def test_compose_adds_rhos_and_releases() -> None:
    assert compose() == 0.0
    assert compose(0.1, 0.2, 0.05) == pytest.approx(0.35)
    costs: list[float | Release] = [
        Release.gaussian(1.0, 0.1),
        Release.none("suppressed counts"),
        0.25,
    ]
    assert compose(*costs) == pytest.approx(0.35)
    with pytest.raises(ValueError, match=r"rhos\[1\]"):
        compose(0.1, -0.2)
    with pytest.raises(ValueError, match=r"rhos\[0\]"):
        compose(math.inf)


# --- zCDP ↔ (ε, δ) ------------------------------------------------------------------------


def _eps_by_grid(rho: float, delta: float) -> float:
    """The conversion's formula, minimised over a dense grid of α (independent of brentq)."""
    alpha = 1.0 + np.logspace(-6, 7, 400_001)
    eps = alpha * rho + (
        math.log(1 / delta) + (alpha - 1) * np.log1p(-1 / alpha) - np.log(alpha)
    ) / (alpha - 1)
    return max(float(eps.min()), 0.0)


@pytest.mark.parametrize("rho", RHOS)
@pytest.mark.parametrize("delta", DELTAS)
def test_tight_conversion_is_the_infimum_and_beats_the_classic_bound(
    rho: float, delta: float
) -> None:
    tight = rho_to_eps(rho, delta)
    grid = _eps_by_grid(rho, delta)
    # The exact minimiser is at least as good as any grid point and very close to the best.
    assert tight <= grid + 1e-12
    assert tight == pytest.approx(grid, rel=1e-7, abs=1e-9)
    assert tight <= rho_to_eps_classic(rho, delta)


def test_tight_conversion_reference_values() -> None:
    # dp_accounting.rdp.compute_epsilon(orders, rho * orders, delta) over 200 001 orders in
    # (1, 1e5]: the same formula on a grid, so it can only be a hair above the infimum.
    for rho, delta, reference in [
        (0.1, 1e-6, 2.1419389289484805),
        (1.0, 1e-9, 9.521463676588413),
        (0.005, 1e-5, 0.3752612357432979),
        (10.0, 1e-3, 25.088726500372232),
    ]:
        eps = rho_to_eps(rho, delta)
        assert eps <= reference
        assert eps == pytest.approx(reference, rel=1e-9)


def test_classic_bound_closed_form() -> None:
    assert rho_to_eps_classic(0.5, math.exp(-2.0)) == pytest.approx(0.5 + 2.0)


def test_conversion_is_monotone_in_rho_and_delta() -> None:
    by_rho = [rho_to_eps(r, 1e-6) for r in RHOS]
    assert np.all(np.diff(by_rho, axis=0) > 0)
    by_delta = [rho_to_eps(0.5, d) for d in DELTAS]
    assert np.all(np.diff(by_delta, axis=0) < 0)


def test_tiny_rho_with_large_delta_is_zero_epsilon() -> None:
    # KL ≤ ρ and TV ≤ sqrt(1 − e^(−KL)) ≤ δ: the release is (0, δ)-DP.
    assert rho_to_eps(1e-4, 0.05) == 0.0


@pytest.mark.parametrize("eps", [0.01, 0.1, 1.0, 3.0, 10.0, 100.0])
@pytest.mark.parametrize("delta", [1e-12, 1e-6, 1e-2])
def test_eps_delta_to_rho_inverts_the_tight_conversion(eps: float, delta: float) -> None:
    rho = eps_delta_to_rho(eps, delta)
    assert rho_to_eps(rho, delta) <= eps
    assert rho_to_eps(rho, delta) == pytest.approx(eps, rel=1e-9)
    assert rho_to_eps(rho * (1 + 1e-9), delta) > eps  # it is the largest such ρ
    # The tight conversion allows more ρ than the classic one for the same (ε, δ).
    classic = (math.sqrt(math.log(1 / delta) + eps) - math.sqrt(math.log(1 / delta))) ** 2
    assert rho >= classic


def test_eps_delta_to_rho_is_monotone() -> None:
    by_eps = [eps_delta_to_rho(e, 1e-6) for e in [0.1, 0.5, 1.0, 2.0, 8.0]]
    assert np.all(np.diff(by_eps, axis=0) > 0)
    by_delta = [eps_delta_to_rho(1.0, d) for d in [1e-10, 1e-6, 1e-3]]
    assert np.all(np.diff(by_delta, axis=0) > 0)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: gaussian_sigma(1.0, 0.0), "rho"),
        (lambda: gaussian_sigma(1.0, -1.0), "rho"),
        (lambda: gaussian_sigma(-1.0, 0.1), "sensitivity"),
        (lambda: gaussian_sigma(math.nan, 0.1), "sensitivity"),
        (lambda: gaussian_rho(1.0, 0.0), "sigma"),
        (
            lambda: add_gaussian_noise(np.zeros(2), -2.0, 0.1, np.random.default_rng(0)),
            "sensitivity",
        ),
        (lambda: rho_to_eps(0.0, 1e-6), "rho"),
        (lambda: rho_to_eps(-0.5, 1e-6), "rho"),
        (lambda: rho_to_eps(0.5, 0.0), "delta"),
        (lambda: rho_to_eps(0.5, 1.0), "delta"),
        (lambda: rho_to_eps(0.5, 1.5), "delta"),
        (lambda: rho_to_eps_classic(0.5, -1e-6), "delta"),
        (lambda: eps_delta_to_rho(0.0, 1e-6), "eps"),
        (lambda: eps_delta_to_rho(1.0, 1.0), "delta"),
        (lambda: rdp_subsampled_gaussian(1.5, 1.0, [2.0]), "q"),
        (lambda: rdp_subsampled_gaussian(0.1, 0.0, [2.0]), "noise_multiplier"),
        (lambda: rdp_subsampled_gaussian(0.1, 1.0, [1.0, 2.0]), "orders"),
        (lambda: rdp_to_eps([0.1, 0.2], [2.0], 1e-5), "same length"),
        (lambda: rdp_to_eps([-0.1], [2.0], 1e-5), "rdp"),
        (lambda: rdp_to_eps([0.1], [2.0], 0.0), "delta"),
        (lambda: dpsgd_epsilon(1.0, 0.01, -1, 1e-5), "steps"),
        (lambda: dpsgd_epsilon(1.0, 0.01, 10, 2.0), "delta"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call: object, name: str) -> None:
    with pytest.raises(ValueError, match=name) as info:
        call()  # type: ignore[operator]
    assert isinstance(info.value, PrivacyParameterError)


# --- RDP of the Poisson-subsampled Gaussian -----------------------------------------------


def test_rdp_without_subsampling_is_the_gaussian_closed_form() -> None:
    orders = np.array([1.5, 2.0, 3.0, 7.25, 64.0, 256.0])
    np.testing.assert_allclose(rdp_subsampled_gaussian(1.0, 1.3, orders), orders / (2 * 1.3**2))
    np.testing.assert_array_equal(rdp_subsampled_gaussian(0.0, 1.3, orders), 0.0)


@pytest.mark.parametrize(("q", "sigma"), [(256 / 60000, 1.1), (1e-6, 1.0), (0.3, 0.7), (0.05, 4.0)])
def test_rdp_integer_orders_closed_forms(q: float, sigma: float) -> None:
    # A_2 = 1 + q²(e^{1/σ²} − 1); A_3 expands to four binomial terms.
    a2 = math.log1p(q * q * math.expm1(1 / sigma**2))
    a3 = math.log(
        (1 - q) ** 3
        + 3 * (1 - q) ** 2 * q
        + 3 * (1 - q) * q**2 * math.exp(1 / sigma**2)
        + q**3 * math.exp(3 / sigma**2)
    )
    rdp = rdp_subsampled_gaussian(q, sigma, [2.0, 3.0])
    assert rdp[0] == pytest.approx(a2, rel=1e-12)
    assert rdp[1] == pytest.approx(a3 / 2, rel=1e-6)  # the direct sum loses digits as q → 0


def test_rdp_integer_orders_match_dp_accounting() -> None:
    # dp_accounting.rdp.rdp_privacy_accountant._compute_rdp_poisson_subsampled_gaussian.
    orders = [2.0, 8.0, 32.0, 256.0]
    reference = {
        (256 / 60000, 1.1): [
            2.339577600995332e-05,
            9.834106177992806e-05,
            7.59018834621011,
            100.30680187454402,
        ],
        (0.3, 0.3): [8.703316605021088, 43.06847552521481, 176.53496714105424, 1421.0135279559186],
    }
    for (q, sigma), expected in reference.items():
        np.testing.assert_allclose(rdp_subsampled_gaussian(q, sigma, orders), expected, rtol=1e-9)


@pytest.mark.parametrize(
    ("q", "sigma", "order", "reference"),
    [
        # mpmath, 40 digits (dp_accounting's series is conservative here: it gives larger
        # values near α = 1, e.g. 0.0023945 instead of 0.0015232 for q=0.1, σ=2, α=1.1).
        (256 / 60000, 1.1, 1.5, 1.7479784462924327e-05),
        (256 / 60000, 1.1, 8.1, 9.965972761931117e-05),
        (0.01, 0.8, 6.7, 0.060458150956862966),
        (1e-4, 0.6, 7.5, 0.03489320488443327),
        (0.5, 0.5, 1.3, 1.1068058311288709),
        (0.3, 0.3, 2.5, 11.8822677787668),
        (0.05, 0.15, 3.7, 78.11695947698158),
        (0.1, 2.0, 1.1, 0.0015231703665297565),
        (0.02, 5.0, 20.5, 0.00016988196598714518),
    ],
)
def test_rdp_fractional_orders_match_high_precision_quadrature(
    q: float, sigma: float, order: float, reference: float
) -> None:
    assert rdp_subsampled_gaussian(q, sigma, [order])[0] == pytest.approx(reference, rel=1e-10)


@pytest.mark.parametrize(("q", "sigma"), [(0.004, 1.1), (1e-5, 0.8), (0.2, 0.5), (0.6, 3.0)])
def test_fractional_quadrature_agrees_with_the_exact_sum_at_integers(
    q: float, sigma: float
) -> None:
    alphas = np.arange(2, 40)
    exact = zcdp._log_a_integer(q, sigma, alphas)
    numeric = np.array([zcdp._log_a_fractional(q, sigma, float(a)) for a in alphas])
    np.testing.assert_allclose(numeric, exact, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize(("q", "sigma"), [(256 / 60000, 1.1), (0.1, 0.05), (0.5, 0.4), (0.1, 0.01)])
def test_rdp_curve_is_monotone_and_log_a_convex(q: float, sigma: float) -> None:
    # σ = 0.01 with orders near 100 takes the convex-interpolation path for fractional orders
    # (its fine integration grid makes the whole default curve slow, so integers only there).
    orders = np.array(DEFAULT_ORDERS) if sigma > 0.02 else np.arange(2.0, 257.0)
    rdp = rdp_subsampled_gaussian(q, sigma, orders)
    assert np.all(np.diff(rdp) >= -1e-12 * rdp[1:])
    frac = np.array([1.5, 2.5, 9.3, 57.5, 100.5])
    lower, upper = np.floor(frac), np.ceil(frac)
    at = rdp_subsampled_gaussian(q, sigma, np.concatenate([frac, upper, np.maximum(lower, 2)]))
    r_frac, r_up, r_low = np.split(at, 3)
    log_a_low = np.where(lower == 1, 0.0, r_low * (lower - 1))
    t = frac - lower
    chord = ((1 - t) * log_a_low + t * r_up * (upper - 1)) / (frac - 1)
    assert np.all(r_frac <= chord * (1 + 1e-9))
    # RDP is non-decreasing in α.
    assert np.all(r_frac[lower > 1] >= r_low[lower > 1] * (1 - 1e-9))


def test_rdp_grows_with_sampling_rate_and_shrinks_with_noise() -> None:
    orders = [1.5, 4.0, 32.0]
    by_q = [rdp_subsampled_gaussian(q, 1.0, orders) for q in [0.001, 0.01, 0.1, 0.5]]
    assert np.all(np.diff(by_q, axis=0) > 0)
    by_sigma = [rdp_subsampled_gaussian(0.01, s, orders) for s in [0.7, 1.0, 2.0, 5.0]]
    assert np.all(np.diff(by_sigma, axis=0) < 0)


# --- RDP → (ε, δ) and DP-SGD --------------------------------------------------------------


def test_rdp_to_eps_of_a_zcdp_curve_matches_the_tight_conversion() -> None:
    # ρ-zCDP is RDP ρα at every α, and the two conversions use the same formula.
    orders = 1.0 + np.logspace(-3, 4, 20_001)
    for rho, delta in [(0.05, 1e-6), (1.0, 1e-9), (8.0, 1e-3)]:
        eps, order = rdp_to_eps(rho * orders, orders, delta)
        assert eps >= rho_to_eps(rho, delta)
        assert eps == pytest.approx(rho_to_eps(rho, delta), rel=1e-6)
        assert order in orders


def test_rdp_to_eps_zero_when_the_kl_bound_already_holds() -> None:
    assert rdp_to_eps([1e-8, 2e-8], [2.0, 3.0], 0.01) == (0.0, 2.0)


def test_dpsgd_epsilon_abadi_mnist() -> None:
    # Abadi et al. (2016) MNIST: σ = 1.1, batch 256 of 60 000, 60 epochs × 235 steps, δ = 1e-5.
    # The old conversion ε = min rdp − log δ/(α−1) gives 3.01 (the TF Privacy tutorial's
    # figure); the improved conversion gives 2.6003 — dp_accounting 0.4 with the same
    # orders: 2.6003429394461106 (best order 8.1), integer orders only: 2.6007181389425194.
    eps = dpsgd_epsilon(1.1, 256 / 60000, 60 * 235, 1e-5)
    assert 2.5 < eps < 3.0
    assert eps == pytest.approx(2.6003429394461106, rel=1e-8)
    integer_only = dpsgd_epsilon(1.1, 256 / 60000, 60 * 235, 1e-5, orders=np.arange(2, 257))
    assert integer_only == pytest.approx(2.6007181389425194, rel=1e-9)
    assert eps <= integer_only  # more orders can only help


def test_dpsgd_full_batch_is_the_gaussian_mechanism() -> None:
    # q = 1: T steps of σ-noise on sensitivity 1 are T/(2σ²)-zCDP.
    steps, sigma = 100, 4.0
    eps = dpsgd_epsilon(sigma, 1.0, steps, 1e-6)
    tight = rho_to_eps(steps / (2 * sigma**2), 1e-6)
    assert eps >= tight
    assert eps == pytest.approx(tight, rel=2e-3)  # default orders are a grid


def test_dpsgd_epsilon_monotone_and_zero_without_steps() -> None:
    assert dpsgd_epsilon(1.0, 0.01, 0, 1e-5) == 0.0
    by_steps = [dpsgd_epsilon(1.0, 0.01, t, 1e-5) for t in [10, 100, 1000]]
    assert by_steps[0] < by_steps[1] < by_steps[2]
    by_sigma = [dpsgd_epsilon(s, 0.01, 1000, 1e-5) for s in [0.8, 1.0, 2.0]]
    assert by_sigma[0] > by_sigma[1] > by_sigma[2]

"""Differential-privacy primitives under zero-concentrated DP (zCDP), and an RDP accountant.

Sites spend their privacy budget in zCDP ρ (Bun & Steinke 2016): the Gaussian mechanism
with L2 sensitivity Δ and noise σ is ρ-zCDP with ρ = Δ²/(2σ²), and ρ's add up under
composition. Users usually state (ε, δ); :func:`rho_to_eps` and :func:`eps_delta_to_rho`
convert with the tight bound of Canonne, Kamath & Steinke (2020).

Poisson-subsampled Gaussian steps (DP-SGD) are not well described by a single ρ, so they are
accounted in Rényi DP (Mironov, Talwar & Zhang 2019) and converted to (ε, δ) with the
improved conversion of Balle et al. (2020), as Opacus and Google's ``dp_accounting`` do.

Every function that releases data from a site declares its cost as a :class:`Release`.

Noise here is drawn in floating point (numpy); that is the usual practice, but it is not
immune to the floating-point attacks on the low bits of noisy values (Mironov 2012).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import gammaln, logsumexp

from cardiobox.errors import CardioboxError


class PrivacyParameterError(CardioboxError, ValueError):
    """A privacy parameter (ρ, ε, δ, σ, sensitivity, sampling rate, order) out of range."""


# Rényi orders used when none are given: fine steps where the optimum lies for large ε,
# integers up to 256 for small ε (the same shape as Opacus' and dp_accounting's defaults).
DEFAULT_ORDERS: tuple[float, ...] = tuple(1.0 + x / 10.0 for x in range(1, 100)) + tuple(
    float(a) for a in range(11, 257)
)

# Fractional orders are integrated numerically; beyond this many grid points (tiny noise
# multipliers with large orders) the convex interpolation bound is used instead.
_MAX_GRID_POINTS = 2_000_000
# Half-width of the integration range, in standard deviations: e^(-K²/2) is ~1e-43.
_TAIL_SDS = 14.0


def _finite(name: str, value: float) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise PrivacyParameterError(f"{name} must be a finite number, got {value!r}", "finite")
    return number


def _positive(name: str, value: float) -> float:
    number = _finite(name, value)
    if number <= 0:
        raise PrivacyParameterError(f"{name} must be > 0, got {value!r}", "positive")
    return number


def _non_negative(name: str, value: float) -> float:
    number = _finite(name, value)
    if number < 0:
        raise PrivacyParameterError(f"{name} must be >= 0, got {value!r}", "non-negative")
    return number


def _open_unit(name: str, value: float) -> float:
    number = _finite(name, value)
    if not 0 < number < 1:
        raise PrivacyParameterError(
            f"{name} must lie strictly between 0 and 1, got {value!r}", "probability"
        )
    return number


# --- Gaussian mechanism -------------------------------------------------------------------


def gaussian_sigma(sensitivity: float, rho: float) -> float:
    """Noise scale that makes the Gaussian mechanism ρ-zCDP.

    Parameters
    ----------
    sensitivity : float
        L2 sensitivity Δ of the released statistic (> 0).
    rho : float
        zCDP budget of the release (> 0).

    Returns
    -------
    float
        σ = Δ / sqrt(2ρ).

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) when ``sensitivity`` or ``rho`` is not a finite positive number.
    """
    delta2 = _positive("sensitivity", sensitivity)
    return delta2 / math.sqrt(2.0 * _positive("rho", rho))


def gaussian_rho(sensitivity: float, sigma: float) -> float:
    """zCDP cost of the Gaussian mechanism with a given noise scale.

    Parameters
    ----------
    sensitivity : float
        L2 sensitivity Δ of the released statistic (> 0).
    sigma : float
        Standard deviation σ of the added noise (> 0).

    Returns
    -------
    float
        ρ = Δ² / (2σ²).

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) when ``sensitivity`` or ``sigma`` is not a finite positive number.
    """
    delta2 = _positive("sensitivity", sensitivity)
    return delta2**2 / (2.0 * _positive("sigma", sigma) ** 2)


def add_gaussian_noise(
    values: npt.ArrayLike, sensitivity: float, rho: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Release ``values`` through the Gaussian mechanism at cost ρ (zCDP).

    Parameters
    ----------
    values : array_like
        The exact statistic (any shape); its L2 sensitivity over the whole array must be
        ``sensitivity``.
    sensitivity : float
        L2 sensitivity Δ of ``values`` (> 0).
    rho : float
        zCDP budget of the release (> 0).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        A new float64 array: ``values`` plus independent N(0, σ²) noise, σ from
        :func:`gaussian_sigma`. Declare the cost with ``Release.gaussian(sensitivity, rho)``.

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) for a bad ``sensitivity`` or ``rho``, or non-finite ``values``.
    TypeError
        When ``rng`` is not a ``numpy.random.Generator``.
    """
    sigma = gaussian_sigma(sensitivity, rho)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    exact = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(exact)):
        raise PrivacyParameterError("values must all be finite (no NaN or infinity)", "finite")
    noisy: npt.NDArray[np.float64] = exact + rng.normal(0.0, sigma, size=exact.shape)
    return noisy


# --- zCDP ↔ (ε, δ) ------------------------------------------------------------------------


def rho_to_eps(rho: float, delta: float) -> float:
    """Tight (ε, δ)-DP guarantee implied by ρ-zCDP.

    Canonne, Kamath & Steinke (2020), Proposition 1.3 / Corollary 13:
    ε = inf over α > 1 of αρ + (log(1/δ) + (α−1)·log(1−1/α) − log α) / (α−1).
    With x = α − 1 the derivative vanishes exactly where ρx² + log(1+x) = log(1/δ); the
    left side increases in x, so the minimiser is that unique root, found by Brent's method
    in (0, sqrt(log(1/δ)/ρ)].

    Parameters
    ----------
    rho : float
        zCDP parameter (> 0).
    delta : float
        Target δ, strictly between 0 and 1.

    Returns
    -------
    float
        The smallest ε (≥ 0) of the bound; never above :func:`rho_to_eps_classic`.

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) when ``rho`` ≤ 0 or ``delta`` is outside (0, 1).
    """
    r = _positive("rho", rho)
    d = _open_unit("delta", delta)
    # ρ-zCDP bounds the KL divergence by ρ, and TV ≤ sqrt(1 − exp(−KL)) (Bretagnolle–Huber):
    # when that is already ≤ δ the release is (0, δ)-DP.
    if d * d + math.expm1(-r) >= 0:
        return 0.0
    log_inv_delta = -math.log(d)

    def stationarity(x: float) -> float:
        return r * x * x + math.log1p(x) - log_inv_delta

    x = float(brentq(stationarity, 0.0, math.sqrt(log_inv_delta / r), xtol=1e-300, rtol=1e-14))
    eps = (1.0 + x) * r + math.log(x) - math.log1p(x) + (log_inv_delta - math.log1p(x)) / x
    return max(eps, 0.0)


def rho_to_eps_classic(rho: float, delta: float) -> float:
    """Classical (ε, δ) bound for ρ-zCDP: ε = ρ + 2·sqrt(ρ·log(1/δ)) (Bun & Steinke 2016).

    Parameters
    ----------
    rho : float
        zCDP parameter (> 0).
    delta : float
        Target δ, strictly between 0 and 1.

    Returns
    -------
    float
        ε of the classical bound (looser than :func:`rho_to_eps`).

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) when ``rho`` ≤ 0 or ``delta`` is outside (0, 1).
    """
    r = _positive("rho", rho)
    d = _open_unit("delta", delta)
    return r + 2.0 * math.sqrt(-r * math.log(d))


def eps_delta_to_rho(eps: float, delta: float) -> float:
    """Largest ρ whose tight conversion (:func:`rho_to_eps`) gives at most ``eps``.

    Parameters
    ----------
    eps : float
        Target ε (> 0).
    delta : float
        Target δ, strictly between 0 and 1.

    Returns
    -------
    float
        ρ such that ``rho_to_eps(rho, delta) <= eps``, within a relative 1e-12 of the largest.

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) when ``eps`` ≤ 0 or ``delta`` is outside (0, 1).
    """
    e = _positive("eps", eps)
    d = _open_unit("delta", delta)
    log_inv_delta = -math.log(d)
    # The classical bound is looser, so its ρ is a lower end of the bracket.
    lo = (math.sqrt(log_inv_delta + e) - math.sqrt(log_inv_delta)) ** 2
    hi = 2.0 * lo
    while rho_to_eps(hi, d) <= e:
        lo, hi = hi, 2.0 * hi
    # Bisection keeps the invariant rho_to_eps(lo) ≤ eps < rho_to_eps(hi).
    while hi - lo > 1e-12 * hi:
        mid = 0.5 * (lo + hi)
        if rho_to_eps(mid, d) <= e:
            lo = mid
        else:
            hi = mid
    return lo


# --- composition and declared costs -------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """The privacy cost a releasing function declares.

    Parameters
    ----------
    mechanism : str
        Name of the mechanism (``"gaussian"``, ``"none"``, ...).
    rho : float
        zCDP cost (≥ 0); 0 for releases protected only by aggregation and suppression.
    sensitivity : float or None, default None
        L2 sensitivity of the released statistic, when a noise mechanism was used.
    sigma : float or None, default None
        Standard deviation of the added noise, when a noise mechanism was used.
    note : str, default ""
        What was released and how it is protected, in plain words (for the audit log).
    """

    mechanism: str
    rho: float
    sensitivity: float | None = None
    sigma: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if not self.mechanism:
            raise PrivacyParameterError("mechanism must be a non-empty name", "required")
        _non_negative("rho", self.rho)
        if self.sensitivity is not None:
            _positive("sensitivity", self.sensitivity)
        if self.sigma is not None:
            _positive("sigma", self.sigma)

    @classmethod
    def none(cls, note: str) -> Release:
        """Cost of a release protected only by aggregation with small-cell suppression.

        Parameters
        ----------
        note : str
            What was released and the suppression applied (e.g. ``"counts, cells < 10
            suppressed"``); required, so that the audit log says why no budget was spent.

        Returns
        -------
        Release
            ``mechanism="none"``, ``rho=0``.

        Raises
        ------
        PrivacyParameterError
            (a ``ValueError``) when ``note`` is empty.
        """
        if not note.strip():
            raise PrivacyParameterError(
                "note must say how a release without noise is protected", "required"
            )
        return cls(mechanism="none", rho=0.0, note=note)

    @classmethod
    def gaussian(cls, sensitivity: float, rho: float, note: str = "") -> Release:
        """Cost of a release made by :func:`add_gaussian_noise` with the same arguments.

        Parameters
        ----------
        sensitivity : float
            L2 sensitivity of the released statistic (> 0).
        rho : float
            zCDP budget of the release (> 0).
        note : str, default ""
            What was released.

        Returns
        -------
        Release
            ``mechanism="gaussian"`` with σ from :func:`gaussian_sigma`.

        Raises
        ------
        PrivacyParameterError
            (a ``ValueError``) for a bad ``sensitivity`` or ``rho``.
        """
        sigma = gaussian_sigma(sensitivity, rho)
        return cls("gaussian", float(rho), float(sensitivity), sigma, note)


def compose(*costs: float | Release) -> float:
    """Total zCDP cost of several releases on the same data (ρ's add up).

    Parameters
    ----------
    *costs : float or Release
        Each release's ρ (≥ 0), or its declared :class:`Release`.

    Returns
    -------
    float
        The sum of the ρ's (0 for no releases).

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) when a ρ is negative or not finite.
    """
    total = 0.0
    for i, cost in enumerate(costs):
        rho = cost.rho if isinstance(cost, Release) else cost
        total += _non_negative(f"rhos[{i}]", rho)
    return total


# --- RDP accounting of the Poisson-subsampled Gaussian mechanism (DP-SGD) ------------------


def _orders_array(orders: npt.ArrayLike) -> npt.NDArray[np.float64]:
    alphas = np.atleast_1d(np.asarray(orders, dtype=np.float64))
    if alphas.ndim != 1 or alphas.size == 0:
        raise PrivacyParameterError("orders must be a non-empty 1-D sequence", "shape")
    if not np.all(np.isfinite(alphas)) or np.any(alphas <= 1):
        raise PrivacyParameterError(
            f"orders must all be finite and > 1, got {alphas[~(alphas > 1)].tolist()}", "order"
        )
    return alphas


def _log_a_integer(
    q: float, sigma: float, alphas: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """log A_α for integer α, 0 < q < 1 (Mironov, Talwar & Zhang 2019, Section 3.3).

    A_α = Σ_k C(α,k) (1−q)^(α−k) q^k exp((k²−k)/(2σ²)). The binomial weights sum to 1, so
    A_α − 1 = Σ_{k≥2} C(α,k) (1−q)^(α−k) q^k expm1((k²−k)/(2σ²)), a sum of positive terms
    that keeps its precision when A_α is close to 1 (small q).
    """
    k = np.arange(2, int(alphas.max()) + 1, dtype=np.float64)[None, :]
    a = alphas.astype(np.float64)[:, None]
    inside = k <= a
    a_minus_k = np.where(inside, a - k, 0.0)
    exponent = (k * k - k) / (2.0 * sigma * sigma)
    with np.errstate(divide="ignore"):
        log_expm1 = np.where(
            exponent > 30.0, exponent, np.log(np.expm1(np.minimum(exponent, 30.0)))
        )
    log_terms = (
        gammaln(a + 1.0)
        - gammaln(k + 1.0)
        - gammaln(a_minus_k + 1.0)
        + k * math.log(q)
        + a_minus_k * math.log1p(-q)
        + log_expm1
    )
    log_terms = np.where(inside, log_terms, -np.inf)
    log_a_minus_1 = logsumexp(log_terms, axis=1)
    result: npt.NDArray[np.float64] = np.logaddexp(0.0, log_a_minus_1)
    return result


def _log_a_fractional(q: float, sigma: float, alpha: float) -> float:
    """log A_α for any real α > 1, 0 < q < 1, by the trapezoidal rule.

    A_α = E_{z~N(0,σ²)}[((1−q) + q·exp((2z−1)/(2σ²)))^α]. The integrand's mass lies in
    [−Kσ, α + Kσ]; it is analytic in a strip of half-width min(πσ², σ), so a step of a tenth
    of that makes the trapezoidal error negligible (~e^(−20π)). When A_α is near 1 the sum is
    taken over the integrand minus the Gaussian density, i.e. A_α − 1, to keep precision.
    Returns NaN when the grid would be too large.
    """
    step = min(math.pi * sigma * sigma, sigma) / 10.0
    lo, hi = -_TAIL_SDS * sigma, alpha + _TAIL_SDS * sigma
    n_points = math.ceil((hi - lo) / step) + 1
    if n_points > _MAX_GRID_POINTS:
        return math.nan
    z = np.linspace(lo, hi, n_points)
    h = (hi - lo) / (n_points - 1)
    u = (2.0 * z - 1.0) / (2.0 * sigma * sigma)
    # log((1−q) + q·e^u): log1p form is exact near u = 0, logaddexp form cannot overflow.
    log_mix = np.where(
        u < 30.0,
        np.log1p(q * np.expm1(np.minimum(u, 30.0))),
        np.logaddexp(math.log1p(-q), math.log(q) + u),
    )
    log_density = -(z * z) / (2.0 * sigma * sigma) - math.log(sigma * math.sqrt(2.0 * math.pi))
    log_integrand = log_density + alpha * log_mix
    log_a = float(logsumexp(log_integrand)) + math.log(h)
    if log_a > 0.5:
        return log_a
    # exp(log_integrand) − density, by expm1 where the two nearly cancel.
    power = alpha * log_mix
    excess = np.where(
        power > 1.0,
        np.exp(log_integrand) - np.exp(log_density),
        np.exp(log_density) * np.expm1(np.minimum(power, 1.0)),
    )
    return math.log1p(max(float(excess.sum()) * h, 0.0))


def rdp_subsampled_gaussian(
    q: float, noise_multiplier: float, orders: npt.ArrayLike = DEFAULT_ORDERS
) -> npt.NDArray[np.float64]:
    """Rényi DP of one step of the Poisson-subsampled Gaussian mechanism.

    Each record joins the batch independently with probability ``q``; the batch's clipped
    sum (L2 sensitivity 1) gets N(0, noise_multiplier²) noise. RDP at order α is
    log(A_α)/(α−1) (Mironov, Talwar & Zhang 2019): exact binomial sum for integer α,
    numerical integration for fractional α (if that would need a huge grid — tiny noise with
    a large order — the convexity of log A_α in α gives the bound by interpolating between
    the neighbouring integers). For ``q = 1`` it is α/(2σ²) exactly.

    Parameters
    ----------
    q : float
        Sampling rate, in [0, 1].
    noise_multiplier : float
        Noise standard deviation over the clipping norm (> 0).
    orders : array_like of float, default DEFAULT_ORDERS
        Rényi orders α (> 1).

    Returns
    -------
    numpy.ndarray
        RDP ε(α) for each order, for one step (multiply by the number of steps to compose).

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) for ``q`` outside [0, 1], ``noise_multiplier`` ≤ 0 or an order ≤ 1.
    """
    rate = _finite("q", q)
    if not 0 <= rate <= 1:
        raise PrivacyParameterError(f"q must lie in [0, 1], got {q!r}", "probability")
    sigma = _positive("noise_multiplier", noise_multiplier)
    alphas = _orders_array(orders)
    if rate == 0:
        return np.zeros_like(alphas)
    if rate == 1:
        full: npt.NDArray[np.float64] = alphas / (2.0 * sigma * sigma)
        return full
    log_a = np.empty_like(alphas)
    integer = alphas == np.round(alphas)
    if integer.any():
        log_a[integer] = _log_a_integer(rate, sigma, alphas[integer].astype(np.int64))
    for i in np.flatnonzero(~integer):
        log_a[i] = _log_a_fractional(rate, sigma, float(alphas[i]))
        if math.isnan(log_a[i]):
            floor, ceil = math.floor(alphas[i]), math.ceil(alphas[i])
            ends = _log_a_integer(rate, sigma, np.array([max(floor, 2), ceil], dtype=np.int64))
            low_end = 0.0 if floor == 1 else float(ends[0])  # log A_1 = 0
            t = float(alphas[i]) - floor
            log_a[i] = (1.0 - t) * low_end + t * float(ends[1])
    rdp: npt.NDArray[np.float64] = log_a / (alphas - 1.0)
    return rdp


def rdp_to_eps(rdp: npt.ArrayLike, orders: npt.ArrayLike, delta: float) -> tuple[float, float]:
    """Best (ε, δ)-DP guarantee implied by RDP curve values.

    Uses ε(α) = rdp(α) + log((α−1)/α) − (log δ + log α)/(α−1) (Balle et al. 2020,
    Proposition 12; as in Opacus and dp_accounting), minimised over the given orders, and
    ε = 0 at orders where the KL bound sqrt(1 − exp(−rdp)) ≤ δ already holds.

    Parameters
    ----------
    rdp : array_like of float
        RDP value (≥ 0) at each order (already composed over all steps).
    orders : array_like of float
        Rényi orders α (> 1), same length as ``rdp``.
    delta : float
        Target δ, strictly between 0 and 1.

    Returns
    -------
    tuple of (float, float)
        ε (≥ 0) and the order that achieves it.

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) for mismatched lengths, a negative or NaN ``rdp``, an order ≤ 1
        or ``delta`` outside (0, 1).
    """
    d = _open_unit("delta", delta)
    alphas = _orders_array(orders)
    values = np.atleast_1d(np.asarray(rdp, dtype=np.float64))
    if values.shape != alphas.shape:
        raise PrivacyParameterError(
            f"rdp and orders must have the same length, got {values.size} and {alphas.size}",
            "shape",
        )
    if np.any(np.isnan(values)) or np.any(values < 0):
        raise PrivacyParameterError("rdp values must all be >= 0 (and not NaN)", "non-negative")
    with np.errstate(over="ignore", invalid="ignore"):
        eps = values + np.log1p(-1.0 / alphas) - (math.log(d) + np.log(alphas)) / (alphas - 1.0)
    eps = np.where(d * d + np.expm1(-values) >= 0, 0.0, eps)
    best = int(np.argmin(eps))
    return max(float(eps[best]), 0.0), float(alphas[best])


def dpsgd_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    orders: npt.ArrayLike = DEFAULT_ORDERS,
) -> float:
    """ε spent by DP-SGD with Poisson sampling, by the RDP accountant.

    Parameters
    ----------
    noise_multiplier : float
        Noise standard deviation over the clipping norm (> 0).
    sample_rate : float
        Probability q that a record joins a batch, in [0, 1] (batch size / dataset size).
    steps : int
        Number of noisy gradient steps (≥ 0).
    delta : float
        Target δ, strictly between 0 and 1.
    orders : array_like of float, default DEFAULT_ORDERS
        Rényi orders α (> 1) to optimise over.

    Returns
    -------
    float
        ε of the (ε, δ)-DP guarantee after ``steps`` steps.

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) for any parameter out of range.
    """
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise PrivacyParameterError(f"steps must be an integer >= 0, got {steps!r}", "count")
    alphas = _orders_array(orders)
    rdp = int(steps) * rdp_subsampled_gaussian(sample_rate, noise_multiplier, alphas)
    return rdp_to_eps(rdp, alphas, delta)[0]

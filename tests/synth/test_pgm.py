from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize

from cardiobox.synth.junction import triangulate
from cardiobox.synth.marginals import Measurement, marginal, measure
from cardiobox.synth.pgm import (
    MarginalModel,
    ModelError,
    ModelSizeError,
    Step,
    estimate,
    estimate_total,
    project_to_simplex,
)

SIZES = [3, 4, 2, 5, 3]
TREE = [(0, 1), (1, 2), (1, 3), (3, 4)]
ONE_WAY = [(v,) for v in range(len(SIZES))]
ALL_PAIRS = list(itertools.combinations(range(len(SIZES)), 2))


def tree_model(seed: int, total: float, given=TREE) -> MarginalModel:
    rng = np.random.default_rng(seed)
    cliques = triangulate(SIZES, given)
    potentials = [rng.normal(scale=0.8, size=tuple(SIZES[v] for v in c)) for c in cliques]
    return MarginalModel(SIZES, cliques, potentials, total)


def loss(model: MarginalModel, measurements: list[Measurement]) -> float:
    return sum(
        0.5 * float(np.sum((model.project(m.clique) - m.values) ** 2)) / m.sigma**2
        for m in measurements
    )


def test_noise_free_tree_marginals_are_recovered_exactly() -> None:
    truth = tree_model(0, 10_000.0)
    measurements = [Measurement(c, truth.project(c), 1.0) for c in TREE + ONE_WAY]
    fitted = estimate(SIZES, measurements)
    assert fitted.total == pytest.approx(10_000.0, rel=1e-12)
    # The same distribution: every marginal agrees, not only the measured ones.
    for clique in ALL_PAIRS + ONE_WAY:
        difference = np.abs(fitted.project(clique) - truth.project(clique)) / 10_000.0
        assert difference.max() < 1e-6, clique


def test_noise_free_marginals_of_a_triangulated_model_are_recovered() -> None:
    truth = tree_model(1, 500.0, given=[(0, 1), (1, 2), (2, 3), (3, 0), (3, 4)])
    measurements = [Measurement(c, truth.project(c), 0.5) for c in truth.cliques]
    fitted = estimate(SIZES, measurements)
    assert sorted(fitted.cliques) == sorted(truth.cliques)
    for clique in ALL_PAIRS:
        assert np.abs(fitted.project(clique) - truth.project(clique)).max() / 500.0 < 1e-6


def test_a_large_sample_with_tiny_noise_recovers_the_true_marginals() -> None:
    truth = tree_model(2, 1.0)
    rng = np.random.default_rng(3)
    n = 400_000
    codes = truth.sample(n, rng)
    measurements = [
        measure(marginal(codes, SIZES, c), c, 50.0, rng) for c in TREE + ONE_WAY
    ]  # σ = 0.1 counts
    fitted = estimate(SIZES, measurements)
    assert fitted.total == pytest.approx(n, abs=1.0)
    for clique in [*TREE, (0, 4), (2, 4), (0, 2, 4)]:
        error = np.abs(fitted.project(clique) / fitted.total - truth.project(clique))
        # Sampling error of a frequency near 0.1 is about 5e-4 here.
        assert error.max() < 3e-3, clique


def test_the_estimate_is_the_constrained_least_squares_optimum() -> None:
    # Two columns: the model is the whole 3×4 table, so the problem is a small QP that a
    # generic solver handles. Counts are large enough that the optimum is interior.
    rng = np.random.default_rng(4)
    truth = rng.uniform(20, 60, size=(3, 4))
    total = float(truth.sum())
    sigmas = {(0, 1): 4.0, (0,): 2.0, (1,): 3.0}
    measurements = [
        Measurement((0, 1), truth + rng.normal(0, 4.0, (3, 4)), 4.0),
        Measurement((0,), truth.sum(1) + rng.normal(0, 2.0, 3), 2.0),
        Measurement((1,), truth.sum(0) + rng.normal(0, 3.0, 4), 3.0),
    ]

    def objective(flat: np.ndarray) -> float:
        table = flat.reshape(3, 4)
        parts = {(0, 1): table, (0,): table.sum(1), (1,): table.sum(0)}
        return sum(
            0.5 * float(np.sum((parts[m.clique] - m.values) ** 2)) / sigmas[m.clique] ** 2
            for m in measurements
        )

    reference = minimize(
        objective,
        truth.ravel(),
        method="SLSQP",
        constraints=[{"type": "eq", "fun": lambda x: x.sum() - total}],
        bounds=[(0, None)] * 12,
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    fitted = estimate([3, 4], measurements, total=total, tol=1e-12, iters=5000)
    np.testing.assert_allclose(fitted.project((0, 1)), reference.x.reshape(3, 4), atol=1e-3)


def test_default_iterations_come_close_to_the_optimum() -> None:
    truth = tree_model(5, 300.0)
    rng = np.random.default_rng(6)
    codes = truth.sample(300, rng)
    measurements = [measure(marginal(codes, SIZES, c), c, 0.05, rng) for c in TREE + ONE_WAY]
    quick = estimate(SIZES, measurements)
    thorough = estimate(SIZES, measurements, iters=3000, tol=0.0)
    assert loss(quick, measurements) <= 1.01 * loss(thorough, measurements)


def test_warm_start_reaches_the_same_optimum() -> None:
    truth = tree_model(7, 1000.0)
    rng = np.random.default_rng(8)
    codes = truth.sample(1000, rng)
    measurements = [measure(marginal(codes, SIZES, c), c, 0.1, rng) for c in TREE + ONE_WAY]
    first = estimate(SIZES, measurements[:3])
    warm = estimate(SIZES, measurements, warm_start=first)
    cold = estimate(SIZES, measurements)
    assert loss(warm, measurements) == pytest.approx(loss(cold, measurements), rel=5e-3)


def test_estimate_total_weights_by_inverse_variance() -> None:
    a = Measurement((0,), np.array([25.0, 25.0, 25.0, 25.0]), 1.0)  # sum 100, variance 4
    b = Measurement((1,), np.array([50.0, 60.0]), 2.0)  # sum 110, variance 8
    assert estimate_total([a, b]) == pytest.approx((100 / 4 + 110 / 8) / (1 / 4 + 1 / 8))
    assert estimate_total([Measurement((0,), np.array([-5.0, -5.0]), 1.0)]) == 1.0
    assert estimate_total([]) == 1.0


def test_project_to_simplex_is_the_euclidean_projection() -> None:
    rng = np.random.default_rng(9)
    for _ in range(20):
        values = rng.normal(5, 10, size=7)
        total = float(rng.uniform(1, 50))
        projected = project_to_simplex(values, total)
        assert projected.min() >= 0 and projected.sum() == pytest.approx(total)
        reference = minimize(
            lambda x, v=values: 0.5 * float(np.sum((x - v) ** 2)),
            np.full(7, total / 7),
            method="SLSQP",
            constraints=[{"type": "eq", "fun": lambda x, t=total: x.sum() - t}],
            bounds=[(0, None)] * 7,
            options={"ftol": 1e-14},
        )
        np.testing.assert_allclose(projected, reference.x, atol=1e-5)


def test_unmeasured_columns_stay_uniform_and_independent() -> None:
    rng = np.random.default_rng(10)
    fitted = estimate(SIZES, [Measurement((0, 1), rng.uniform(5, 10, (3, 4)), 1.0)])
    np.testing.assert_allclose(fitted.project((4,)), np.full(3, fitted.total / 3))
    np.testing.assert_allclose(fitted.project((2, 3)), np.full((2, 5), fitted.total / 10))


def test_measurement_axes_may_come_in_any_order() -> None:
    truth = tree_model(11, 200.0)
    forward = [Measurement(c, truth.project(c), 1.0) for c in TREE]
    backward = [Measurement(c[::-1], truth.project(c[::-1]), 1.0) for c in TREE]
    a, b = estimate(SIZES, forward), estimate(SIZES, backward)
    np.testing.assert_allclose(a.project((0, 4)), b.project((0, 4)), atol=1e-9)


def test_steps_and_mechanism_are_recorded() -> None:
    steps = [Step("measure", (0,), 0.5, 1.0)]
    fitted = estimate(SIZES, [Measurement((0,), np.ones(3), 1.0)], mechanism="demo", steps=steps)
    assert fitted.mechanism == "demo" and fitted.steps == tuple(steps) and fitted.rho == 0.5


@pytest.mark.parametrize(
    ("measurements", "kwargs", "message"),
    [
        ([Measurement((0,), np.ones(4), 1.0)], {}, "shape"),
        ([Measurement((0,), np.ones(3), 0.0)], {}, "sigma"),
        ([Measurement((0,), np.array([1.0, np.nan, 1.0]), 1.0)], {}, "non-finite"),
        ([Measurement((0, 0), np.ones((3, 3)), 1.0)], {}, "repeats"),
        ([Measurement((7,), np.ones(3), 1.0)], {}, "outside"),
        ([((0,), np.ones(3), 1.0)], {}, "must be a Measurement"),
        ([Measurement((0,), np.ones(3), 1.0)], {"iters": -1}, "iters"),
        ([Measurement((0,), np.ones(3), 1.0)], {"total": 0.0}, "total"),
    ],
)
def test_estimate_names_bad_input(measurements, kwargs, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        estimate(SIZES, measurements, **kwargs)


def test_estimate_refuses_models_above_the_size_limit() -> None:
    measurements = [Measurement((0, 1, 3), np.ones((3, 4, 5)), 1.0)]
    with pytest.raises(ModelSizeError, match="60 cells"):
        estimate(SIZES, measurements, max_clique_cells=50)


def test_per_cell_noise_weights_each_cell_by_its_precision() -> None:
    # One column, total fixed: minimise Σ (μ_i − y_i)² / (2σ_i²) subject to Σ μ = N gives
    # μ_i = y_i − σ_i² (Σy − N) / Σσ² (closed form, Lagrange multiplier).
    y = np.array([40.0, 25.0, 20.0, 15.0])
    sigma = np.array([1.0, 2.0, 3.0, 0.5])
    total = 90.0
    fitted = estimate([4], [Measurement((0,), y, sigma)], total=total, tol=0.0)
    expected = y - sigma**2 * (y.sum() - total) / np.sum(sigma**2)
    np.testing.assert_allclose(fitted.project((0,)), expected, rtol=1e-5)
    # The total's estimate weighs each measurement by the variance of its sum, Σσ².
    other = Measurement((0,), y + 10.0, 2.0)  # sum 140, variance 4·4 = 16
    pooled = (100.0 / np.sum(sigma**2) + 140.0 / 16.0) / (1.0 / np.sum(sigma**2) + 1.0 / 16.0)
    assert estimate_total([Measurement((0,), y, sigma), other]) == pytest.approx(pooled)


def test_per_cell_noise_equal_to_a_scalar_changes_nothing() -> None:
    truth = tree_model(3, 800.0)
    rng = np.random.default_rng(4)
    scalar = [measure(truth.project(c), c, 0.5, rng) for c in TREE + ONE_WAY]
    cells = [Measurement(m.clique, m.values, np.full(m.values.shape, m.sigma)) for m in scalar]
    a, b = estimate(SIZES, scalar), estimate(SIZES, cells)
    for clique in ALL_PAIRS:
        np.testing.assert_allclose(a.project(clique), b.project(clique), rtol=1e-9, atol=1e-9)


def test_per_cell_noise_of_the_wrong_shape_is_refused() -> None:
    bad = Measurement((0,), np.ones(3), np.ones(2))
    with pytest.raises(ModelError, match="sigma of shape"):
        estimate(SIZES, [bad])
    with pytest.raises(ModelError, match="sigma must be > 0"):
        estimate(SIZES, [Measurement((0,), np.ones(3), np.array([1.0, 0.0, 1.0]))])

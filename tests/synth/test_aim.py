from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from tests.synth.cleveland import cleveland_codes, mean_tvd

from cardiobox.privacy.zcdp import PrivacyParameterError, eps_delta_to_rho, gaussian_sigma
from cardiobox.synth.aim import candidate_weights, fit_aim
from cardiobox.synth.marginals import CodesError, MechanismError
from cardiobox.synth.mst import fit_mst


def chain_data(seed: int, n: int, d: int = 5, k: int = 3) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    codes = np.empty((n, d), dtype=np.int64)
    codes[:, 0] = rng.integers(0, k, n)
    for j in range(1, d):
        codes[:, j] = np.where(rng.random(n) < 0.7, codes[:, j - 1], rng.integers(0, k, n))
    return codes, [k] * d


def test_candidates_are_the_downward_closure_with_overlap_weights() -> None:
    weights = candidate_weights([(0, 1), (0, 2), (1, 2)])
    assert weights == {(0,): 2, (1,): 2, (2,): 2, (0, 1): 4, (0, 2): 4, (1, 2): 4}
    assert candidate_weights([(0, 1, 2)])[(0, 2)] == 2


def test_every_step_is_accounted_and_the_budget_is_spent() -> None:
    codes, sizes = chain_data(0, 1000)
    d, rho = len(sizes), 0.5
    model = fit_aim(codes, sizes, rho, np.random.default_rng(1))
    assert model.mechanism == "aim"
    total = math.fsum(step.rho for step in model.steps)
    assert total == model.rho
    assert total <= rho and total == pytest.approx(rho, rel=1e-9)
    rounds = 16 * d
    first_sigma = math.sqrt(rounds / (2 * 0.9 * rho))
    one_way = model.steps[:d]
    assert [s.clique for s in one_way] == [(v,) for v in range(d)]
    for step in one_way:
        assert step.kind == "measure" and step.sigma == pytest.approx(first_sigma, rel=1e-9)
        assert step.sigma == gaussian_sigma(1.0, step.rho)
    # Then rounds: a selection followed by the measurement of what it selected, 1:9.
    rest = model.steps[d:]
    assert len(rest) % 2 == 0 and rest
    for select, measured in zip(rest[::2], rest[1::2], strict=True):
        assert select.kind == "select" and measured.kind == "measure"
        assert select.clique == measured.clique and select.sigma is None
        assert measured.rho == pytest.approx(9 * select.rho, rel=1e-9)
        assert measured.sigma == gaussian_sigma(1.0, measured.rho)


def test_sigma_anneals_by_halving() -> None:
    codes, sizes = chain_data(2, 200)
    model = fit_aim(codes, sizes, 2.0, np.random.default_rng(3))
    sigmas = [s.sigma for s in model.steps if s.kind == "measure" and s.sigma is not None]
    ratios = [b / a for a, b in itertools.pairwise(sigmas)]
    # Between rounds σ stays or halves; the last round may spend a leftover of any size.
    assert any(r == pytest.approx(0.5) for r in ratios)
    assert all(r == pytest.approx(1.0) or r == pytest.approx(0.5) for r in ratios[:-1])


def test_the_model_stays_within_the_size_limit() -> None:
    codes, sizes = chain_data(4, 3000, d=6, k=5)
    model = fit_aim(codes, sizes, 5.0, np.random.default_rng(5), max_model_size=120)
    assert model.size() <= 120
    assert all(len(c) <= 2 for c in model.cliques)


def test_a_three_way_workload_is_supported() -> None:
    codes, sizes = chain_data(6, 500, d=4)
    workload = list(itertools.combinations(range(4), 3))
    model = fit_aim(codes, sizes, 1.0, np.random.default_rng(7), workload=workload)
    assert model.rho == pytest.approx(1.0, rel=1e-9)
    assert model.sample(10, np.random.default_rng(8)).shape == (10, 4)


def test_bad_arguments_are_refused() -> None:
    codes, sizes = chain_data(9, 50)
    rng = np.random.default_rng(0)
    with pytest.raises(PrivacyParameterError, match="rho"):
        fit_aim(codes, sizes, -1.0, rng)
    with pytest.raises(MechanismError, match="rounds"):
        fit_aim(codes, sizes, 1.0, rng, rounds=3)
    with pytest.raises(MechanismError, match="max_model_size"):
        fit_aim(codes, sizes, 1.0, rng, max_model_size=0)
    with pytest.raises(MechanismError, match="max_model_size=2"):
        fit_aim(codes, sizes, 1.0, rng, max_model_size=2)
    with pytest.raises(CodesError, match="outside"):
        fit_aim(codes, sizes, 1.0, rng, workload=[(0, 9)])
    with pytest.raises(MechanismError, match="workload"):
        fit_aim(codes, sizes, 1.0, rng, workload=[])
    with pytest.raises(TypeError, match="Generator"):
        fit_aim(codes, sizes, 1.0, None)  # type: ignore[arg-type]


def test_fits_are_reproducible() -> None:
    codes, sizes = chain_data(10, 300)
    a = fit_aim(codes, sizes, 0.3, np.random.default_rng(11))
    b = fit_aim(codes, sizes, 0.3, np.random.default_rng(11))
    assert a.to_dict() == b.to_dict()


def test_cleveland_two_way_fidelity_matches_mst_at_epsilon_10() -> None:
    codes, sizes = cleveland_codes()
    rho = eps_delta_to_rho(10.0, 1e-5)
    aim = fit_aim(codes, sizes, rho, np.random.default_rng(2024))
    mst = fit_mst(codes, sizes, rho, np.random.default_rng(2024))
    assert aim.rho <= rho
    aim_tvd = mean_tvd(codes, aim.sample(50_000, np.random.default_rng(1)), sizes, 2)
    mst_tvd = mean_tvd(codes, mst.sample(50_000, np.random.default_rng(1)), sizes, 2)
    assert aim_tvd <= mst_tvd + 0.02
    assert mean_tvd(codes, aim.sample(50_000, np.random.default_rng(2)), sizes, 1) < 0.05


def test_compression_is_optional_and_free() -> None:
    # Five columns of 12 codes, of which the data use the first three: nine empty codes each.
    codes, _ = chain_data(8, 3000)
    sizes = [12] * 5
    plain = fit_aim(codes, sizes, 2.0, np.random.default_rng(9))
    assert plain.compression is None  # off by default
    merged = fit_aim(codes, sizes, 2.0, np.random.default_rng(9), compress="rare")
    assert merged.compression is not None and merged.sizes == tuple(sizes)
    assert max(merged.model_sizes) < 12
    # The 1-way measurements are the same releases either way: same ρ, same σ.
    first = [(s.clique, s.rho, s.sigma) for s in plain.steps[:5]]
    assert first == [(s.clique, s.rho, s.sigma) for s in merged.steps[:5]]
    assert merged.rho == pytest.approx(2.0, rel=1e-9)
    synthetic = merged.sample(3000, np.random.default_rng(10))
    assert synthetic.max() < 12
    assert mean_tvd(codes, synthetic, sizes, 1) < 0.05

from __future__ import annotations

import numpy as np
import pytest
from tests.synth.cleveland import cleveland_codes, mean_tvd

from cardiobox.privacy.zcdp import PrivacyParameterError, eps_delta_to_rho, gaussian_sigma
from cardiobox.synth.junction import triangulate
from cardiobox.synth.marginals import CodesError
from cardiobox.synth.mst import fit_mst
from cardiobox.synth.pgm import MarginalModel


def tree_data(seed: int, n: int) -> tuple[np.ndarray, list[int], list[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    sizes = [int(s) for s in rng.integers(2, 6, 8)]
    edges = [(int(rng.integers(0, i)), i) for i in range(1, 8)]
    cliques = triangulate(sizes, edges)
    potentials = [rng.normal(scale=2.0, size=tuple(sizes[v] for v in c)) for c in cliques]
    model = MarginalModel(sizes, cliques, potentials, float(n))
    return model.sample(n, rng), sizes, sorted(tuple(sorted(e)) for e in edges)


def test_budget_is_split_in_thirds_with_closed_form_noise() -> None:
    codes, sizes, _ = tree_data(0, 2000)
    d, rho = len(sizes), 0.6
    model = fit_mst(codes, sizes, rho, np.random.default_rng(1))
    assert model.mechanism == "mst"
    assert model.rho <= rho and model.rho == pytest.approx(rho, rel=1e-9)
    one_way = [s for s in model.steps if s.kind == "measure" and len(s.clique) == 1]
    selections = [s for s in model.steps if s.kind == "select"]
    two_way = [s for s in model.steps if s.kind == "measure" and len(s.clique) == 2]
    assert [s.clique for s in one_way] == [(v,) for v in range(d)]
    assert len(selections) == len(two_way) == d - 1
    for step in one_way:
        assert step.rho == pytest.approx(rho / 3 / d, rel=1e-9)
        assert step.sigma == gaussian_sigma(1.0, step.rho)
    for step in selections:
        # Each choice is an exponential mechanism with ε = sqrt(8ρ/3/(d−1)), i.e. ε²/8 zCDP.
        assert step.rho == pytest.approx(rho / 3 / (d - 1), rel=1e-9) and step.sigma is None
    for step in two_way:
        assert step.rho == pytest.approx(rho / 3 / (d - 1), rel=1e-9)
        assert step.sigma == gaussian_sigma(1.0, step.rho)
    assert [s.clique for s in selections] == [s.clique for s in two_way]


def test_the_selected_pairs_form_a_spanning_tree() -> None:
    codes, sizes, _ = tree_data(2, 500)
    model = fit_mst(codes, sizes, 0.05, np.random.default_rng(3))
    assert len(model.cliques) == len(sizes) - 1
    assert all(len(c) == 2 for c in model.cliques)
    # A connected graph with d − 1 edges on d nodes is a tree.
    reached, frontier = {0}, [0]
    while frontier:
        v = frontier.pop()
        for a, b in model.cliques:
            for u, w in ((a, b), (b, a)):
                if u == v and w not in reached:
                    reached.add(w)
                    frontier.append(w)
    assert reached == set(range(len(sizes)))


def test_a_generous_budget_finds_the_true_tree() -> None:
    # Each column copies its parent's code with probability 0.6, else draws uniformly: every
    # pair two steps apart is strictly less dependent (in L1) than the edges between them.
    rng = np.random.default_rng(4)
    d, n, k = 8, 20_000, 4
    parents = [int(rng.integers(0, i)) for i in range(1, d)]
    codes = np.empty((n, d), dtype=np.int64)
    codes[:, 0] = rng.integers(0, k, n)
    for child, parent in enumerate(parents, start=1):
        copy = rng.random(n) < 0.6
        codes[:, child] = np.where(copy, codes[:, parent], rng.integers(0, k, n))
    model = fit_mst(codes, [k] * d, 10.0, np.random.default_rng(5))
    assert sorted(model.cliques) == sorted((p, c) for c, p in enumerate(parents, start=1))


def test_small_domains_spend_the_whole_budget() -> None:
    rng = np.random.default_rng(6)
    single = fit_mst(rng.integers(0, 3, (50, 1)), [3], 0.4, rng)
    assert [s.kind for s in single.steps] == ["measure"]
    assert single.rho == pytest.approx(0.4, rel=1e-9)
    pair = fit_mst(rng.integers(0, 3, (50, 2)), [3, 3], 0.4, rng)
    assert [s.kind for s in pair.steps] == ["measure", "measure", "measure"]
    assert pair.rho == pytest.approx(0.4, rel=1e-9) and pair.cliques == ((0, 1),)


def test_pairs_above_the_size_limit_leave_a_forest() -> None:
    rng = np.random.default_rng(7)
    sizes = [30, 30, 2]
    codes = np.stack([rng.integers(0, k, 200) for k in sizes], axis=1)
    model = fit_mst(codes, sizes, 1.0, rng, max_clique_cells=100)
    assert (0, 1) not in model.cliques
    assert model.rho == pytest.approx(1.0, rel=1e-9)


def test_fits_are_reproducible() -> None:
    codes, sizes, _ = tree_data(8, 300)
    a = fit_mst(codes, sizes, 0.2, np.random.default_rng(9))
    b = fit_mst(codes, sizes, 0.2, np.random.default_rng(9))
    assert a.to_dict() == b.to_dict()


def test_bad_arguments_are_refused() -> None:
    codes, sizes, _ = tree_data(10, 20)
    with pytest.raises(PrivacyParameterError, match="rho"):
        fit_mst(codes, sizes, 0.0, np.random.default_rng(0))
    with pytest.raises(PrivacyParameterError, match="rho"):
        fit_mst(codes, sizes, float("inf"), np.random.default_rng(0))
    with pytest.raises(CodesError, match="column"):
        fit_mst(codes + 10, sizes, 1.0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        fit_mst(codes, sizes, 1.0, 0)  # type: ignore[arg-type]


def test_cleveland_marginals_at_epsilon_10() -> None:
    codes, sizes = cleveland_codes()
    assert codes.shape == (303, 14)
    rho = eps_delta_to_rho(10.0, 1e-5)
    model = fit_mst(codes, sizes, rho, np.random.default_rng(2024))
    # Many synthetic rows, so that the distances measure the model, not sampling noise.
    synthetic = model.sample(50_000, np.random.default_rng(2025))
    assert mean_tvd(codes, synthetic, sizes, 1) < 0.05
    assert mean_tvd(codes, synthetic, sizes, 2) < 0.15

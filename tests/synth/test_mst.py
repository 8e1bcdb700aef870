from __future__ import annotations

import numpy as np
import pytest
from tests.synth.cleveland import cleveland_codes, mean_tvd

from cardiobox.privacy.zcdp import PrivacyParameterError, eps_delta_to_rho, gaussian_sigma
from cardiobox.synth.compress import CompressionError
from cardiobox.synth.junction import triangulate
from cardiobox.synth.marginals import CodesError, Measurement, measure
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


def sparse_data(seed: int, n: int = 3000) -> tuple[np.ndarray, list[int]]:
    """Six columns of 30 codes each, of which the data use only four (a tree of copies)."""
    rng = np.random.default_rng(seed)
    used = rng.choice(30, size=(6, 4), replace=False)
    latent = np.empty((n, 6), dtype=np.int64)
    latent[:, 0] = rng.integers(0, 4, n)
    for j in range(1, 6):
        copy = rng.random(n) < 0.7
        latent[:, j] = np.where(copy, latent[:, j - 1], rng.integers(0, 4, n))
    return used[np.arange(6)[None, :], latent], [30] * 6


def test_compression_sees_only_the_released_one_way_marginals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cardiobox.synth.mst as mst_module
    from cardiobox.synth.compress import compress_domain

    codes, sizes = sparse_data(11)
    released: list[Measurement] = []
    calls: list[tuple[object, ...]] = []

    def spy_measure(*args: object, **kwargs: object) -> Measurement:
        m = measure(*args, **kwargs)  # type: ignore[arg-type]
        released.append(m)
        return m

    def spy_compress(*args: object) -> object:
        calls.append(args)
        return compress_domain(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(mst_module, "measure", spy_measure)
    monkeypatch.setattr(mst_module, "compress_domain", spy_compress)
    model = fit_mst(codes, sizes, 0.5, np.random.default_rng(12))
    # compress_domain got the public sizes and the noisy 1-way marginals, nothing else ...
    ((given_sizes, given_one_way, merge, threshold),) = calls
    assert tuple(given_sizes) == tuple(sizes) and (merge, threshold) == ("adjacent", 3.0)
    assert list(given_one_way) == released[: len(sizes)]  # the very released measurements
    # ... and the model's groups and shares follow from those released values alone.
    again, _ = compress_domain(sizes, released[: len(sizes)], "adjacent", 3.0)
    assert model.compression is not None
    for a, b in zip(model.compression.groups, again.groups, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.compression.shares, again.shares, strict=True):
        np.testing.assert_array_equal(a, b)
    # The privacy cost is the same as without compression: the steps are unchanged.
    plain = fit_mst(codes, sizes, 0.5, np.random.default_rng(12), compress=None)
    assert [(s.kind, s.clique, s.rho) for s in model.steps][: len(sizes)] == [
        (s.kind, s.clique, s.rho) for s in plain.steps
    ][: len(sizes)]
    assert model.rho == pytest.approx(plain.rho, rel=1e-12)


def test_compression_improves_the_one_way_marginals_of_a_sparse_table() -> None:
    codes, sizes = sparse_data(13)
    rho = 0.02  # σ ≈ 22 per 1-way cell: noise on 26 empty codes outweighs the data
    errors: dict[str | None, list[float]] = {"adjacent": [], "rare": [], None: []}
    for seed in range(4):
        for merge in errors:
            model = fit_mst(codes, sizes, rho, np.random.default_rng(seed), compress=merge)
            synthetic = model.sample(len(codes), np.random.default_rng(seed + 100))
            errors[merge].append(mean_tvd(codes, synthetic, sizes, 1))
    plain = float(np.mean(errors[None]))
    assert float(np.mean(errors["adjacent"])) < 0.7 * plain
    assert float(np.mean(errors["rare"])) < 0.7 * plain
    assert model.compression is None and model.sizes == (30,) * 6


def test_a_compressed_model_samples_every_code_of_the_domain_space() -> None:
    codes, sizes = sparse_data(14)
    model = fit_mst(codes, sizes, 5.0, np.random.default_rng(15))
    assert model.compression is not None and model.sizes == tuple(sizes)
    assert max(model.model_sizes) < 30
    synthetic = model.sample(2000, np.random.default_rng(16))
    assert synthetic.shape == (2000, 6) and synthetic.max() < 30
    # With a generous budget the model's support is the data's (noise below 3σ merged away).
    for j in range(6):
        assert set(np.unique(synthetic[:, j])) <= set(np.unique(codes[:, j])) | set(
            np.flatnonzero(model.compression.shares[j] > 0)
        )


def test_bad_compression_arguments_are_refused_before_measuring() -> None:
    codes, sizes, _ = tree_data(16, 50)
    with pytest.raises(CompressionError, match="compress must be"):
        fit_mst(codes, sizes, 1.0, np.random.default_rng(0), compress="bucket")
    with pytest.raises(CompressionError, match="compress_threshold"):
        fit_mst(codes, sizes, 1.0, np.random.default_rng(0), compress_threshold=-1.0)

from __future__ import annotations

import itertools
import json
import string

import numpy as np
import pytest

from cardiobox.synth.compress import Compression
from cardiobox.synth.junction import triangulate
from cardiobox.synth.marginals import marginal
from cardiobox.synth.model import MarginalModel, ModelError, ModelSizeError, Step

SIZES = [3, 2, 4, 2, 3, 40, 2]
# A triangulated cycle, a branch, and column 5 with 40 codes (its conditional table has
# more outcomes than the compare-based sampler handles, so binary search is used).
GIVEN = [(0, 1), (1, 2), (2, 3), (3, 0), (3, 4), (4, 5), (6,)]
TOTAL = 250.0


def make_model(seed: int = 0) -> MarginalModel:
    rng = np.random.default_rng(seed)
    cliques = triangulate(SIZES, GIVEN)
    potentials = [rng.normal(scale=1.2, size=tuple(SIZES[v] for v in c)) for c in cliques]
    steps = [Step("measure", (0, 1), 0.25, 1.4142135623730951), Step("select", (3, 4), 0.5, None)]
    return MarginalModel(SIZES, cliques, potentials, TOTAL, mechanism="test", steps=steps)


def joint(model: MarginalModel) -> np.ndarray:
    letters = string.ascii_lowercase
    spec = ",".join("".join(letters[v] for v in c) for c in model.cliques)
    table = np.einsum(
        f"{spec}->{letters[: len(SIZES)]}", *[np.exp(p) for p in model.log_potentials]
    )
    return table / table.sum()


def reference(full: np.ndarray, clique: tuple[int, ...]) -> np.ndarray:
    table = full.sum(axis=tuple(a for a in range(full.ndim) if a not in clique))
    order = np.argsort(np.argsort(clique))
    return TOTAL * table.transpose(order)


QUERIES = [
    (0,),
    (5,),
    (1, 0),
    (0, 5),
    (5, 0),
    (2, 6),
    (6, 5, 1),
    (4, 1, 2),
    (0, 1, 2, 3, 4, 5, 6),
]


@pytest.mark.parametrize("query", QUERIES)
def test_project_is_exact_inside_and_across_cliques(query: tuple[int, ...]) -> None:
    model = make_model()
    np.testing.assert_allclose(model.project(query), reference(joint(model), query), atol=1e-10)


def test_project_many_matches_project_for_every_pair() -> None:
    model = make_model(1)
    queries = [*itertools.permutations(range(len(SIZES)), 2), (3,), (6, 2, 0)]
    for query, table in zip(queries, model.project_many(queries), strict=True):
        np.testing.assert_allclose(table, model.project(query), atol=1e-10)


def test_description_and_accounting() -> None:
    model = make_model()
    assert model.sizes == tuple(SIZES)
    assert model.total == TOTAL
    assert model.mechanism == "test"
    assert model.rho == 0.75
    assert model.size() == sum(int(np.prod([SIZES[v] for v in c])) for c in model.cliques)


@pytest.mark.parametrize("rounded", [True, False])
def test_samples_reproduce_the_model_marginals(rounded: bool) -> None:
    model = make_model(2)
    n = 200_000
    codes = model.sample(n, np.random.default_rng(3), rounded=rounded)
    assert codes.shape == (n, len(SIZES)) and codes.dtype == np.int64
    for clique in [(0,), (5,), (0, 1), (3, 4), (4, 5), (0, 4), (2, 6)]:
        expected = model.project(clique) / TOTAL
        observed = marginal(codes, SIZES, clique) / n
        # Each cell's frequency is binomial: allow 5 standard errors (plus rounding).
        tolerance = 5 * np.sqrt(expected * (1 - expected) / n) + 1e-9
        assert np.all(np.abs(observed - expected) <= tolerance), clique


def test_sampling_is_reproducible_and_handles_zero_rows() -> None:
    model = make_model()
    a = model.sample(1000, np.random.default_rng(5))
    b = model.sample(1000, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert model.sample(0, np.random.default_rng(5)).shape == (0, len(SIZES))


def test_json_round_trip_keeps_the_model() -> None:
    model = make_model(4)
    text = json.dumps(model.to_dict())
    back = MarginalModel.from_dict(json.loads(text))
    assert back.cliques == model.cliques
    assert back.total == model.total and back.mechanism == model.mechanism
    assert back.steps == model.steps and back.rho == model.rho
    for a, b in zip(back.log_potentials, model.log_potentials, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        back.sample(500, np.random.default_rng(6)), model.sample(500, np.random.default_rng(6))
    )
    np.testing.assert_array_equal(back.project((0, 5)), model.project((0, 5)))


def test_from_dict_names_what_is_wrong() -> None:
    document = make_model().to_dict()
    with pytest.raises(ModelError, match="format"):
        MarginalModel.from_dict({**document, "format": "pickle"})
    with pytest.raises(ModelError, match="malformed"):
        MarginalModel.from_dict({k: v for k, v in document.items() if k != "total"})
    short = {**document, "log_potentials": [t[:-1] for t in document["log_potentials"]]}
    with pytest.raises(ModelError, match="values"):
        MarginalModel.from_dict(short)


def test_constructor_checks_tables_and_total() -> None:
    cliques = [(0, 1), (1, 2)]
    good = [np.zeros((3, 2)), np.zeros((2, 4))]
    with pytest.raises(ModelError, match="shape"):
        MarginalModel(SIZES[:3], cliques, [np.zeros((2, 3)), good[1]], 1.0)
    with pytest.raises(ModelError, match="finite"):
        MarginalModel(SIZES[:3], cliques, [np.full((3, 2), np.inf), good[1]], 1.0)
    with pytest.raises(ModelError, match="total"):
        MarginalModel(SIZES[:3], cliques, good, 0.0)
    with pytest.raises(ModelError, match="not connected"):
        MarginalModel([2] * 4, [(0, 1), (1, 2), (2, 3), (0, 3)], [np.zeros((2, 2))] * 4, 1.0)


def test_unsorted_cliques_are_transposed_to_match() -> None:
    rng = np.random.default_rng(7)
    table = rng.normal(size=(2, 3))  # axes (1, 0)
    a = MarginalModel([3, 2], [(1, 0)], [table], 10.0)
    b = MarginalModel([3, 2], [(0, 1)], [table.T], 10.0)
    np.testing.assert_allclose(a.project((0, 1)), b.project((0, 1)))


def test_models_above_the_size_limit_are_refused() -> None:
    with pytest.raises(ModelSizeError, match="24 cells"):
        MarginalModel([3, 2, 4], [(0, 1, 2)], [np.zeros((3, 2, 4))], 1.0, max_clique_cells=20)


def test_sample_rejects_bad_arguments() -> None:
    model = make_model()
    with pytest.raises(ModelError, match="n must"):
        model.sample(-1, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        model.sample(3, np.random.RandomState(0))  # type: ignore[arg-type]


def test_rounded_samples_follow_the_root_clique_to_within_a_row() -> None:
    model = make_model(8)
    n = 1234
    codes = model.sample(n, np.random.default_rng(9))
    root = model.cliques[0]  # the first clique sampled: no separator, one state
    expected = model.project(root) / TOTAL * n
    observed = marginal(codes, SIZES, root)
    assert np.all(np.abs(observed - expected) < 1.0)
    assert observed.sum() == n


def compressed_model(seed: int = 10) -> tuple[MarginalModel, Compression]:
    """SIZES' model with column 5's 40 codes merged into 3 groups and column 0 reordered."""
    groups5 = np.repeat([0, 1, 2], [10, 25, 5])
    shares5 = np.concatenate([np.full(10, 0.1), np.linspace(1, 2, 25), np.full(5, 0.2)])
    shares5[10:35] /= shares5[10:35].sum()
    model_sizes = [3, 2, 4, 2, 3, 3, 2]
    groups = [np.arange(k) for k in SIZES]
    shares = [np.ones(k) for k in SIZES]
    groups[0] = np.array([2, 0, 1])
    groups[5], shares[5] = groups5, shares5
    compression = Compression(groups, shares)
    rng = np.random.default_rng(seed)
    cliques = triangulate(model_sizes, GIVEN)
    potentials = [rng.normal(scale=1.2, size=tuple(model_sizes[v] for v in c)) for c in cliques]
    model = MarginalModel(model_sizes, cliques, potentials, TOTAL, compression=compression)
    return model, compression


def test_a_compressed_model_answers_in_the_domains_codes() -> None:
    model, compression = compressed_model()
    plain = MarginalModel(model.model_sizes, model.cliques, model.log_potentials, TOTAL)
    assert model.sizes == (3, 2, 4, 2, 3, 40, 2) and model.model_sizes == (3, 2, 4, 2, 3, 3, 2)
    assert model.compression is compression
    for clique in [(5,), (0,), (0, 5), (5, 4, 0), (2, 6)]:
        expected = compression.expand_table(plain.project(clique), clique)
        np.testing.assert_allclose(model.project(clique), expected, atol=1e-10)
        assert model.project(clique).shape == tuple(model.sizes[v] for v in clique)
    pairs = [(0, 5), (5, 6), (1, 3)]
    for table, pair in zip(model.project_many(pairs), pairs, strict=True):
        np.testing.assert_allclose(table, model.project(pair), atol=1e-10)


def test_a_compressed_model_samples_the_domains_codes() -> None:
    model, _ = compressed_model()
    n = 100_000
    codes = model.sample(n, np.random.default_rng(11))
    assert codes.max(axis=0).tolist() <= [k - 1 for k in model.sizes]
    for clique in [(5,), (0,), (0, 5)]:
        expected = model.project(clique) / TOTAL
        observed = marginal(codes, model.sizes, clique) / n
        tolerance = 5 * np.sqrt(expected * (1 - expected) / n) + 1e-9
        assert np.all(np.abs(observed - expected) <= tolerance), clique


def test_json_round_trip_keeps_the_compression() -> None:
    model, _ = compressed_model(12)
    document = json.loads(json.dumps(model.to_dict()))
    assert document["version"] == 2 and document["compression"] is not None
    back = MarginalModel.from_dict(document)
    assert back.sizes == model.sizes and back.model_sizes == model.model_sizes
    np.testing.assert_array_equal(back.project((0, 5)), model.project((0, 5)))
    np.testing.assert_array_equal(
        back.sample(500, np.random.default_rng(13)), model.sample(500, np.random.default_rng(13))
    )
    bad = {**document, "compression": {"groups": document["compression"]["groups"]}}
    with pytest.raises(ModelError, match="compression"):
        MarginalModel.from_dict(bad)


def test_version_1_documents_still_load() -> None:
    model = make_model(14)
    document = {k: v for k, v in model.to_dict().items() if k != "compression"}
    document["version"] = 1
    back = MarginalModel.from_dict(json.loads(json.dumps(document)))
    assert back.compression is None and back.sizes == model.sizes
    np.testing.assert_array_equal(back.project((0, 5)), model.project((0, 5)))
    with pytest.raises(ModelError, match="version"):
        MarginalModel.from_dict({**document, "version": 3})


def test_a_compression_of_other_sizes_is_refused() -> None:
    with pytest.raises(ModelError, match="compression"):
        MarginalModel(
            [3, 2], [(0, 1)], [np.zeros((3, 2))], 1.0,
            compression=Compression.identity([4, 2]),
        )  # fmt: skip

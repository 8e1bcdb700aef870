from __future__ import annotations

import string

import numpy as np
import pytest

from cardiobox.synth.junction import build_junction_tree, triangulate
from cardiobox.synth.propagation import (
    Propagation,
    contract,
    decomposable_potentials,
    safe_divide,
)

SIZES = [3, 2, 4, 2, 3, 2]
# A cycle 0-1-2-3-0 (triangulated) plus a branch 3-4 and an isolated column 5.
GIVEN = [(0, 1), (1, 2), (2, 3), (3, 0), (3, 4)]


def model(seed: int = 0):
    cliques = triangulate(SIZES, GIVEN)
    tree = build_junction_tree(cliques, len(SIZES))
    rng = np.random.default_rng(seed)
    potentials = [rng.normal(scale=1.5, size=tuple(SIZES[v] for v in c)) for c in tree.cliques]
    return tree, potentials


def joint(tree, potentials) -> np.ndarray:
    letters = string.ascii_lowercase
    spec = ",".join("".join(letters[v] for v in c) for c in tree.cliques)
    table = np.einsum(f"{spec}->{letters[: len(SIZES)]}", *[np.exp(p) for p in potentials])
    return table / table.sum()


def clique_marginal(full: np.ndarray, clique: tuple[int, ...]) -> np.ndarray:
    return full.sum(axis=tuple(a for a in range(full.ndim) if a not in clique))


def test_belief_propagation_gives_the_exact_clique_marginals() -> None:
    tree, potentials = model()
    full = joint(tree, potentials)
    probabilities = Propagation(tree, SIZES).probabilities(potentials)
    for clique, table in zip(tree.cliques, probabilities, strict=True):
        np.testing.assert_allclose(table, clique_marginal(full, clique), atol=1e-13)


def test_log_partition_function_matches_brute_force() -> None:
    tree, potentials = model(1)
    letters = string.ascii_lowercase
    spec = ",".join("".join(letters[v] for v in c) for c in tree.cliques)
    z = np.einsum(f"{spec}->", *[np.exp(p) for p in potentials])
    _, log_z = Propagation(tree, SIZES).marginals(potentials)
    assert log_z == pytest.approx(np.log(z), abs=1e-12)


def test_extreme_potentials_stay_finite() -> None:
    tree, potentials = model(2)
    potentials = [p * 400.0 for p in potentials]
    probabilities = Propagation(tree, SIZES).probabilities(potentials)
    for table in probabilities:
        assert np.all(np.isfinite(table))
        assert abs(table.sum() - 1.0) < 1e-9


def test_decomposable_potentials_reproduce_the_marginals() -> None:
    tree, potentials = model(3)
    propagation = Propagation(tree, SIZES)
    probabilities = propagation.probabilities(potentials)
    rebuilt = propagation.probabilities(decomposable_potentials(tree, probabilities))
    for a, b in zip(probabilities, rebuilt, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-13)
    # The rebuilt model is the same distribution, not only the same clique marginals.
    np.testing.assert_allclose(
        joint(tree, decomposable_potentials(tree, probabilities)), joint(tree, potentials)
    )


def test_contract_and_safe_divide() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.random((3, 4)), rng.random((4, 5))
    np.testing.assert_allclose(contract([((0, 1), a), ((1, 2), b)], (2, 0)), (a @ b).T)
    out = safe_divide(np.array([1.0, 2.0, 0.0]), np.array([2.0, 0.0, 0.0]))
    np.testing.assert_array_equal(out, [0.5, 0.0, 0.0])

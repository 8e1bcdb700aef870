from __future__ import annotations

import itertools

import numpy as np
import pytest

from cardiobox.synth.junction import (
    JunctionTreeError,
    ModelSizer,
    build_junction_tree,
    model_size,
    triangulate,
)


def test_a_four_cycle_gets_one_chord() -> None:
    cliques = triangulate([2, 2, 2, 2, 2], [(0, 1), (1, 2), (2, 3), (3, 0)])
    assert sorted(cliques) == [(0, 1, 3), (1, 2, 3), (4,)]


def test_chordal_input_is_left_as_is() -> None:
    tree = [(0, 1), (1, 2), (1, 3), (3, 4)]
    assert sorted(triangulate([3] * 5, tree)) == tree


def test_the_chord_keeps_the_big_attribute_in_the_smaller_table() -> None:
    # Every vertex of the cycle would add one chord; eliminating attribute 2 first makes
    # the smallest table (2·2·2), so the chord is 1-3 and the model has 8 + 40 cells
    # instead of 40 + 40 with the chord 0-2.
    sizes = [10, 2, 2, 2]
    cliques = triangulate(sizes, [(0, 1), (1, 2), (2, 3), (3, 0)])
    assert sorted(cliques) == [(0, 1, 3), (1, 2, 3)]
    assert model_size(sizes, [(0, 1), (1, 2), (2, 3), (3, 0)]) == 48


def test_random_graphs_triangulate_to_junction_trees() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 12))
        sizes = [int(s) for s in rng.integers(1, 6, n)]
        given = [
            tuple(
                int(v)
                for v in rng.choice(n, size=int(rng.integers(1, min(n, 4) + 1)), replace=False)
            )
            for _ in range(int(rng.integers(1, 10)))
        ]
        cliques = triangulate(sizes, given)
        tree = build_junction_tree(cliques, n)
        for clique in given:
            assert any(set(clique) <= set(c) for c in tree.cliques)
        for a, b in itertools.combinations(range(len(cliques)), 2):
            assert not set(cliques[a]) <= set(cliques[b])
        # Every separator is the intersection with the parent, and the order is top-down.
        seen = {tree.order[0]}
        for i in tree.order[1:]:
            assert tree.parent[i] in seen
            seen.add(i)
            assert set(tree.separators[i]) == set(tree.cliques[i]) & set(
                tree.cliques[tree.parent[i]]
            )


def test_junction_tree_rejects_cliques_without_running_intersection() -> None:
    with pytest.raises(JunctionTreeError, match="not connected"):
        build_junction_tree([(0, 1), (1, 2), (2, 3), (0, 3)], 4)


@pytest.mark.parametrize(
    ("cliques", "message"),
    [
        ([], "at least one"),
        ([(0, 1), (1,)], "lies inside"),
        ([(0, 1)], r"attribute\(s\) \[2\]"),
        ([(0, 5)], "outside"),
        ([(0, 0, 1)], "repeats"),
        ([(), (0, 1, 2)], "empty"),
    ],
)
def test_junction_tree_names_bad_cliques(cliques, message: str) -> None:
    with pytest.raises(JunctionTreeError, match=message):
        build_junction_tree(cliques, 3)


def test_disconnected_parts_join_through_empty_separators() -> None:
    tree = build_junction_tree([(0, 1), (2, 3)], 4)
    assert tree.separators[tree.order[1]] == ()


def test_model_size_and_sizer_agree() -> None:
    sizes = [3, 4, 5, 2, 6]
    base = [(0, 1), (1, 2), (3, 4)]
    sizer = ModelSizer(sizes, base)
    for extra in itertools.combinations(range(5), 2):
        assert sizer.size_with(extra) == model_size(sizes, [*base, extra])
    assert model_size(sizes, base) == 12 + 20 + 12


def test_the_sizer_matches_a_full_triangulation_on_random_graphs() -> None:
    rng = np.random.default_rng(0)
    memo: dict[tuple[int, tuple[int, ...], tuple[int, ...]], int] = {}
    for _ in range(40):
        d = int(rng.integers(4, 16))
        sizes = [int(s) for s in rng.integers(2, 7, d)]
        base = [tuple(int(v) for v in rng.choice(d, int(rng.integers(1, 4)), replace=False))
                for _ in range(int(rng.integers(0, d)))]  # fmt: skip
        sizer = ModelSizer(sizes, base, memo=memo)  # the memo is shared across graphs
        for _ in range(10):
            extra = tuple(int(v) for v in rng.choice(d, int(rng.integers(1, 4)), replace=False))
            assert sizer.size_with(extra) == model_size(sizes, [*base, extra])

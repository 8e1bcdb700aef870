"""Junction trees of the synthesizers' graphical models: triangulation, tree, model size.

A model over attributes ``0..d-1`` is given by the attribute sets (cliques) it must
represent. Their union graph is made chordal by greedy elimination (fewest fill-in edges
first, ties broken by the smallest table), whose maximal cliques are joined into a junction
tree by a maximum spanning tree on the number of shared attributes. Adjacency is kept in
Python ints used as bit sets, so triangulating a 30-attribute model takes well under a
millisecond — AIM asks for the size of a hypothetical model many times per round.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from cardiobox.errors import CardioboxError


class JunctionTreeError(CardioboxError, ValueError):
    """Cliques that do not describe a valid model (bad attribute, no running intersection)."""


Clique = tuple[int, ...]


def _bits(mask: int) -> Iterable[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _mask(clique: Iterable[int]) -> int:
    mask = 0
    for v in clique:
        mask |= 1 << v
    return mask


def _check_cliques(n_attributes: int, cliques: Iterable[Sequence[int]]) -> list[Clique]:
    checked: list[Clique] = []
    for i, clique in enumerate(cliques):
        attrs = tuple(int(v) for v in clique)
        if not attrs:
            raise JunctionTreeError(f"cliques[{i}] is empty", "clique")
        if len(set(attrs)) != len(attrs):
            raise JunctionTreeError(f"cliques[{i}] repeats an attribute: {attrs}", "clique")
        bad = [v for v in attrs if not 0 <= v < n_attributes]
        if bad:
            raise JunctionTreeError(
                f"cliques[{i}] names attribute(s) {bad} outside 0..{n_attributes - 1}", "clique"
            )
        checked.append(tuple(sorted(attrs)))
    return checked


def _adjacency(n_attributes: int, cliques: Iterable[Clique]) -> list[int]:
    adjacency = [0] * n_attributes
    for clique in cliques:
        mask = _mask(clique)
        for v in clique:
            adjacency[v] |= mask & ~(1 << v)
    return adjacency


def _eliminate(
    sizes: Sequence[int], adjacency: list[int], vertices: int | None = None
) -> list[int]:
    """Greedy elimination (fewest fill-in edges, then smallest table, then lowest index).

    ``adjacency`` is consumed. Returns the maximal cliques of the triangulation as bit
    masks, in elimination order. A vertex's cost changes only when an edge is added among
    its neighbours, i.e. near the vertex just eliminated, so only those are recomputed.
    ``vertices`` (a bit mask; default all) restricts the elimination to a union of connected
    components: a vertex's cost depends on its component only, so each component is
    eliminated in the same order, into the same cliques, as in the whole graph.
    """
    n = len(adjacency)
    costs: dict[int, tuple[int, int, int]] = {}
    stale = (1 << n) - 1 if vertices is None else vertices
    cliques: list[int] = []
    alive = set(_bits(stale))
    while alive:
        for v in _bits(stale):
            neighbours = adjacency[v]
            fill, cells, rest = 0, sizes[v], neighbours
            while rest:
                low = rest & -rest
                u = low.bit_length() - 1
                rest ^= low
                # Neighbours of v not adjacent to u (u itself is among them, hence the -1).
                fill += (neighbours & ~adjacency[u]).bit_count() - 1
                cells *= sizes[u]
            costs[v] = (fill, cells, v)
        best = min(costs[v] for v in alive)[2]
        neighbours = adjacency[best]
        stale = neighbours
        for u in _bits(neighbours):
            adjacency[u] = (adjacency[u] | neighbours) & ~(1 << u) & ~(1 << best)
            stale |= adjacency[u]
        alive.remove(best)
        del costs[best]
        stale &= ~(1 << best)
        clique = neighbours | (1 << best)
        if not any(clique & earlier == clique for earlier in cliques):
            cliques.append(clique)
    return cliques


def triangulate(sizes: Sequence[int], cliques: Iterable[Sequence[int]]) -> list[Clique]:
    """Maximal cliques of a chordal graph containing every given clique and every attribute.

    Parameters
    ----------
    sizes : sequence of int
        Number of codes of each attribute (its index is its position).
    cliques : iterable of sequences of int
        Attribute sets that must each lie inside one maximal clique.

    Returns
    -------
    list of tuple of int
        The maximal cliques (attributes sorted), in elimination order; attributes in no
        clique appear as singletons. For a graph that is already chordal no edge is added.

    Raises
    ------
    JunctionTreeError
        (a ``ValueError``) for an empty clique, a repeated or unknown attribute.
    """
    adjacency = _adjacency(len(sizes), _check_cliques(len(sizes), cliques))
    return [tuple(_bits(m)) for m in _eliminate(sizes, adjacency)]


class ModelSizer:
    """Sizes of the models obtained by adding one clique to a fixed set of cliques.

    The greedy triangulation of a graph is the union of those of its connected components
    (see :func:`_eliminate`), so adding a clique only re-triangulates the components it
    touches, and their merged size can be remembered between sizers (``memo``) for as long
    as those components stay the same.

    Parameters
    ----------
    sizes : sequence of int
        Number of codes of each attribute.
    cliques : iterable of sequences of int
        The cliques already in the model.
    memo : dict, optional
        Sizes of merged components, keyed by the added clique and the components' edges and
        sizes; shared by the sizers of successive models (AIM's rounds) and filled as sizes
        are asked for.

    Raises
    ------
    JunctionTreeError
        (a ``ValueError``) for an invalid clique.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        cliques: Iterable[Sequence[int]],
        memo: dict[tuple[int, tuple[int, ...], tuple[int, ...]], int] | None = None,
    ) -> None:
        self._sizes = [int(s) for s in sizes]
        self._adjacency = _adjacency(len(self._sizes), _check_cliques(len(self._sizes), cliques))
        self._memo = {} if memo is None else memo
        self._component = [0] * len(self._sizes)
        self._part_size: dict[int, int] = {}
        unseen = (1 << len(self._sizes)) - 1
        while unseen:
            component = frontier = unseen & -unseen
            while frontier:
                reached = 0
                for v in _bits(frontier):
                    reached |= self._adjacency[v]
                frontier = reached & ~component
                component |= frontier
            unseen &= ~component
            for v in _bits(component):
                self._component[v] = component
            self._part_size[component] = self._size_of(component, list(self._adjacency))
        self._total = sum(self._part_size.values())

    @property
    def graph(self) -> tuple[int, ...]:
        """The model's graph: each attribute's neighbours as a bit mask."""
        return tuple(self._adjacency)

    def _size_of(self, vertices: int, adjacency: list[int]) -> int:
        cliques = _eliminate(self._sizes, adjacency, vertices)
        return sum(clique_cells(self._sizes, _bits(m)) for m in cliques)

    def size_with(self, clique: Sequence[int]) -> int:
        """Cells of the triangulated model holding the cliques plus ``clique``.

        Parameters
        ----------
        clique : sequence of int
            The added attribute set.

        Returns
        -------
        int
            Sum of the maximal cliques' table cells; the same as :func:`model_size` on
            the cliques plus ``clique``.
        """
        mask = _mask(_check_cliques(len(self._sizes), [clique])[0])
        parts = {self._component[v] for v in _bits(mask)}
        touched = 0
        for part in parts:
            touched |= part
        members = tuple(_bits(touched))
        key = (
            mask,
            tuple(self._adjacency[v] for v in members),
            tuple(self._sizes[v] for v in members),
        )
        merged = self._memo.get(key)
        if merged is None:
            adjacency = list(self._adjacency)
            for v in _bits(mask):
                adjacency[v] |= mask & ~(1 << v)
            merged = self._size_of(touched, adjacency)
            self._memo[key] = merged
        return self._total - sum(self._part_size[p] for p in parts) + merged


def clique_cells(sizes: Sequence[int], clique: Iterable[int]) -> int:
    """Number of cells of the table over ``clique`` (product of its attributes' sizes).

    Parameters
    ----------
    sizes : sequence of int
        Number of codes of each attribute.
    clique : iterable of int
        Attribute indices.

    Returns
    -------
    int
        The product (1 for an empty clique), as an exact Python int.
    """
    cells = 1
    for v in clique:
        cells *= int(sizes[v])
    return cells


def model_size(sizes: Sequence[int], cliques: Iterable[Sequence[int]]) -> int:
    """Cells of the model that represents ``cliques``: sum over its maximal cliques' tables.

    Parameters
    ----------
    sizes : sequence of int
        Number of codes of each attribute.
    cliques : iterable of sequences of int
        Attribute sets the model must represent.

    Returns
    -------
    int
        Total number of log-potential entries after triangulation.
    """
    return sum(clique_cells(sizes, c) for c in triangulate(sizes, cliques))


@dataclass(frozen=True)
class JunctionTree:
    """A junction tree over maximal cliques, rooted at clique 0.

    Parameters
    ----------
    cliques : tuple of tuple of int
        Maximal cliques, attributes sorted.
    parent : tuple of int
        Parent clique of each clique (-1 for the root).
    order : tuple of int
        Cliques in breadth-first order from the root (every parent before its children).
    separators : tuple of tuple of int
        Attributes each clique shares with its parent (sorted; empty for the root, and for
        cliques that join a part of the model independent of the rest).
    """

    cliques: tuple[Clique, ...]
    parent: tuple[int, ...]
    order: tuple[int, ...]
    separators: tuple[Clique, ...]

    def neighbours(self, i: int) -> list[int]:
        """Cliques adjacent to clique ``i`` in the tree.

        Parameters
        ----------
        i : int
            Clique index.

        Returns
        -------
        list of int
            Its parent (if any) and its children.
        """
        return list(self._neighbours[i])

    @cached_property
    def _neighbours(self) -> tuple[tuple[int, ...], ...]:
        """Children, then parent, of every clique (computed once: traversals ask often)."""
        found: list[list[int]] = [[] for _ in self.parent]
        for j, p in enumerate(self.parent):
            if p >= 0:
                found[p].append(j)
        for j, p in enumerate(self.parent):
            if p >= 0:
                found[j].append(p)
        return tuple(tuple(f) for f in found)


def build_junction_tree(cliques: Sequence[Sequence[int]], n_attributes: int) -> JunctionTree:
    """Join maximal cliques into a junction tree and check the running intersection property.

    Parameters
    ----------
    cliques : sequence of sequences of int
        The maximal cliques of a chordal graph, e.g. from :func:`triangulate`; together they
        must cover every attribute.
    n_attributes : int
        Number of attributes d (valid attributes are ``0..d-1``).

    Returns
    -------
    JunctionTree
        Rooted at the first clique.

    Raises
    ------
    JunctionTreeError
        (a ``ValueError``) when there are no cliques, a clique is invalid or inside another,
        an attribute is in no clique, or the cliques admit no junction tree.
    """
    checked = _check_cliques(n_attributes, cliques)
    if not checked:
        raise JunctionTreeError("a model needs at least one clique", "clique")
    masks = [_mask(c) for c in checked]
    for i, mi in enumerate(masks):
        for j, mj in enumerate(masks):
            if i != j and mi & mj == mi:
                raise JunctionTreeError(
                    f"cliques[{i}] {checked[i]} lies inside cliques[{j}] {checked[j]}; "
                    "give maximal cliques only",
                    "clique",
                )
    covered = 0
    for m in masks:
        covered |= m
    missing = [v for v in range(n_attributes) if not covered >> v & 1]
    if missing:
        raise JunctionTreeError(f"attribute(s) {missing} are in no clique", "clique")
    # Kruskal on the clique graph weighted by shared attributes: any maximum spanning tree
    # of the maximal cliques of a chordal graph is a junction tree.
    m = len(checked)
    edges = sorted(
        ((-(masks[i] & masks[j]).bit_count(), i, j) for i in range(m) for j in range(i + 1, m)),
    )
    component = list(range(m))

    def find(x: int) -> int:
        while component[x] != x:
            component[x] = component[component[x]]
            x = component[x]
        return x

    adjacency: list[list[int]] = [[] for _ in range(m)]
    for _, i, j in edges:
        ri, rj = find(i), find(j)
        if ri != rj:
            component[ri] = rj
            adjacency[i].append(j)
            adjacency[j].append(i)
    parent = [-1] * m
    order = [0]
    seen = {0}
    for i in order:
        for j in sorted(adjacency[i]):
            if j not in seen:
                seen.add(j)
                parent[j] = i
                order.append(j)
    separators = [
        tuple(_bits(masks[i] & masks[parent[i]])) if parent[i] >= 0 else () for i in range(m)
    ]
    # Running intersection: the cliques holding an attribute must form a connected subtree,
    # i.e. exactly one of them has a parent that does not hold it.
    for v in range(n_attributes):
        tops = [i for i in range(m) if v in checked[i] and v not in separators[i]]
        if len(tops) != 1:
            raise JunctionTreeError(
                f"the cliques holding attribute {v} are not connected in any junction tree; "
                "the cliques are not the maximal cliques of a chordal graph",
                "running-intersection",
            )
    return JunctionTree(tuple(checked), tuple(parent), tuple(order), tuple(separators))

"""The marginal model: a distribution that factors over a junction tree, and its use.

:class:`MarginalModel` is what the mechanisms (MST, AIM) release: log-potentials on the
maximal cliques of a chordal graph, scaled to an estimated number of rows. It answers
marginal queries exactly (inside a clique by summing its calibrated table, across cliques
by elimination along the tree), samples rows by ancestral sampling through the tree
(vectorised per clique; by randomised rounding unless asked for independent draws, see
:mod:`cardiobox.synth.rounding`), and stores itself as plain JSON-able lists (no pickle).

A model may be fitted on compressed columns (rare codes merged, see
:mod:`cardiobox.synth.compress`): it then carries the :class:`Compression`, and answers and
samples in the domain's codes, a merged group split among its codes by their shares.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cardiobox.errors import CardioboxError
from cardiobox.synth.compress import Compression, CompressionError
from cardiobox.synth.junction import JunctionTreeError, build_junction_tree
from cardiobox.synth.marginals import MAX_TABLE_CELLS, check_clique, check_sizes, table_cells
from cardiobox.synth.propagation import Propagation, contract, safe_divide
from cardiobox.synth.rounding import draw_rounded

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MODEL_FORMAT = "cardiobox.synth.marginal_model"
# Version 2 adds the compression of the columns; version 1 documents (none) still load.
MODEL_VERSION = 2
_READABLE_VERSIONS = (1, 2)

# Sampling compares each draw with every value of the conditional CDF when it has at most
# this many outcomes: cheaper than a cache-unfriendly binary search per row.
_SAMPLE_COMPARE_MAX = 32


class ModelError(CardioboxError, ValueError):
    """Measurements or a stored model that do not describe a valid marginal model."""


class ModelSizeError(ModelError):
    """A model whose largest clique table is above the size limit."""


@dataclass(frozen=True)
class Step:
    """One privacy-consuming step of a mechanism.

    Parameters
    ----------
    kind : str
        ``"measure"`` (Gaussian noise on a marginal) or ``"select"`` (exponential mechanism).
    clique : tuple of int
        The marginal measured, or the candidate selected.
    rho : float
        zCDP cost of the step.
    sigma : float or None
        Noise scale of a measurement; ``None`` for a selection.
    """

    kind: str
    clique: tuple[int, ...]
    rho: float
    sigma: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form.

        Returns
        -------
        dict
            ``{"kind", "clique", "rho", "sigma"}``.
        """
        return {
            "kind": self.kind,
            "clique": list(self.clique),
            "rho": self.rho,
            "sigma": self.sigma,
        }


class MarginalModel:
    """A distribution over coded columns that factors over a junction tree, scaled to a total.

    Parameters
    ----------
    sizes : sequence of int
        Number of codes of each column in the model's tables (the groups when
        ``compression`` is given).
    cliques : sequence of sequences of int
        Maximal cliques of a chordal graph covering every column.
    log_potentials : sequence of array_like
        One log-potential table per clique, axes in the clique's order; finite.
    total : float
        Estimated number of rows N (> 0); :meth:`project` returns counts scaled to it.
    mechanism : str, default "pgm"
        Name of the mechanism that produced the model (``"mst"``, ``"aim"``, ...).
    steps : sequence of Step, default ()
        The privacy-consuming steps that produced it.
    max_clique_cells : int, default MAX_TABLE_CELLS
        Largest clique table accepted.
    compression : Compression, optional
        How the domain's codes were merged into the model's; its ``compressed_sizes`` must
        be ``sizes``. Queries and samples are then in the domain's codes.

    Raises
    ------
    ModelError
        (a ``ValueError``) for cliques that form no junction tree, tables of the wrong shape,
        non-finite log-potentials, a non-positive total or a compression of other sizes.
    ModelSizeError
        When a clique table has more than ``max_clique_cells`` cells.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        cliques: Sequence[Sequence[int]],
        log_potentials: Sequence[npt.ArrayLike],
        total: float,
        *,
        mechanism: str = "pgm",
        steps: Sequence[Step] = (),
        max_clique_cells: int = MAX_TABLE_CELLS,
        compression: Compression | None = None,
    ) -> None:
        self._sizes = check_sizes(sizes)
        if compression is not None and compression.compressed_sizes != self._sizes:
            raise ModelError(
                f"the compression has {compression.compressed_sizes} groups per column, the "
                f"model's tables {self._sizes}",
                "compression",
            )
        identity = compression is None or compression.is_identity()
        self._compression = None if identity else compression
        check_model_size(self._sizes, cliques, max_clique_cells)
        try:
            tree = build_junction_tree(cliques, len(self._sizes))
        except JunctionTreeError as error:
            raise ModelError(error.message, "junction-tree") from error
        if len(log_potentials) != len(cliques):
            raise ModelError(
                f"{len(log_potentials)} log-potential tables for {len(cliques)} cliques", "shape"
            )
        potentials: list[FloatArray] = []
        for i, (given, table) in enumerate(zip(cliques, log_potentials, strict=True)):
            array = np.asarray(table, dtype=np.float64)
            expected = tuple(self._sizes[int(v)] for v in given)
            if array.shape != expected:
                raise ModelError(
                    f"log_potentials[{i}] has shape {array.shape}, clique {tuple(given)} "
                    f"needs {expected}",
                    "shape",
                )
            if not np.all(np.isfinite(array)):
                raise ModelError(f"log_potentials[{i}] must be finite", "finite")
            order = np.argsort([int(v) for v in given])
            potentials.append(np.ascontiguousarray(array.transpose(order)))
        if not math.isfinite(total) or total <= 0:
            raise ModelError(f"total must be a finite number > 0, got {total!r}", "total")
        self._tree = tree
        self._potentials = potentials
        self._total = float(total)
        self._mechanism = str(mechanism)
        self._steps = tuple(steps)
        self._probabilities = Propagation(tree, self._sizes).probabilities(potentials)
        self._conditionals: dict[tuple[int, tuple[int, ...]], FloatArray] = {}

    # --- description -------------------------------------------------------------------

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of codes of each column (the domain's, in which it answers and samples)."""
        return self._sizes if self._compression is None else self._compression.sizes

    @property
    def model_sizes(self) -> tuple[int, ...]:
        """Number of codes of each column in the model's tables (groups when compressed)."""
        return self._sizes

    @property
    def compression(self) -> Compression | None:
        """How the domain's codes were merged into the model's (None: not at all)."""
        return self._compression

    @property
    def cliques(self) -> tuple[tuple[int, ...], ...]:
        """Maximal cliques of the model (columns sorted), in junction-tree order."""
        return self._tree.cliques

    @property
    def total(self) -> float:
        """Estimated number of rows N of the data the model describes."""
        return self._total

    @property
    def mechanism(self) -> str:
        """Name of the mechanism that produced the model."""
        return self._mechanism

    @property
    def steps(self) -> tuple[Step, ...]:
        """The privacy-consuming steps that produced the model, in order."""
        return self._steps

    @property
    def rho(self) -> float:
        """Total zCDP cost of the steps (ρ's add up under composition)."""
        return math.fsum(step.rho for step in self._steps)

    @property
    def log_potentials(self) -> tuple[FloatArray, ...]:
        """Log-potential table of each clique (axes in the clique's sorted order)."""
        return tuple(self._potentials)

    def size(self) -> int:
        """Number of cells of all clique tables.

        Returns
        -------
        int
            Sum of the clique tables' cells.
        """
        return sum(table_cells(self._sizes, c) for c in self.cliques)

    # --- inference ---------------------------------------------------------------------

    def project(self, clique: Sequence[int]) -> FloatArray:
        """Expected counts of every code combination of ``clique`` under the model.

        Parameters
        ----------
        clique : sequence of int
            Distinct columns; the result has one axis per column, in this order. Columns in
            different model cliques are handled by exact elimination along the tree.

        Returns
        -------
        numpy.ndarray of float64
            The marginal, summing to :attr:`total`.

        Raises
        ------
        CodesError
            (a ``ValueError``) for a bad clique.
        ModelSizeError
            When the requested table has more than ``MAX_TABLE_CELLS`` cells.
        """
        attrs = self._check_query(clique)
        query = tuple(sorted(attrs))
        table = self._probability(query)
        order = [query.index(v) for v in attrs]
        return self._expanded(self._total * table.transpose(order), attrs)

    def _expanded(self, table: FloatArray, clique: tuple[int, ...]) -> FloatArray:
        """A table over the model's codes as one over the domain's codes."""
        if self._compression is None:
            return table
        return self._compression.expand_table(table, clique)

    def _check_query(self, clique: Sequence[int]) -> tuple[int, ...]:
        attrs = check_clique(clique, len(self._sizes))
        cells = table_cells(self.sizes, attrs)  # the domain's codes: the larger table
        if cells > MAX_TABLE_CELLS:
            raise ModelSizeError(
                f"the marginal over columns {attrs} has {cells} cells, above the limit of "
                f"{MAX_TABLE_CELLS}",
                "table-size",
            )
        return attrs

    def _probability(self, query: tuple[int, ...]) -> FloatArray:
        wanted = set(query)
        holders = [i for i, c in enumerate(self.cliques) if wanted <= set(c)]
        if holders:
            best = min(holders, key=lambda i: self._probabilities[i].size)
            clique = self.cliques[best]
            axes = tuple(a for a, v in enumerate(clique) if v not in wanted)
            table: FloatArray = self._probabilities[best].sum(axis=axes)
            return table
        return self._eliminate(query)

    def _steiner_subtree(self, query: tuple[int, ...]) -> set[int]:
        """Smallest connected set of cliques that together hold every queried column."""
        wanted = set(query)
        kept = set(range(len(self.cliques)))
        neighbours = [set(self._tree.neighbours(i)) for i in kept]
        pruned = True
        while pruned and len(kept) > 1:
            pruned = False
            for i in sorted(kept):
                linked = neighbours[i] & kept
                if len(linked) == 1:
                    (j,) = linked
                    # By running intersection, a queried column of a leaf that is also held
                    # elsewhere is held by the leaf's neighbour.
                    if wanted & set(self.cliques[i]) <= set(self.cliques[j]):
                        kept.remove(i)
                        pruned = True
        return kept

    def _eliminate(self, query: tuple[int, ...]) -> FloatArray:
        """Marginal over columns that no single clique holds, by elimination on the tree."""
        kept = self._steiner_subtree(query)
        root = min(kept)
        parent = {root: -1}
        order = [root]
        for i in order:
            for j in sorted(self._tree.neighbours(i)):
                if j in kept and j not in parent:
                    parent[j] = i
                    order.append(j)
        wanted = set(query)
        messages: dict[int, list[tuple[tuple[int, ...], FloatArray]]] = {i: [] for i in order}
        below: dict[int, set[int]] = {i: wanted & set(self.cliques[i]) for i in order}
        for i in reversed(order):
            clique = self.cliques[i]
            factor = self._probabilities[i]
            if parent[i] >= 0:
                separator = tuple(v for v in clique if v in self.cliques[parent[i]])
                factor = self._conditional(i, separator)
                keep = tuple(sorted(set(separator) | below[i]))
                below[parent[i]] |= below[i]
            else:
                keep = query
            message = contract([(clique, factor), *messages[i]], keep)
            if parent[i] >= 0:
                messages[parent[i]].append((keep, message))
            else:
                return message
        raise AssertionError("the elimination order has no root")  # pragma: no cover

    def _conditional(self, index: int, separator: tuple[int, ...]) -> FloatArray:
        """p(clique | separator) of clique ``index`` (0 where the separator has no mass)."""
        key = (index, separator)
        cached = self._conditionals.get(key)
        if cached is None:
            table = self._probabilities[index]
            axes = tuple(a for a, v in enumerate(self.cliques[index]) if v not in separator)
            cached = safe_divide(table, table.sum(axis=axes, keepdims=True))
            self._conditionals[key] = cached
        return cached

    def project_many(self, cliques: Sequence[Sequence[int]]) -> list[FloatArray]:
        """:meth:`project` of several cliques, sharing the work between pairs.

        Pairs of columns that no model clique holds are computed together: for each first
        column a, one traversal of the tree carries P(a, separator) outwards and reads
        every P(a, b) on the way, instead of one elimination per pair.

        Parameters
        ----------
        cliques : sequence of sequences of int
            The marginals wanted.

        Returns
        -------
        list of numpy.ndarray
            One table per clique, as :meth:`project` returns it.

        Raises
        ------
        CodesError
            (a ``ValueError``) for a bad clique.
        ModelSizeError
            When a requested table is above ``MAX_TABLE_CELLS`` cells.
        """
        results: list[FloatArray | None] = [None] * len(cliques)
        pairs: dict[int, list[tuple[int, int]]] = {}
        held = {pair for c in self.cliques for pair in itertools.combinations(c, 2)}
        for k, clique in enumerate(cliques):
            attrs = self._check_query(clique)
            if len(attrs) == 2 and tuple(sorted(attrs)) not in held:
                pairs.setdefault(attrs[0], []).append((k, attrs[1]))
            else:
                results[k] = self.project(attrs)
        for first, wanted in pairs.items():
            tables = self._pairs_from(first, {b for _, b in wanted})
            for k, second in wanted:
                table = tables.get(second)
                if table is None:
                    results[k] = self.project((first, second))
                else:
                    results[k] = self._expanded(self._total * table, (first, second))
        return [r for r in results if r is not None]

    def _pairs_from(self, first: int, targets: set[int]) -> dict[int, FloatArray]:
        """P(first, b) for the columns b in ``targets``, by one traversal from ``first``.

        Along the way each clique C without ``first`` gets P(first, C) = P(first, S)·p(C|S)
        from its separator S towards ``first``; tables over (first, C) too large to hold are
        skipped, and their targets left to the caller.
        """
        cliques = self.cliques
        start = next(i for i, c in enumerate(cliques) if first in c)
        found: dict[int, FloatArray] = {}
        # (clique, where it was reached from, P(first, clique) or None when it holds first)
        frontier: list[tuple[int, int, FloatArray | None]] = [(start, -1, None)]
        while frontier and len(found) < len(targets):
            index, previous, joint = frontier.pop()
            clique = cliques[index]
            if joint is None:
                table = self._probabilities[index]
                position = clique.index(first)
                for b in targets & set(clique):
                    if b not in found:
                        axes = tuple(a for a, v in enumerate(clique) if v not in (first, b))
                        pair = table.sum(axis=axes)
                        found[b] = pair if position < clique.index(b) else pair.T
            else:
                for b in targets & set(clique):
                    if b not in found:
                        axes = tuple(1 + a for a, v in enumerate(clique) if v != b)
                        found[b] = joint.sum(axis=axes)
            for j in self._tree.neighbours(index):
                if j == previous:
                    continue
                if first in cliques[j]:
                    frontier.append((j, index, None))
                    continue
                separator = tuple(v for v in cliques[j] if v in clique)
                shape = tuple(self._sizes[v] if v in separator else 1 for v in cliques[j])
                if self._sizes[first] * math.prod(self._probabilities[j].shape) > MAX_TABLE_CELLS:
                    continue
                if joint is None:
                    keep = (first, *separator)
                    axes = tuple(a for a, v in enumerate(clique) if v not in keep)
                    reduced = self._probabilities[index].sum(axis=axes)
                    order = sorted(keep)
                    reduced = np.moveaxis(reduced, order.index(first), 0)
                else:
                    axes = tuple(1 + a for a, v in enumerate(clique) if v not in separator)
                    reduced = joint.sum(axis=axes)
                carried = reduced.reshape((self._sizes[first], *shape))
                frontier.append((j, index, carried * self._conditional(j, separator)[None]))
        return found

    # --- sampling ----------------------------------------------------------------------

    def sample(self, n: int, rng: np.random.Generator, *, rounded: bool = True) -> IntArray:
        """Draw rows from the model by ancestral sampling through the junction tree.

        Parameters
        ----------
        n : int
            Number of rows (≥ 0).
        rng : numpy.random.Generator
            Source of randomness.
        rounded : bool, default True
            Randomised rounding (:mod:`cardiobox.synth.rounding`): the rows sharing the codes
            of a clique's separator get each outcome as many times as expected, rounded up
            or down at random, so the sample's marginals follow the model's without the
            multinomial noise of independent draws. False: every row drawn independently.

        Returns
        -------
        numpy.ndarray of int64, shape (n, d)
            Codes, column ``j`` in ``0..sizes[j]-1`` (column-major): the domain's codes, a
            merged group's rows dealt its codes by their shares (rounded alike).

        Raises
        ------
        ModelError
            (a ``ValueError``) when ``n`` is not an integer ≥ 0.
        TypeError
            When ``rng`` is not a ``numpy.random.Generator``.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ModelError(f"n must be an integer >= 0, got {n!r}", "count")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        codes = np.zeros((int(n), len(self._sizes)), dtype=np.int64, order="F")
        for i in self._tree.order:
            clique = self.cliques[i]
            separator = self._tree.separators[i]
            fresh = tuple(v for v in clique if v not in separator)
            self._sample_clique(
                codes, self._probabilities[i], clique, separator, fresh, rng, rounded
            )
        if self._compression is not None:
            codes = self._compression.expand_codes(codes, rng, rounded=rounded)
        return codes

    def _sample_clique(
        self,
        codes: IntArray,
        table: FloatArray,
        clique: tuple[int, ...],
        separator: tuple[int, ...],
        fresh: tuple[int, ...],
        rng: np.random.Generator,
        rounded: bool,
    ) -> None:
        """Fill the ``fresh`` columns of every row given its (already drawn) separator."""
        sep_shape = tuple(self._sizes[v] for v in separator)
        fresh_shape = tuple(self._sizes[v] for v in fresh)
        n_sep, n_fresh = math.prod(sep_shape), math.prod(fresh_shape)
        order = [clique.index(v) for v in separator] + [clique.index(v) for v in fresh]
        conditional = table.transpose(order).reshape(n_sep, n_fresh)
        n = codes.shape[0]
        if separator:
            state = np.ravel_multi_index(tuple(codes[:, v] for v in separator), sep_shape)
        else:
            state = np.zeros(n, dtype=np.int64)
        if rounded:
            position = draw_rounded(state, conditional, rng)
            for v, column in zip(fresh, np.unravel_index(position, fresh_shape), strict=True):
                codes[:, v] = column
            return
        row_sums = conditional.sum(axis=1, keepdims=True)
        conditional = np.where(row_sums > 0, conditional, 1.0)
        cumulative = np.cumsum(conditional, axis=1)
        cumulative /= cumulative[:, -1:]
        cumulative[:, -1] = 1.0
        draws = rng.random(n)
        if n_fresh <= _SAMPLE_COMPARE_MAX:
            # Few outcomes: count the CDF values at or below each draw, one outcome at a time.
            position = np.zeros(n, dtype=np.int64)
            for column in np.ascontiguousarray(cumulative[:, :-1].T):
                position += column[state] <= draws
        else:
            # One sorted array for all rows: row s's CDF shifted by s, so a draw u of a row
            # whose separator is s is found by one searchsorted of s + u.
            shifted = (cumulative + np.arange(n_sep, dtype=np.float64)[:, None]).ravel()
            position = np.searchsorted(shifted, state + draws, side="right") - state * n_fresh
        np.clip(position, 0, n_fresh - 1, out=position)
        for v, column in zip(fresh, np.unravel_index(position, fresh_shape), strict=True):
            codes[:, v] = column

    # --- storage -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (lists and numbers only; no pickle).

        Returns
        -------
        dict
            Format tag and version, sizes (of the model's tables), cliques, flattened
            log-potentials, total, mechanism, steps and the compression (None when no code
            is merged); :meth:`from_dict` rebuilds the same model.
        """
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "sizes": list(self._sizes),
            "cliques": [list(c) for c in self.cliques],
            "log_potentials": [theta.ravel().tolist() for theta in self._potentials],
            "total": self._total,
            "mechanism": self._mechanism,
            "rho": self.rho,
            "steps": [step.to_dict() for step in self._steps],
            "compression": None if self._compression is None else self._compression.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarginalModel:
        """Rebuild a model from :meth:`to_dict`'s output.

        Parameters
        ----------
        data : mapping
            A dict as written by :meth:`to_dict` (e.g. read back from JSON), of this version
            or of version 1 (written before compression, which it lacks).

        Returns
        -------
        MarginalModel
            The same model.

        Raises
        ------
        ModelError
            (a ``ValueError``) for another format or version, a missing field or inconsistent
            contents.
        """
        if data.get("format") != MODEL_FORMAT or data.get("version") not in _READABLE_VERSIONS:
            raise ModelError(
                f"not a {MODEL_FORMAT} document of version "
                f"{' or '.join(str(v) for v in _READABLE_VERSIONS)} "
                f"(format={data.get('format')!r}, version={data.get('version')!r})",
                "format",
            )
        try:
            sizes = [int(s) for s in data["sizes"]]
            cliques = [tuple(int(v) for v in c) for c in data["cliques"]]
            flat = [np.asarray(t, dtype=np.float64) for t in data["log_potentials"]]
            steps = [
                Step(
                    str(s["kind"]),
                    tuple(int(v) for v in s["clique"]),
                    float(s["rho"]),
                    None if s["sigma"] is None else float(s["sigma"]),
                )
                for s in data["steps"]
            ]
            total = float(data["total"])
            mechanism = str(data["mechanism"])
            stored = data.get("compression") if data["version"] >= 2 else None
            compression = None if stored is None else Compression.from_dict(stored)
        except CompressionError as error:
            raise ModelError(f"malformed compression: {error.message}", "format") from error
        except (KeyError, TypeError, ValueError) as error:
            raise ModelError(f"malformed model document: {error}", "format") from error
        if len(flat) != len(cliques):
            raise ModelError(
                f"{len(flat)} log-potential tables for {len(cliques)} cliques", "shape"
            )
        tables = []
        for i, (clique, values) in enumerate(zip(cliques, flat, strict=True)):
            if any(not 0 <= v < len(sizes) for v in clique):
                raise ModelError(f"cliques[{i}] names a column outside the sizes", "clique")
            shape = tuple(sizes[v] for v in clique)
            if values.ndim != 1 or values.size != math.prod(shape):
                raise ModelError(
                    f"log_potentials[{i}] has {values.size} values, clique needs {shape}", "shape"
                )
            tables.append(values.reshape(shape))
        return cls(
            sizes, cliques, tables, total, mechanism=mechanism, steps=steps,
            compression=compression,
        )  # fmt: skip


def check_model_size(
    sizes: Sequence[int], cliques: Sequence[Sequence[int]], max_clique_cells: int
) -> None:
    """Refuse a model whose largest clique table is above a limit.

    Parameters
    ----------
    sizes : sequence of int
        Number of codes of each column.
    cliques : sequence of sequences of int
        The model's cliques (columns outside ``sizes`` are left to other checks).
    max_clique_cells : int
        Most cells allowed in one clique table.

    Raises
    ------
    ModelSizeError
        (a ``ValueError``) naming the first clique above the limit.
    """
    for clique in cliques:
        cells = table_cells(sizes, clique) if all(0 <= int(v) < len(sizes) for v in clique) else 0
        if cells > max_clique_cells:
            raise ModelSizeError(
                f"the model needs a table over columns {tuple(clique)} with {cells} cells, "
                f"above the limit of {max_clique_cells}; measure fewer or coarser columns "
                "together",
                "model-size",
            )

"""Numeric kernels on junction trees: sum-product in log space, decomposable models.

A model over a junction tree has one log-potential table θ_C per maximal clique, axes in
the clique's sorted column order; p(x) ∝ exp Σ_C θ_C(x_C). Belief propagation (one pass
up to the root, one down) gives every clique's marginal. Conversely, from consistent
clique marginals p_C the model Π_C p_C / Π_S p_S has exactly those marginals, which is
how estimates are started and stored.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cardiobox.synth.junction import JunctionTree

FloatArray = npt.NDArray[np.float64]

# Probabilities are clipped here before taking logarithms (exact zeros stay representable).
_TINY = 1e-300


def _logsumexp(values: FloatArray, axes: tuple[int, ...]) -> FloatArray:
    peak = values.max(axis=axes, keepdims=True)
    total: FloatArray = np.log(np.exp(values - peak).sum(axis=axes, keepdims=True)) + peak
    return total


class Propagation:
    """Sum-product belief propagation in log space over a fixed junction tree.

    Parameters
    ----------
    tree : JunctionTree
        The model's junction tree.
    sizes : sequence of int
        Number of codes of each column.
    """

    def __init__(self, tree: JunctionTree, sizes: Sequence[int]) -> None:
        self.tree = tree
        self.shapes = [tuple(sizes[v] for v in c) for c in tree.cliques]
        # For each clique and its parent: the axes to sum out to reach the separator, and
        # the separator's shape broadcast into each side.
        self._child_axes: list[tuple[int, ...]] = []
        self._parent_axes: list[tuple[int, ...]] = []
        self._child_shape: list[tuple[int, ...]] = []
        self._parent_shape: list[tuple[int, ...]] = []
        for i, clique in enumerate(tree.cliques):
            parent = tree.parent[i]
            separator = set(tree.separators[i])
            above = tree.cliques[parent] if parent >= 0 else ()
            self._child_axes.append(tuple(a for a, v in enumerate(clique) if v not in separator))
            self._child_shape.append(tuple(sizes[v] if v in separator else 1 for v in clique))
            self._parent_axes.append(tuple(a for a, v in enumerate(above) if v not in separator))
            self._parent_shape.append(tuple(sizes[v] if v in separator else 1 for v in above))

    def marginals(self, potentials: Sequence[FloatArray]) -> tuple[list[FloatArray], float]:
        """Every clique's marginal distribution, and log Z.

        The upward pass sends log-sum-exp messages to the root. Downwards, each clique's
        marginal is p(S)·p(C∖S | S): p(S) summed from the parent's finished marginal, the
        conditional from the clique's own potential and the messages from below, whose
        normaliser is exactly the upward message. Each clique is exponentiated once, and a
        parent is read once per child (instead of log-sum-exp over it).

        Parameters
        ----------
        potentials : sequence of numpy.ndarray
            Finite log-potential table of each clique (not modified).

        Returns
        -------
        tuple of (list of numpy.ndarray, float)
            Each clique's marginal (sums to 1), and the log partition function.
        """
        tree = self.tree
        below = [theta.copy() for theta in potentials]
        upward: list[FloatArray] = [below[0]] * len(below)
        for i in reversed(tree.order[1:]):
            message = _logsumexp(below[i], self._child_axes[i])
            upward[i] = message
            below[tree.parent[i]] += message.reshape(self._parent_shape[i])
        root = tree.order[0]
        log_z = float(_logsumexp(below[root], tuple(range(below[root].ndim))).reshape(()))
        tables: list[FloatArray] = [below[root]] * len(below)
        tables[root] = np.exp(below[root] - log_z)
        # A separator state below ~1e-308 has log p(S) = -inf and its rows stay exactly 0.
        with np.errstate(divide="ignore"):
            for i in tree.order[1:]:
                separator = np.log(tables[tree.parent[i]].sum(axis=self._parent_axes[i]))
                below[i] += separator.reshape(self._child_shape[i]) - upward[i]
                tables[i] = np.exp(below[i], out=below[i])
        return tables, log_z

    def probabilities(self, potentials: Sequence[FloatArray]) -> list[FloatArray]:
        """Normalised marginal of every clique.

        Parameters
        ----------
        potentials : sequence of numpy.ndarray
            Finite log-potential table of each clique.

        Returns
        -------
        list of numpy.ndarray
            Each clique's marginal distribution (sums to 1).
        """
        return self.marginals(potentials)[0]


def decomposable_potentials(
    tree: JunctionTree, marginals: Sequence[FloatArray]
) -> list[FloatArray]:
    """Log-potentials of the model Π p_C / Π p_S from consistent clique marginals.

    Each non-root clique gets log p(C | S), S its separator with its parent; the root gets
    log p(root). When the marginals agree on every separator the model has exactly these
    clique marginals; otherwise it is the model that follows each clique's conditional.

    Parameters
    ----------
    tree : JunctionTree
        The junction tree.
    marginals : sequence of numpy.ndarray
        A non-negative table per clique (a probability or count scale).

    Returns
    -------
    list of numpy.ndarray
        Finite log-potentials (zeros become log 1e-300).
    """
    potentials: list[FloatArray] = []
    for i, (clique, table) in enumerate(zip(tree.cliques, marginals, strict=True)):
        log_table = np.log(np.maximum(table, _TINY))
        if tree.parent[i] >= 0:
            separator = set(tree.separators[i])
            axes = tuple(a for a, v in enumerate(clique) if v not in separator)
            log_table -= np.log(np.maximum(table.sum(axis=axes, keepdims=True), _TINY))
        potentials.append(log_table)
    return potentials


def safe_divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """Elementwise numerator / denominator (broadcast), 0 where the denominator is not > 0.

    Parameters
    ----------
    numerator, denominator : numpy.ndarray
        Broadcastable arrays.

    Returns
    -------
    numpy.ndarray
        The quotient.
    """
    out = np.zeros(np.broadcast_shapes(numerator.shape, denominator.shape))
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def contract(
    operands: Sequence[tuple[Sequence[int], FloatArray]], keep: Sequence[int]
) -> FloatArray:
    """Multiply tables over named columns and sum out every column not in ``keep``.

    Parameters
    ----------
    operands : sequence of (columns, table)
        Each table has one axis per named column (at most 52 distinct columns in all).
    keep : sequence of int
        Columns of the result, in this order.

    Returns
    -------
    numpy.ndarray
        The contracted table.
    """
    names: dict[int, str] = {}
    letters = string.ascii_letters
    for columns, _ in operands:
        for v in columns:
            names.setdefault(v, letters[len(names)])
    inputs = ",".join("".join(names[v] for v in columns) for columns, _ in operands)
    spec = f"{inputs}->{''.join(names[v] for v in keep)}"
    arrays = [array for _, array in operands]
    result: FloatArray = np.einsum(spec, *arrays, optimize=len(arrays) > 2)
    return result

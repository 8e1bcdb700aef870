"""Marginals of integer-coded tables and their private release.

A table is an ``n × d`` matrix of codes, column ``j`` holding codes ``0..sizes[j]-1``. A
marginal over a clique (a tuple of columns) is the table of counts of each code
combination, computed with one ``np.bincount`` on a raveled index, O(n) per clique.

Private release (McKenna et al.): under add/remove of one row a marginal's count vector
changes by 1 in one cell, so its L2 sensitivity is 1 and the Gaussian mechanism with
σ = 1/sqrt(2ρ) is ρ-zCDP; choosing one of several marginals by the exponential mechanism
with a score of sensitivity Δ and parameter ε is ε-DP and ε²/8-zCDP (bounded range,
Cesar & Rogers 2021).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cardiobox.errors import CardioboxError
from cardiobox.privacy.zcdp import PrivacyParameterError, add_gaussian_noise, gaussian_sigma

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Largest marginal table (cells) computed or modelled: 10 M float64 cells are 80 MB, and
# belief propagation needs a few such temporaries.
MAX_TABLE_CELLS = 10_000_000


# The budget a mechanism splits is ρ·(1 − this), so that rounding in the split can never
# make the recorded steps add up to more than ρ.
BUDGET_MARGIN = 1e-12


class CodesError(CardioboxError, ValueError):
    """A code matrix, its sizes or a clique that do not fit together."""


class MechanismError(CardioboxError, ValueError):
    """A mechanism parameter out of range (rounds, model size, workload)."""


def check_rho(rho: float) -> float:
    """Validate a zCDP budget.

    Parameters
    ----------
    rho : float
        Budget (finite, > 0).

    Returns
    -------
    float
        ``rho`` as a float.

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) when ``rho`` is not a finite number > 0.
    """
    value = float(rho)
    if not math.isfinite(value) or value <= 0:
        raise PrivacyParameterError(f"rho must be a finite number > 0, got {rho!r}", "positive")
    return value


def check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """Validate the number of codes of every column.

    Parameters
    ----------
    sizes : sequence of int
        Number of codes of each column (each ≥ 1).

    Returns
    -------
    tuple of int
        The sizes as Python ints.

    Raises
    ------
    CodesError
        (a ``ValueError``) when there are no columns or a size is not an integer ≥ 1.
    """
    checked: list[int] = []
    for j, size in enumerate(sizes):
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise CodesError(f"sizes[{j}] must be an integer >= 1, got {size!r}", "sizes")
        checked.append(int(size))
    if not checked:
        raise CodesError("sizes must name at least one column", "sizes")
    return tuple(checked)


def check_codes(codes: npt.ArrayLike, sizes: Sequence[int]) -> tuple[IntArray, tuple[int, ...]]:
    """Validate a code matrix against the sizes of its columns.

    Parameters
    ----------
    codes : array_like of int, shape (n, d)
        Codes, column ``j`` in ``0..sizes[j]-1``.
    sizes : sequence of int
        Number of codes of each of the d columns.

    Returns
    -------
    tuple of (numpy.ndarray, tuple of int)
        The codes as a column-major (Fortran-ordered) int64 matrix, so that each column is
        contiguous for the marginals (no copy when already one), and the sizes.

    Raises
    ------
    CodesError
        (a ``ValueError``) for a matrix that is not 2-D integer, a column count that differs
        from ``len(sizes)``, or a code outside its column's range.
    """
    checked_sizes = check_sizes(sizes)
    array = np.asarray(codes)
    if array.ndim != 2:
        raise CodesError(f"codes must be a 2-D matrix, got {array.ndim} dimension(s)", "shape")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise CodesError(f"codes must be integers, got dtype {array.dtype}", "dtype")
    if array.shape[1] != len(checked_sizes):
        raise CodesError(
            f"codes has {array.shape[1]} columns but sizes gives {len(checked_sizes)}", "shape"
        )
    matrix = np.asfortranarray(array, dtype=np.int64)
    if matrix.shape[0]:
        low, high = matrix.min(axis=0), matrix.max(axis=0)
        limits = np.asarray(checked_sizes)
        bad = np.flatnonzero((low < 0) | (high >= limits))
        if bad.size:
            j = int(bad[0])
            raise CodesError(
                f"codes column {j} holds values in [{low[j]}, {high[j]}], outside "
                f"0..{checked_sizes[j] - 1}",
                "code-range",
            )
    return matrix, checked_sizes


def check_clique(clique: Sequence[int], n_columns: int) -> tuple[int, ...]:
    """Validate a clique: distinct column indices in ``0..n_columns-1``.

    Parameters
    ----------
    clique : sequence of int
        Column indices.
    n_columns : int
        Number of columns d.

    Returns
    -------
    tuple of int
        The indices as Python ints, in the given order.

    Raises
    ------
    CodesError
        (a ``ValueError``) for an empty clique, a repeated or an unknown column.
    """
    attrs = tuple(int(v) for v in clique)
    if not attrs:
        raise CodesError("clique must name at least one column", "clique")
    if len(set(attrs)) != len(attrs):
        raise CodesError(f"clique repeats a column: {attrs}", "clique")
    bad = [v for v in attrs if not 0 <= v < n_columns]
    if bad:
        raise CodesError(f"clique names column(s) {bad} outside 0..{n_columns - 1}", "clique")
    return attrs


def table_cells(sizes: Sequence[int], clique: Sequence[int]) -> int:
    """Number of cells of the marginal table over ``clique``.

    Parameters
    ----------
    sizes : sequence of int
        Number of codes of each column.
    clique : sequence of int
        Column indices.

    Returns
    -------
    int
        Product of the clique's sizes (an exact Python int).
    """
    return math.prod(int(sizes[v]) for v in clique)


def marginal_unchecked(
    codes: IntArray,
    sizes: Sequence[int],
    clique: Sequence[int],
    weights: FloatArray | None = None,
) -> FloatArray:
    """:func:`marginal` without validation, for codes already passed by :func:`check_codes`.

    Fastest on column-major codes (as :func:`check_codes` returns them).

    Parameters
    ----------
    codes : numpy.ndarray of int64, shape (n, d)
        Valid codes.
    sizes : sequence of int
        Number of codes of each column.
    clique : sequence of int
        Distinct valid column indices.
    weights : numpy.ndarray of float, shape (n,), optional
        Weight of each row (default 1).

    Returns
    -------
    numpy.ndarray of float64
        Counts with one axis per clique column, in the clique's order.
    """
    shape = tuple(int(sizes[v]) for v in clique)
    index = codes[:, clique[0]].copy()
    for v in clique[1:]:
        index *= sizes[v]
        index += codes[:, v]
    counts = np.bincount(index, weights=weights, minlength=math.prod(shape))
    return counts.astype(np.float64, copy=False).reshape(shape)


def marginal(
    codes: npt.ArrayLike,
    sizes: Sequence[int],
    clique: Sequence[int],
    weights: npt.ArrayLike | None = None,
) -> FloatArray:
    """Counts of every code combination of the columns in ``clique``.

    Parameters
    ----------
    codes : array_like of int, shape (n, d)
        Codes, column ``j`` in ``0..sizes[j]-1``.
    sizes : sequence of int
        Number of codes of each column.
    clique : sequence of int
        Distinct column indices; the result has one axis per column, in this order.
    weights : array_like of float, shape (n,), optional
        Weight of each row (default 1): the result sums the weights.

    Returns
    -------
    numpy.ndarray of float64
        The marginal table, shape ``tuple(sizes[c] for c in clique)``.

    Raises
    ------
    CodesError
        (a ``ValueError``) for invalid codes, a bad clique, weights of the wrong length, or a
        table above :data:`MAX_TABLE_CELLS` cells.
    """
    matrix, checked_sizes = check_codes(codes, sizes)
    attrs = check_clique(clique, len(checked_sizes))
    cells = table_cells(checked_sizes, attrs)
    if cells > MAX_TABLE_CELLS:
        raise CodesError(
            f"the marginal over columns {attrs} has {cells} cells, above the limit of "
            f"{MAX_TABLE_CELLS}",
            "table-size",
        )
    row_weights: FloatArray | None = None
    if weights is not None:
        row_weights = np.asarray(weights, dtype=np.float64)
        if row_weights.shape != (matrix.shape[0],):
            raise CodesError(
                f"weights must have shape ({matrix.shape[0]},), got {row_weights.shape}",
                "shape",
            )
    return marginal_unchecked(matrix, checked_sizes, attrs, row_weights)


@dataclass(frozen=True, eq=False)
class Measurement:
    """A noisy marginal: counts over ``clique`` plus Gaussian noise of scale ``sigma``.

    Compared by identity (its values are an array).

    Parameters
    ----------
    clique : tuple of int
        Columns of the marginal, in the order of ``values``' axes.
    values : numpy.ndarray of float64
        The noisy counts, one axis per clique column.
    sigma : float or numpy.ndarray of float64
        Standard deviation of the noise of every cell (> 0): one number for a released
        marginal, or one per cell (shaped like ``values``) for a marginal re-expressed over
        merged codes, whose merged cells are sums of several noisy cells.
    """

    clique: tuple[int, ...]
    values: FloatArray
    sigma: float | FloatArray


def measure(
    counts: npt.ArrayLike, clique: Sequence[int], rho: float, rng: np.random.Generator
) -> Measurement:
    """Release a marginal through the Gaussian mechanism at cost ρ (zCDP).

    Parameters
    ----------
    counts : array_like of float
        The exact marginal (L2 sensitivity 1 under add/remove of one row).
    clique : sequence of int
        Its columns, in the order of its axes.
    rho : float
        zCDP budget of this release (> 0).
    rng : numpy.random.Generator
        Source of the noise.

    Returns
    -------
    Measurement
        ``counts`` plus independent N(0, σ²) noise per cell, σ = ``gaussian_sigma(1, rho)``.

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) when ``rho`` is not a finite positive number.
    """
    sigma = gaussian_sigma(1.0, rho)
    noisy = add_gaussian_noise(counts, 1.0, rho, rng)
    return Measurement(tuple(int(v) for v in clique), noisy, sigma)


def exponential_mechanism(
    scores: npt.ArrayLike, epsilon: float, sensitivity: float, rng: np.random.Generator
) -> int:
    """Pick an index with probability ∝ exp(ε·score / (2Δ)): ε-DP and ε²/8-zCDP.

    Parameters
    ----------
    scores : array_like of float
        Quality of each candidate (higher is more likely); each score may change by at
        most ``sensitivity`` when one row is added or removed.
    epsilon : float
        Privacy parameter ε of the selection (> 0).
    sensitivity : float
        Sensitivity Δ of every score (> 0).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    int
        Index of the chosen candidate.

    Raises
    ------
    PrivacyParameterError
        (a ``ValueError``) for a non-positive ``epsilon`` or ``sensitivity``, or no scores.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise PrivacyParameterError("scores must be a non-empty array of finite numbers", "scores")
    for name, value in (("epsilon", epsilon), ("sensitivity", sensitivity)):
        if not math.isfinite(value) or value <= 0:
            raise PrivacyParameterError(f"{name} must be > 0, got {value!r}", "positive")
    logits = 0.5 * epsilon / sensitivity * (values - values.max())
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum()
    return int(rng.choice(values.size, p=probabilities))

"""One outcome per row given the row's state, drawn by randomised rounding.

Drawing n rows independently from a distribution adds multinomial noise to every marginal
of the sample: with a few hundred rows that noise is as large as the privacy noise of the
model itself. Private-PGM therefore samples by randomised rounding by default, and so does
:meth:`~cardiobox.synth.model.MarginalModel.sample`: the m rows that share a state get
outcome counts that are their expected counts m·p(outcome | state), each rounded up or down
at random so that the rounding is unbiased and the counts add up to m; the outcomes are then
dealt to those rows in random order. The sample's marginals follow the model to within one
row per cell and state, rows stay exchangeable, and no data are touched (post-processing).

The rounding is systematic: one uniform u per state, and the counts are the differences of
⌊C_k + u⌋ over the cumulative expected counts C_k, so every count is ⌊m·p⌋ or ⌈m·p⌉ and
its expectation is exactly m·p.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def rounded_counts(
    totals: IntArray, probabilities: FloatArray, rng: np.random.Generator
) -> IntArray:
    """Integer counts per state and outcome, each the expected count rounded at random.

    Parameters
    ----------
    totals : numpy.ndarray of int64, shape (states,)
        Number of rows of each state (≥ 0).
    probabilities : numpy.ndarray of float64, shape (states, outcomes)
        Non-negative weights of the outcomes of each state, each row with a positive sum
        (normalised here).
    rng : numpy.random.Generator
        Source of the rounding offsets.

    Returns
    -------
    numpy.ndarray of int64, shape (states, outcomes)
        Row s sums to ``totals[s]``; each cell is the floor or the ceiling of
        ``totals[s] · p[s, k]`` and equals it in expectation.
    """
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative /= cumulative[:, -1:]
    expected = cumulative * totals[:, None]
    # Rounding in the cumulative sum must not push a partial sum above the total.
    np.minimum(expected, totals[:, None], out=expected)
    expected[:, -1] = totals
    expected += rng.random(totals.size)[:, None]
    upto = np.floor(expected).astype(np.int64)
    counts: IntArray = np.diff(upto, axis=1, prepend=0)
    return counts


def draw_rounded(states: IntArray, conditional: FloatArray, rng: np.random.Generator) -> IntArray:
    """One outcome per row, the counts of each state's rows rounded from their expectation.

    Parameters
    ----------
    states : numpy.ndarray of int64, shape (n,)
        State of each row, in ``0..states-1``.
    conditional : numpy.ndarray of float64, shape (states, outcomes)
        Weights of the outcomes given each state; a state without weight (a row summing to
        0) gets uniform weights.
    rng : numpy.random.Generator
        Source of the rounding and of the order in which outcomes are dealt.

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        Outcome of each row, in ``0..outcomes-1``.
    """
    n_states, n_outcomes = conditional.shape
    totals = np.bincount(states, minlength=n_states).astype(np.int64)
    present = np.flatnonzero(totals)
    weights = conditional[present]
    empty = weights.sum(axis=1) <= 0
    if empty.any():
        weights[empty] = 1.0
    counts = rounded_counts(totals[present], weights, rng).ravel()
    used = np.flatnonzero(counts)
    outcomes = np.repeat(used % n_outcomes, counts[used])
    # The rows of each state in random order; states in increasing order, as ``outcomes``.
    shuffled = rng.permutation(states.size)
    order = shuffled[np.argsort(states[shuffled], kind="stable")]
    result = np.empty(states.size, dtype=np.int64)
    result[order] = outcomes
    return result

"""Compression of each column's codes from its noisy 1-way marginal (after McKenna et al.).

A domain declares every code a column may take, MISSING and OUT_OF_RANGE included, and a
binned column often has many bins that a given table leaves empty or nearly so. Modelled as
they are, each such code keeps the noise of every marginal measured on it: noise puts mass
on codes the data never use, and every 2-way table has many cells of pure noise.

Once the 1-way marginals are released, :func:`compress_domain` merges codes into groups,
the model is estimated on the groups, and a sampled group is expanded back to its member
codes in proportion to their non-negative noisy 1-way counts (uniformly when none is
positive). Only released quantities — the noisy counts and their σ — decide the groups and
the shares, so compression costs no privacy. Two ways to merge:

``"adjacent"`` (the default of :func:`~cardiobox.synth.mst.fit_mst`)
    Runs of consecutive codes, each closed as soon as its noisy count reaches
    ``threshold``·σ: a well-populated code stays alone, and sparse neighbouring bins are
    merged with each other rather than with far-away ones, so an ordered column keeps its
    shape (with 212 rows at ε = 1 a 20-bin column becomes a few coarse bins).
``"rare"`` (McKenna, Miklau & Sheldon's MST)
    Every code whose noisy count is below ``threshold``·σ goes into one bucket; a column is
    left as it is when fewer than two codes are rare or fewer than two stay on their own.

On the project's Cleveland and heart-failure benchmarks (``benchmarks/synth.py``) the
adjacent runs gave MST lower 1-way and 2-way TVD than the one bucket, most at ε = 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from cardiobox.errors import CardioboxError
from cardiobox.synth.marginals import FloatArray, IntArray, Measurement
from cardiobox.synth.rounding import draw_rounded

# A group is well measured once its noisy count reaches this many σ (McKenna et al.'s 3).
DEFAULT_THRESHOLD = 3.0
# "rare" compresses a column only when at least this many of its codes stay on their own:
# with fewer, the model would keep nothing of the column's association with the others.
_MIN_KEPT = 2
MERGES = ("adjacent", "rare")


class CompressionError(CardioboxError, ValueError):
    """A compression map that does not describe a partition of each column's codes."""


class Compression:
    """Each column's codes mapped to groups, with each code's share of its group.

    Parameters
    ----------
    groups : sequence of array_like of int
        For column j, the group (compressed code) of each of its codes: the groups are
        ``0..k_j-1``, every one used.
    shares : sequence of array_like of float
        For column j, the share of each code within its group: non-negative, summing to 1
        over each group.

    Raises
    ------
    CompressionError
        (a ``ValueError``) for groups that skip a number, shares of the wrong length, negative
        shares or shares that do not add up to 1 within a group.
    """

    def __init__(self, groups: Sequence[npt.ArrayLike], shares: Sequence[npt.ArrayLike]) -> None:
        if len(groups) != len(shares):
            raise CompressionError(
                f"{len(groups)} group maps for {len(shares)} share vectors", "shape"
            )
        self._groups: list[IntArray] = []
        self._shares: list[FloatArray] = []
        for j, (given, weights) in enumerate(zip(groups, shares, strict=True)):
            group = np.asarray(given, dtype=np.int64)
            share = np.asarray(weights, dtype=np.float64)
            if group.ndim != 1 or group.size == 0 or share.shape != group.shape:
                raise CompressionError(
                    f"column {j}: groups and shares must be two vectors of the same length",
                    "shape",
                )
            k = int(group.max()) + 1
            if group.min() < 0 or np.unique(group).size != k:
                raise CompressionError(f"column {j}: groups must be 0..k-1, each used", "groups")
            if not np.all(np.isfinite(share)) or share.min() < 0:
                raise CompressionError(f"column {j}: shares must be finite and >= 0", "shares")
            if not np.allclose(np.bincount(group, weights=share, minlength=k), 1.0, atol=1e-9):
                raise CompressionError(
                    f"column {j}: the shares of each group must add up to 1", "shares"
                )
            self._groups.append(group)
            self._shares.append(share)

    @classmethod
    def identity(cls, sizes: Sequence[int]) -> Compression:
        """The compression that merges nothing.

        Parameters
        ----------
        sizes : sequence of int
            Number of codes of each column.

        Returns
        -------
        Compression
            Every code its own group, with share 1.
        """
        return cls([np.arange(k) for k in sizes], [np.ones(k) for k in sizes])

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of codes of each column (the domain's)."""
        return tuple(int(g.size) for g in self._groups)

    @property
    def compressed_sizes(self) -> tuple[int, ...]:
        """Number of groups of each column (the model's codes)."""
        return tuple(int(g.max()) + 1 for g in self._groups)

    @property
    def groups(self) -> tuple[IntArray, ...]:
        """Group of each code, per column."""
        return tuple(self._groups)

    @property
    def shares(self) -> tuple[FloatArray, ...]:
        """Share of each code within its group, per column."""
        return tuple(self._shares)

    def is_identity(self) -> bool:
        """Whether no column has a merged group.

        Returns
        -------
        bool
            True when every column's group of code c is c.
        """
        return all(np.array_equal(g, np.arange(g.size)) for g in self._groups)

    def compress_codes(self, codes: IntArray) -> IntArray:
        """The codes of the domain as codes of the groups.

        Parameters
        ----------
        codes : numpy.ndarray of int64, shape (n, d)
            Valid codes of the domain.

        Returns
        -------
        numpy.ndarray of int64, shape (n, d)
            Column j's code c replaced by its group ``groups[j][c]`` (column-major).
        """
        out = np.empty(codes.shape, dtype=np.int64, order="F")
        for j, group in enumerate(self._groups):
            out[:, j] = group[codes[:, j]]
        return out

    def expand_codes(
        self, codes: IntArray, rng: np.random.Generator, *, rounded: bool = True
    ) -> IntArray:
        """Codes of the groups back to codes of the domain, by the shares.

        Parameters
        ----------
        codes : numpy.ndarray of int64, shape (n, d)
            Valid group codes (changed in place and returned).
        rng : numpy.random.Generator
            Source of the choice of a member code for the rows of a merged group.
        rounded : bool, default True
            Deal each group's rows its members' codes, their counts the group's rows times
            each member's share rounded at random; False: draw each row's independently.

        Returns
        -------
        numpy.ndarray of int64, shape (n, d)
            The domain's codes.
        """
        for j, (group, share) in enumerate(zip(self._groups, self._shares, strict=True)):
            k = int(group.max()) + 1
            if k == group.size:
                codes[:, j] = np.argsort(group)[codes[:, j]]  # a permutation at most
                continue
            weights = np.zeros((k, group.size))
            weights[group, np.arange(group.size)] = share
            if rounded:
                codes[:, j] = draw_rounded(codes[:, j], weights, rng)
            else:
                column = codes[:, j].copy()
                for g in range(k):
                    rows = np.flatnonzero(column == g)
                    codes[rows, j] = rng.choice(group.size, size=rows.size, p=weights[g])
        return codes

    def expand_table(self, table: FloatArray, clique: Sequence[int]) -> FloatArray:
        """A marginal over groups as a marginal over the domain's codes.

        Parameters
        ----------
        table : numpy.ndarray of float64
            Counts over the groups of the columns of ``clique``, one axis each.
        clique : sequence of int
            The columns, in the order of the axes.

        Returns
        -------
        numpy.ndarray of float64
            Each group's count split among its codes by their shares.
        """
        for axis, v in enumerate(clique):
            group, share = self._groups[v], self._shares[v]
            shape = [1] * table.ndim
            shape[axis] = group.size
            table = np.take(table, group, axis=axis) * share.reshape(shape)
        return table

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form.

        Returns
        -------
        dict
            ``{"groups": [[...], ...], "shares": [[...], ...]}``, one list per column.
        """
        return {
            "groups": [g.tolist() for g in self._groups],
            "shares": [s.tolist() for s in self._shares],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Compression:
        """Rebuild a compression from :meth:`to_dict`'s output.

        Parameters
        ----------
        data : mapping
            ``{"groups": ..., "shares": ...}``.

        Returns
        -------
        Compression
            The same compression.

        Raises
        ------
        CompressionError
            (a ``ValueError``) for a missing field or an invalid map.
        """
        try:
            groups, shares = data["groups"], data["shares"]
        except (KeyError, TypeError) as error:
            raise CompressionError(f"malformed compression: {error}", "format") from error
        return cls(groups, shares)


def check_merge(merge: str, threshold: float) -> None:
    """Validate how codes are to be merged (before anything is measured).

    Parameters
    ----------
    merge : str
        One of :data:`MERGES`.
    threshold : float
        A finite number > 0.

    Raises
    ------
    CompressionError
        (a ``ValueError``) naming the parameter and the rule broken.
    """
    if merge not in MERGES:
        raise CompressionError(f"compress must be one of {MERGES}, got {merge!r}", "merge")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise CompressionError(f"compress_threshold must be a number, got {threshold!r}")
    if not math.isfinite(threshold) or threshold <= 0:
        raise CompressionError(
            f"compress_threshold must be a finite number > 0, got {threshold!r}", "threshold"
        )


def compress_domain(
    sizes: Sequence[int],
    one_way: Sequence[Measurement],
    merge: str = "adjacent",
    threshold: float = DEFAULT_THRESHOLD,
) -> tuple[Compression, list[Measurement]]:
    """Merge each column's sparsely used codes, from its noisy 1-way marginal only.

    Parameters
    ----------
    sizes : sequence of int
        Number of codes of each column (public: from the domain).
    one_way : sequence of Measurement
        Released 1-way marginals, at most one per column; a column without one is left as
        it is.
    merge : {"adjacent", "rare"}, default "adjacent"
        Runs of consecutive codes each reaching ``threshold``·σ, or one bucket of every
        code below it (see the module's description).
    threshold : float, default DEFAULT_THRESHOLD
        In units of each code's (or run's) noise σ; > 0.

    Returns
    -------
    tuple of (Compression, list of Measurement)
        The compression, and the 1-way measurements (in the given order) re-expressed over
        the groups: a merged group's value is the sum of its members' noisy counts, with
        σ·sqrt(members) (the noise of a sum), so that no information is lost or made up.

    Raises
    ------
    CompressionError
        (a ``ValueError``) for a measurement that is not a 1-way marginal of a column of
        ``sizes``, two of one column, an unknown ``merge`` or a ``threshold`` that is not a
        finite number > 0.
    """
    check_merge(merge, threshold)
    groups: list[IntArray] = [np.arange(k) for k in sizes]
    shares: list[FloatArray] = [np.ones(k) for k in sizes]
    measurements: list[Measurement] = []
    seen: set[int] = set()
    for i, m in enumerate(one_way):
        j = m.clique[0] if len(m.clique) == 1 else -1
        if not 0 <= j < len(sizes) or m.values.shape != (sizes[j],) or j in seen:
            raise CompressionError(
                f"one_way[{i}] must be the only 1-way marginal of a column of sizes, got "
                f"clique {m.clique} with shape {m.values.shape}",
                "clique",
            )
        seen.add(j)
        sigma = np.broadcast_to(np.asarray(m.sigma, dtype=np.float64), m.values.shape)
        if merge == "adjacent":
            group = _adjacent_groups(m.values, sigma, threshold)
        else:
            group = _rare_groups(m.values, sigma, threshold)
        if group is None:
            measurements.append(m)
            continue
        groups[j] = group
        shares[j] = _shares(m.values, group)
        k = int(group.max()) + 1
        measurements.append(
            Measurement(
                m.clique,
                np.bincount(group, weights=m.values, minlength=k).astype(np.float64),
                np.sqrt(np.bincount(group, weights=sigma**2, minlength=k)),
            )
        )
    return Compression(groups, shares), measurements


def _rare_groups(values: FloatArray, sigma: FloatArray, threshold: float) -> IntArray | None:
    """Kept codes alone, every rare code in one last group; None when nothing is merged."""
    rare = values < threshold * sigma
    n_rare = int(rare.sum())
    if n_rare < 2 or values.size - n_rare < _MIN_KEPT:
        return None
    kept = np.flatnonzero(~rare)
    group = np.full(values.size, kept.size, dtype=np.int64)
    group[kept] = np.arange(kept.size)
    return group


def _adjacent_groups(values: FloatArray, sigma: FloatArray, threshold: float) -> IntArray | None:
    """Runs of adjacent rare codes, cut where they reach ``threshold``·σ; empty leftovers pooled.

    A code whose noisy count reaches ``threshold``·σ is a group of its own. Each run of
    consecutive codes below it is cut greedily into groups whose noisy count reaches
    ``threshold``·σ; the end of a run that never does is a group of its own. Those
    leftovers whose noisy count is within one noise standard deviation of zero (no sign of
    any row) are pooled into one bucket. None when every code is its own group, or when
    the column would be one group.
    """
    group = np.empty(values.size, dtype=np.int64)
    alone = values >= threshold * sigma
    leftover: list[int] = []  # groups that ended a run without reaching the threshold
    current, total, open_run = 0, 0.0, False
    for code in range(values.size):
        if alone[code]:
            if open_run:
                leftover.append(current)
                current, total, open_run = current + 1, 0.0, False
            group[code] = current
            current += 1
            continue
        group[code], open_run = current, True
        total += float(values[code])
        if total >= threshold * float(sigma[code]):
            current, total, open_run = current + 1, 0.0, False
    if open_run:
        leftover.append(current)
    k = int(group.max()) + 1
    sums = np.bincount(group, weights=values, minlength=k)
    spread = np.sqrt(np.bincount(group, weights=sigma**2, minlength=k))
    empty = [g for g in leftover if sums[g] < spread[g]]
    if len(empty) > 1:
        merged = np.arange(k)
        merged[empty] = empty[0]
        group = np.unique(merged, return_inverse=True)[1].astype(np.int64)[group]
    k = int(group.max()) + 1
    if k == values.size or k < 2:
        return None
    return group


def _shares(values: FloatArray, group: IntArray) -> FloatArray:
    """Each code's share of its group: ∝ its non-negative noisy count, uniform if none is."""
    k = int(group.max()) + 1
    weights = np.maximum(values, 0.0)
    sums = np.bincount(group, weights=weights, minlength=k)
    empty = sums[group] <= 0
    weights = np.where(empty, 1.0, weights)
    sums = np.bincount(group, weights=weights, minlength=k)
    shares: FloatArray = weights / sums[group]
    return shares

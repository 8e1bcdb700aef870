"""How good and how safe a synthetic table is: fidelity, utility and privacy, with references.

Every measure is computed on the codes of the domain (the real and the synthetic tables are
encoded with the same :class:`~cardiobox.synth.domain.Domain`), so numbers, categories, dates
and missing values are compared alike, at the resolution of the domain's bins.

Each measure is shown against two references:

noise floor
    The same measure between the real training table and a real holdout table that the
    synthesizer never saw. No synthetic table can be expected to be closer to the training
    rows than another sample of real patients of the holdout's size is.
independent-columns baseline
    A table sampled from the product of the training table's 1-way marginals (as many rows as
    the synthetic table): what a synthesizer that learnt nothing about how columns relate
    achieves. It is computed from the real data for reference only and is never released.

Measures
--------
fidelity
    Total variation distance ``TVD = ½ Σ |p − q|`` between the real training table and each
    other table, for every 1-way and every 2-way marginal; and the association difference
    ``|V_other − V_train|`` of Cramér's V (bias-uncorrected, on the codes, MISSING and
    OUT_OF_RANGE as categories of their own) for every pair of columns. Cramér's V rather
    than Pearson's correlation: it applies to every kind of column and to the bins of a
    domain alike, and is computed from the same 2-way tables as the TVD.
utility (with a binary outcome column)
    AUROC on the holdout of models trained on the synthetic table (TSTR), on the real
    training table (TRTR) and on the independent baseline: logistic regression on one-hot
    codes and scikit-learn's histogram gradient boosting on the codes (categorical columns as
    categorical features), fixed seeds.
privacy
    Distance to the closest record (DCR): the Hamming distance between code vectors (the
    number of columns whose codes differ, 0 .. d). Synthetic rows to the training table are
    compared with holdout rows to the training table: the share of synthetic rows closer
    than the holdout's median DCR (against the same share among holdout rows), and the share
    of exact copies (synthetic rows whose codes equal a training row's, against holdout rows
    that do). A membership-inference attack scores each row by ``−DCR`` to the synthetic
    table, training rows being members and holdout rows non-members; its AUROC is 0.5 when
    the synthetic table reveals nothing about who was in the training table, 1 when it copies
    the training rows.

Nothing here is differentially private: the report describes the real data and stays with
whoever holds them, unless it is reviewed before it is shared.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from cardiobox.errors import CardioboxError
from cardiobox.metrics import auroc, roc_curve_points
from cardiobox.synth.domain import Domain
from cardiobox.synth.encode import encode

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Float32Array = npt.NDArray[np.float32]

#: Rows sampled from each table for the distances to closest records (all rows when fewer).
DEFAULT_PRIVACY_ROWS = 2000
#: ROC curves are thinned to this many points for the report.
ROC_POINTS = 100
#: Models of the utility measure, in report order.
MODELS = ("logistic_regression", "gradient_boosting")
#: Rows of the reference table compared at once in the DCR search (bounds its memory).
_DCR_CHUNK = 4096
#: Histogram gradient boosting takes categorical features with at most this many codes.
_HGB_MAX_CATEGORIES = 255


class EvaluationError(CardioboxError, ValueError):
    """Tables or parameters a quality evaluation cannot use."""


class _HasToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Versus:
    """One measure of the synthetic table and of its two references.

    Parameters
    ----------
    synthetic : float or None
        The measure between the real training table and the synthetic table.
    noise_floor : float or None
        The same between the real training table and the real holdout table.
    independent : float or None
        The same between the real training table and the independent-columns baseline.
    """

    synthetic: float | None
    noise_floor: float | None
    independent: float | None


@dataclass(frozen=True)
class Marginal:
    """The 1-way marginal of one column in three tables (shares of rows, per code).

    Parameters
    ----------
    labels : list of str
        One label per code (bins, categories, MISSING, OUT_OF_RANGE).
    train, synthetic, holdout : list of float
        Share of each table's rows with each code.
    """

    labels: list[str]
    train: list[float]
    synthetic: list[float]
    holdout: list[float]


@dataclass(frozen=True)
class PairFidelity:
    """The 2-way fidelity of one pair of columns.

    Parameters
    ----------
    columns : (str, str)
        The two columns, in domain order.
    tvd : Versus
        TVD of their 2-way marginal.
    association_train : float
        Cramér's V of the pair in the real training table.
    association : Versus
        ``|V − V_train|`` of each table.
    """

    columns: tuple[str, str]
    tvd: Versus
    association_train: float
    association: Versus


@dataclass(frozen=True)
class Fidelity:
    """How closely the synthetic table reproduces the marginals of the real one.

    Parameters
    ----------
    one_way : dict of str to Versus
        1-way TVD of every column.
    one_way_mean, one_way_max : Versus
        Mean and maximum over the columns.
    two_way_mean, two_way_max : Versus
        Mean and maximum of the 2-way TVD over all pairs of columns (``None`` for one column).
    association_mean, association_max : Versus
        Mean and maximum of ``|ΔV|`` (Cramér's V) over all pairs.
    pairs : list of PairFidelity
        Every pair, the largest synthetic 2-way TVD first.
    marginals : dict of str to Marginal
        The 1-way marginals of every column, for plots.
    """

    one_way: dict[str, Versus]
    one_way_mean: Versus
    one_way_max: Versus
    two_way_mean: Versus
    two_way_max: Versus
    association_mean: Versus
    association_max: Versus
    pairs: list[PairFidelity]
    marginals: dict[str, Marginal]


@dataclass(frozen=True)
class ModelUtility:
    """Holdout AUROC of one kind of model trained on each table.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.
    tstr : float or None
        Trained on the synthetic table, tested on the real holdout.
    trtr : float or None
        Trained on the real training table, tested on the real holdout.
    independent : float or None
        Trained on the independent-columns baseline, tested on the real holdout.
    ratio : float or None
        ``tstr / trtr``.
    roc_tstr, roc_trtr : list of dict
        ROC curve points (``fpr``, ``tpr``, ``threshold``) of the two models.
    notes : list of str
        Why a value is missing.
    """

    model: str
    tstr: float | None
    trtr: float | None
    independent: float | None
    ratio: float | None
    roc_tstr: list[dict[str, float]] = field(default_factory=list)
    roc_trtr: list[dict[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Utility:
    """Train-on-synthetic, test-on-real utility for one binary outcome.

    Parameters
    ----------
    outcome : str
        The outcome column.
    positive : str
        The label of its positive code.
    test_rows, test_positives : int
        Holdout rows with a known outcome, and how many are positive.
    dropped : dict of str to int
        Rows of each table left out because their outcome is MISSING or OUT_OF_RANGE.
    models : list of ModelUtility
        One per model of :data:`MODELS`.
    """

    outcome: str
    positive: str
    test_rows: int
    test_positives: int
    dropped: dict[str, int]
    models: list[ModelUtility]


@dataclass(frozen=True)
class Privacy:
    """Distances to closest records and a membership-inference attack.

    Parameters
    ----------
    distance : str
        How distances are measured.
    max_distance : int
        The largest possible distance (the number of columns).
    sampled_rows : dict of str to int
        Rows of each table whose DCR was computed (a seeded sample of at most
        ``privacy_rows``).
    dcr_synthetic, dcr_holdout : list of int
        Number of sampled synthetic (holdout) rows at each distance ``0 .. max_distance`` from
        the training table.
    median_synthetic, median_holdout : float
        Median DCR of each.
    closer_than_holdout_median : float
        Share of synthetic rows whose DCR is below the holdout median.
    closer_than_holdout_median_holdout : float
        The same share among holdout rows (the reference).
    exact_copy_share : float
        Share of all synthetic rows whose codes equal those of a training row.
    exact_copy_share_holdout : float
        The same share among all holdout rows (the reference).
    mia_auroc : float
        AUROC of the distance attack (0.5: nothing revealed; 1: members always found).
    mia_members, mia_non_members : int
        Training and holdout rows attacked.
    mia_roc : list of dict
        ROC curve points of the attack.
    """

    distance: str
    max_distance: int
    sampled_rows: dict[str, int]
    dcr_synthetic: list[int]
    dcr_holdout: list[int]
    median_synthetic: float
    median_holdout: float
    closer_than_holdout_median: float
    closer_than_holdout_median_holdout: float
    exact_copy_share: float
    exact_copy_share_holdout: float
    mia_auroc: float
    mia_members: int
    mia_non_members: int
    mia_roc: list[dict[str, float]]


@dataclass(frozen=True)
class Evaluation:
    """Everything the quality report shows.

    Parameters
    ----------
    domain : str
        Name of the domain the tables were encoded with.
    columns : list of str
        The columns, in domain order.
    rows : dict of str to int
        Rows of the ``train``, ``synthetic``, ``holdout`` and ``independent`` tables.
    out_of_range : dict of str to dict
        Per table, the columns with values outside the domain (coded OUT_OF_RANGE) and how
        many.
    fidelity : Fidelity
    utility : Utility or None
        ``None`` without an outcome column.
    privacy : Privacy
    guarantee : dict or None
        The synthesizer's privacy guarantee (``mechanism``, ``epsilon``, ``delta``, ``rho``).
    seed : int
        Seed of the baseline, the samples and the models.
    """

    domain: str
    columns: list[str]
    rows: dict[str, int]
    out_of_range: dict[str, dict[str, int]]
    fidelity: Fidelity
    utility: Utility | None
    privacy: Privacy
    guarantee: dict[str, Any] | None
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """The evaluation as plain JSON-able data (the body of ``report.json``)."""
        return dataclasses.asdict(self)


# -- fidelity -----------------------------------------------------------------------------


def _check_codes(name: str, codes: npt.ArrayLike, sizes: Sequence[int]) -> IntArray:
    m = np.asarray(codes)
    if m.ndim != 2 or m.shape[1] != len(sizes):
        raise EvaluationError(
            f"{name} must be a (rows, {len(sizes)}) code matrix, not shape {m.shape}",
            rule="codes-shape",
        )
    if m.shape[0] == 0:
        raise EvaluationError(f"{name} has no rows", rule="empty")
    if not np.issubdtype(m.dtype, np.integer):
        raise EvaluationError(f"{name} must hold integer codes, not {m.dtype}", rule="codes-type")
    top = np.asarray(sizes, dtype=np.int64)
    bad = (m < 0) | (m >= top)
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        raise EvaluationError(
            f"{name}: code {int(m[row, col])} of column {col} (row {row}) is outside "
            f"0..{int(top[col]) - 1}",
            rule="codes-range",
        )
    return m.astype(np.int64, copy=False)


def _shares(column: IntArray, size: int) -> FloatArray:
    counts = np.bincount(column, minlength=size).astype(np.float64)
    shares: FloatArray = counts / column.size
    return shares


def _tvd(p: FloatArray, q: FloatArray) -> float:
    return float(0.5 * np.abs(p - q).sum())


def tvd_1way(a: npt.ArrayLike, b: npt.ArrayLike, sizes: Sequence[int]) -> FloatArray:
    """Total variation distance of every 1-way marginal.

    Parameters
    ----------
    a, b : array of int, shape (rows, columns)
        Two code matrices of the same domain (row counts may differ).
    sizes : sequence of int
        Number of codes of each column.

    Returns
    -------
    numpy.ndarray of shape (columns,)
        ``½ Σ_k |p_a(k) − p_b(k)|`` per column, in [0, 1].
    """
    ca, cb = _check_codes("a", a, sizes), _check_codes("b", b, sizes)
    return np.array([_tvd(_shares(ca[:, j], s), _shares(cb[:, j], s)) for j, s in enumerate(sizes)])


def _pair_shares(codes: IntArray, i: int, j: int, sizes: Sequence[int]) -> FloatArray:
    """The 2-way marginal of columns ``i`` and ``j`` as shares, shape (sizes[i], sizes[j])."""
    flat = codes[:, i] * sizes[j] + codes[:, j]
    counts = np.bincount(flat, minlength=sizes[i] * sizes[j]).astype(np.float64)
    shares: FloatArray = (counts / codes.shape[0]).reshape(sizes[i], sizes[j])
    return shares


def cramers_v(table: npt.ArrayLike) -> float:
    """Cramér's V of a contingency table (no bias correction).

    Parameters
    ----------
    table : array of float, shape (r, c)
        Counts or shares; empty rows and columns are left out.

    Returns
    -------
    float
        ``sqrt(χ² / (n · (min(r, c) − 1)))`` over the non-empty rows and columns, in [0, 1];
        0 when a column is constant (no association to measure).
    """
    t = np.asarray(table, dtype=np.float64)
    rows, cols = t.sum(axis=1), t.sum(axis=0)
    t = t[rows > 0][:, cols > 0]
    r, c = rows[rows > 0], cols[cols > 0]
    k = min(r.size, c.size) - 1
    n = float(t.sum())
    if k <= 0 or n <= 0:
        return 0.0
    expected = np.outer(r, c) / n
    chi2 = float(((t - expected) ** 2 / expected).sum())
    return float(np.sqrt(min(1.0, chi2 / (n * k))))


def _pairs(d: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(d) for j in range(i + 1, d)]


def tvd_2way(a: npt.ArrayLike, b: npt.ArrayLike, sizes: Sequence[int]) -> FloatArray:
    """Total variation distance of every 2-way marginal.

    Parameters
    ----------
    a, b : array of int, shape (rows, columns)
        Two code matrices of the same domain.
    sizes : sequence of int
        Number of codes of each column.

    Returns
    -------
    numpy.ndarray of shape (columns, columns)
        Symmetric, the TVD of the pair ``(i, j)`` at ``[i, j]``; NaN on the diagonal.
    """
    ca, cb = _check_codes("a", a, sizes), _check_codes("b", b, sizes)
    d = len(sizes)
    out = np.full((d, d), np.nan)
    for i, j in _pairs(d):
        out[i, j] = out[j, i] = _tvd(_pair_shares(ca, i, j, sizes), _pair_shares(cb, i, j, sizes))
    return out


def independent_sample(
    codes: npt.ArrayLike, sizes: Sequence[int], n: int, rng: np.random.Generator
) -> IntArray:
    """Rows drawn from the product of the 1-way marginals of a code matrix.

    Parameters
    ----------
    codes : array of int, shape (rows, columns)
        The table whose marginals are kept.
    sizes : sequence of int
        Number of codes of each column.
    n : int
        Rows to draw.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray of int64, shape (n, columns)
        Every column distributed as in ``codes``, columns independent of each other.
    """
    c = _check_codes("codes", codes, sizes)
    out = np.empty((n, len(sizes)), dtype=np.int64)
    for j, s in enumerate(sizes):
        out[:, j] = rng.choice(s, size=n, p=_shares(c[:, j], s))
    return out


def _mean_max(values: Sequence[FloatArray]) -> tuple[Versus, Versus]:
    """Mean and maximum of each table's per-item values (synthetic, holdout, independent)."""
    if values[0].size == 0:
        empty = Versus(None, None, None)
        return empty, empty
    means = [float(v.mean()) for v in values]
    tops = [float(v.max()) for v in values]
    return Versus(*means), Versus(*tops)


def fidelity(
    train: IntArray,
    synthetic: IntArray,
    holdout: IntArray,
    independent: IntArray,
    domain: Domain,
) -> Fidelity:
    """1-way and 2-way TVD and Cramér's V differences of three tables against the training one.

    Parameters
    ----------
    train, synthetic, holdout, independent : array of int, shape (rows, columns)
        Code matrices of the domain: the real training table, the synthetic table, the real
        holdout table and the independent-columns baseline.
    domain : Domain
        Their domain (column names, sizes and code labels).

    Returns
    -------
    Fidelity
    """
    sizes, names = domain.sizes(), domain.names
    tables = [
        _check_codes(name, t, sizes)
        for name, t in (
            ("train", train),
            ("synthetic", synthetic),
            ("holdout", holdout),
            ("independent", independent),
        )
    ]
    one_way: dict[str, Versus] = {}
    marginals: dict[str, Marginal] = {}
    per_column = np.empty((3, len(sizes)))
    for j, (name, size) in enumerate(zip(names, sizes, strict=True)):
        p = [_shares(t[:, j], size) for t in tables]
        per_column[:, j] = [_tvd(p[0], q) for q in p[1:]]
        one_way[name] = Versus(*(float(v) for v in per_column[:, j]))
        marginals[name] = Marginal(
            domain.columns[j].labels(), p[0].tolist(), p[1].tolist(), p[2].tolist()
        )
    pairs = _pairs(len(sizes))
    tvd2 = np.empty((3, len(pairs)))
    dv = np.empty((3, len(pairs)))
    v_train = np.empty(len(pairs))
    for k, (i, j) in enumerate(pairs):
        p = [_pair_shares(t, i, j, sizes) for t in tables]
        v = [cramers_v(q) for q in p]
        tvd2[:, k] = [_tvd(p[0], q) for q in p[1:]]
        dv[:, k] = [abs(x - v[0]) for x in v[1:]]
        v_train[k] = v[0]
    order = np.argsort(-tvd2[0], kind="stable")
    pair_results = [
        PairFidelity(
            (names[pairs[k][0]], names[pairs[k][1]]),
            Versus(*(float(x) for x in tvd2[:, k])),
            float(v_train[k]),
            Versus(*(float(x) for x in dv[:, k])),
        )
        for k in order
    ]
    one_mean, one_max = _mean_max(list(per_column))
    two_mean, two_max = _mean_max(list(tvd2))
    assoc_mean, assoc_max = _mean_max(list(dv))
    return Fidelity(
        one_way,
        one_mean,
        one_max,
        two_mean,
        two_max,
        assoc_mean,
        assoc_max,
        pair_results,
        marginals,
    )


# -- privacy ------------------------------------------------------------------------------


def _one_hot(codes: IntArray, offsets: IntArray, keep: IntArray, width: int) -> Float32Array:
    """Dense one-hot rows over the kept global code indexes (``-1``: dropped).

    float32 feeds BLAS twice as fast as float64, and counts of equal codes stay exact.
    """
    index = keep[codes + offsets]
    out = np.zeros((codes.shape[0], width), dtype=np.float32)
    rows = np.repeat(np.arange(codes.shape[0]), codes.shape[1])
    flat = index.ravel()
    ok = flat >= 0
    out[rows[ok], flat[ok]] = 1.0
    return out


def hamming_dcr(queries: npt.ArrayLike, reference: npt.ArrayLike, sizes: Sequence[int]) -> IntArray:
    """Distance from each query row to its closest reference row: columns with other codes.

    Parameters
    ----------
    queries, reference : array of int, shape (rows, columns)
        Code matrices of the same domain.
    sizes : sequence of int
        Number of codes of each column.

    Returns
    -------
    numpy.ndarray of int64, shape (query rows,)
        ``min_r #{j : q_j ≠ r_j}``, between 0 (an exact copy of a reference row's codes) and
        the number of columns.

    Notes
    -----
    The number of equal codes of two rows is the dot product of their one-hot vectors, so
    the search is a chunked matrix product (BLAS), O(queries × reference × codes) flops.
    """
    q = _check_codes("queries", queries, sizes)
    r = _check_codes("reference", reference, sizes)
    d = len(sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    total = int(np.sum(sizes))
    # only codes present in both tables can match: drop the others from the product
    used = np.zeros(total, dtype=bool)
    used[np.unique(q + offsets)] = True
    seen = np.zeros(total, dtype=bool)
    seen[np.unique(r + offsets)] = True
    used &= seen
    keep = np.where(used, np.cumsum(used) - 1, -1).astype(np.int64)
    width = int(used.sum())
    best = np.zeros(q.shape[0], dtype=np.int64)
    if width:
        hot_q = _one_hot(q, offsets, keep, width)
        for start in range(0, r.shape[0], _DCR_CHUNK):
            hot_r = _one_hot(r[start : start + _DCR_CHUNK], offsets, keep, width)
            matches = (hot_q @ hot_r.T).max(axis=1)
            np.maximum(best, np.rint(matches).astype(np.int64), out=best)
    out: IntArray = d - best
    return out


def exact_copy_share(
    queries: npt.ArrayLike, reference: npt.ArrayLike, sizes: Sequence[int]
) -> float:
    """Share of query rows whose codes equal those of some reference row (all rows compared).

    Parameters
    ----------
    queries, reference : array of int, shape (rows, columns)
        Code matrices of the same domain.
    sizes : sequence of int
        Number of codes of each column.

    Returns
    -------
    float
        In [0, 1].
    """
    q = _check_codes("queries", queries, sizes)
    r = _check_codes("reference", reference, sizes)
    _, inverse = np.unique(np.vstack([r, q]), axis=0, return_inverse=True)
    ids = inverse.reshape(-1)
    return float(np.isin(ids[r.shape[0] :], ids[: r.shape[0]]).mean())


def _sample_rows(codes: IntArray, k: int, rng: np.random.Generator) -> IntArray:
    if codes.shape[0] <= k:
        return codes
    chosen = np.sort(rng.choice(codes.shape[0], size=k, replace=False))
    out: IntArray = codes[chosen]
    return out


def privacy(
    train: npt.ArrayLike,
    synthetic: npt.ArrayLike,
    holdout: npt.ArrayLike,
    sizes: Sequence[int],
    *,
    rows: int = DEFAULT_PRIVACY_ROWS,
    seed: int = 0,
) -> Privacy:
    """Distances to closest records and the distance membership-inference attack.

    Parameters
    ----------
    train, synthetic, holdout : array of int, shape (rows, columns)
        Code matrices of the real training table, the synthetic table and the real holdout.
    sizes : sequence of int
        Number of codes of each column.
    rows : int
        At most this many rows of each table are the queries of the distance searches (a
        seeded sample); the searched tables are always whole. Exact copies count all rows.
    seed : int
        Seed of the samples.

    Returns
    -------
    Privacy
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise EvaluationError(f"rows must be a positive integer, not {rows!r}", rule="range")
    tr = _check_codes("train", train, sizes)
    sy = _check_codes("synthetic", synthetic, sizes)
    ho = _check_codes("holdout", holdout, sizes)
    rng = np.random.default_rng(seed)
    sy_q, ho_q, tr_q = (_sample_rows(t, rows, rng) for t in (sy, ho, tr))
    d = len(sizes)
    dcr_sy = hamming_dcr(sy_q, tr, sizes)
    dcr_ho = hamming_dcr(ho_q, tr, sizes)
    median_ho = float(np.median(dcr_ho))
    # the attack: members (training rows) lie closer to a copying synthesizer's output
    member_d = hamming_dcr(tr_q, sy, sizes)
    other_d = hamming_dcr(ho_q, sy, sizes)
    labels = np.r_[np.ones(member_d.size), np.zeros(other_d.size)]
    score = -np.r_[member_d, other_d].astype(np.float64)
    return Privacy(
        distance="Hamming distance between code vectors (columns whose codes differ)",
        max_distance=d,
        sampled_rows={"synthetic": sy_q.shape[0], "holdout": ho_q.shape[0], "train": tr_q.shape[0]},
        dcr_synthetic=np.bincount(dcr_sy, minlength=d + 1).tolist(),
        dcr_holdout=np.bincount(dcr_ho, minlength=d + 1).tolist(),
        median_synthetic=float(np.median(dcr_sy)),
        median_holdout=median_ho,
        closer_than_holdout_median=float(np.mean(dcr_sy < median_ho)),
        closer_than_holdout_median_holdout=float(np.mean(dcr_ho < median_ho)),
        exact_copy_share=exact_copy_share(sy, tr, sizes),
        exact_copy_share_holdout=exact_copy_share(ho, tr, sizes),
        mia_auroc=auroc(labels, score),
        mia_members=int(member_d.size),
        mia_non_members=int(other_d.size),
        mia_roc=roc_curve_points(labels, score, max_points=ROC_POINTS),
    )


# -- utility ------------------------------------------------------------------------------


def _positive_code(domain: Domain, outcome: str, positive: str | None) -> tuple[int, str]:
    col = domain.column(outcome)
    labels = col.labels()[: col.levels]
    if positive is None:
        if col.levels != 2:
            raise EvaluationError(
                f"outcome {outcome!r} has {col.levels} values ({', '.join(labels)}): name the "
                "positive one (positive=...), or use a boolean or two-category column",
                rule="outcome-binary",
            )
        return 1, labels[1]
    if positive not in labels:
        raise EvaluationError(
            f"positive {positive!r} is not a value of outcome {outcome!r} "
            f"(values: {', '.join(labels)})",
            rule="outcome-positive",
        )
    return labels.index(positive), positive


def _one_hot_sparse(codes: IntArray, sizes: Sequence[int]) -> Any:
    from scipy import sparse

    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    n, d = codes.shape
    rows = np.repeat(np.arange(n), d)
    return sparse.csr_matrix(
        (np.ones(n * d), (rows, (codes + offsets).ravel())), shape=(n, int(np.sum(sizes)))
    )


def _scores(
    model: str,
    x_train: IntArray,
    y_train: BoolArray,
    x_test: IntArray,
    sizes: Sequence[int],
    categorical: BoolArray,
    seed: int,
) -> FloatArray:
    """Predicted probabilities of the positive class on the test rows."""
    if model == "logistic_regression":
        from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

        lr = LogisticRegression(max_iter=2000, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; the AUROC says enough
            lr.fit(_one_hot_sparse(x_train, sizes), y_train)
        probs = lr.predict_proba(_one_hot_sparse(x_test, sizes))
    else:
        from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        hgb = HistGradientBoostingClassifier(
            random_state=seed,
            categorical_features=categorical if categorical.any() else None,
        )
        # One OpenMP thread: small fits run many tiny parallel regions, which spin for
        # seconds on a busy machine; one thread is also the same on every machine.
        with threadpool_limits(limits=1, user_api="openmp"):
            hgb.fit(x_train.astype(np.float64), y_train)
            probs = hgb.predict_proba(x_test.astype(np.float64))
    out: FloatArray = np.asarray(probs[:, 1], dtype=np.float64)
    return out


def utility(
    train: npt.ArrayLike,
    synthetic: npt.ArrayLike,
    holdout: npt.ArrayLike,
    domain: Domain,
    outcome: str,
    *,
    positive: str | None = None,
    independent: npt.ArrayLike | None = None,
    seed: int = 0,
    exclude: Sequence[str] = (),
) -> Utility:
    """Holdout AUROC of models trained on the synthetic table versus on the real one.

    Parameters
    ----------
    train, synthetic, holdout : array of int, shape (rows, columns)
        Code matrices of the domain.
    domain : Domain
        Their domain.
    outcome : str
        The binary outcome column; the other columns are the features, but ``exclude`` and
        the durations whose ``event`` is the outcome.
    positive : str, optional
        The label (see :meth:`ColumnDomain.labels`) of the positive outcome; by default the
        second of a column with two values (``true`` of a boolean).
    independent : array of int, optional
        The independent-columns baseline, also trained on when given.
    exclude : sequence of str
        Columns left out of the features (they would carry the outcome).
    seed : int
        Seed of the models.

    Returns
    -------
    Utility
        Rows whose outcome is MISSING or OUT_OF_RANGE are left out (and counted). A model
        whose training rows hold one class only, or a holdout with one class, gives ``None``
        with a note.
    """
    sizes = domain.sizes()
    j = domain.position(outcome)
    code, label = _positive_code(domain, outcome, positive)
    col = domain.columns[j]
    # Columns that carry the outcome itself (its duration, other horizons) would leak it.
    leaks = set(exclude) | {c.name for c in domain.columns if c.event == outcome}
    features = [k for k in range(len(sizes)) if k != j and domain.columns[k].name not in leaks]
    feature_sizes = [sizes[k] for k in features]
    categorical = np.array(
        [
            domain.columns[k].kind in ("categorical", "boolean") and sizes[k] <= _HGB_MAX_CATEGORIES
            for k in features
        ],
        dtype=bool,
    )
    named = {"train": train, "synthetic": synthetic, "holdout": holdout}
    if independent is not None:
        named["independent"] = independent
    data: dict[str, tuple[IntArray, BoolArray]] = {}
    dropped: dict[str, int] = {}
    for name, table in named.items():
        m = _check_codes(name, table, sizes)
        known = m[:, j] < col.levels
        dropped[name] = int((~known).sum())
        data[name] = (m[known][:, features], m[known, j] == code)
    x_test, y_test = data["holdout"]
    test_ok = 0 < int(y_test.sum()) < y_test.size
    results = []
    for model in MODELS:
        notes: list[str] = []
        aurocs: dict[str, float | None] = {}
        rocs: dict[str, list[dict[str, float]]] = {}
        for name in ("synthetic", "train", "independent"):
            if name not in data:
                aurocs[name] = None
                continue
            x, y = data[name]
            if not test_ok:
                aurocs[name] = None
                continue
            if y.size == 0 or y.all() or not y.any():
                aurocs[name] = None
                notes.append(f"the {name} table holds one outcome class only: no model")
                continue
            s = _scores(model, x, y, x_test, feature_sizes, categorical, seed)
            aurocs[name] = auroc(y_test, s)
            rocs[name] = roc_curve_points(y_test, s, max_points=ROC_POINTS)
        if not test_ok:
            notes.append("the holdout holds one outcome class only: AUROC undefined")
        tstr, trtr = aurocs["synthetic"], aurocs["train"]
        ratio = tstr / trtr if tstr is not None and trtr else None
        results.append(
            ModelUtility(
                model,
                tstr,
                trtr,
                aurocs["independent"],
                ratio,
                rocs.get("synthetic", []),
                rocs.get("train", []),
                notes,
            )
        )
    return Utility(
        outcome=outcome,
        positive=label,
        test_rows=int(y_test.size),
        test_positives=int(y_test.sum()),
        dropped=dropped,
        models=results,
    )


# -- the whole evaluation -----------------------------------------------------------------


def split_holdout(
    table: pa.Table, fraction: float = 0.3, seed: int = 0
) -> tuple[pa.Table, pa.Table]:
    """Split a real table into a training part (for the synthesizer) and a holdout.

    The holdout must be set aside before the synthesizer is fitted: rows it saw are no holdout.

    Parameters
    ----------
    table : pyarrow.Table
        The real table.
    fraction : float
        Share of rows in the holdout, in (0, 1).
    seed : int
        Seed of the random split.

    Returns
    -------
    (pyarrow.Table, pyarrow.Table)
        The training rows and the holdout rows, each in their original order.
    """
    if not 0.0 < fraction < 1.0:
        raise EvaluationError(f"fraction must lie in (0, 1), not {fraction!r}", rule="range")
    n = table.num_rows
    k = round(n * fraction)
    if k < 1 or k > n - 1:
        raise EvaluationError(
            f"a holdout of {fraction:g} of {n} rows leaves a part empty", rule="empty"
        )
    order = np.random.default_rng(seed).permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[order[:k]] = True
    return table.filter(pa.array(~mask)), table.filter(pa.array(mask))


def evaluate(
    real_train: pa.Table,
    synthetic: pa.Table,
    holdout: pa.Table,
    domain: Domain,
    *,
    outcome: str | None = None,
    positive: str | None = None,
    guarantee: Mapping[str, Any] | _HasToDict | None = None,
    seed: int = 0,
    privacy_rows: int = DEFAULT_PRIVACY_ROWS,
    exclude: Sequence[str] = (),
) -> Evaluation:
    """Fidelity, utility and privacy of a synthetic table, with their references.

    Parameters
    ----------
    real_train : pyarrow.Table
        The real rows the synthesizer was fitted on.
    synthetic : pyarrow.Table
        The synthetic rows.
    holdout : pyarrow.Table
        Real rows of the same population the synthesizer never saw.
    domain : Domain
        The domain all three are encoded with (each must hold exactly its columns).
    outcome : str, optional
        A binary outcome column: adds the utility measures.
    exclude : sequence of str
        Columns left out of the utility models' features (other outcomes, anything that
        carries the outcome); durations whose ``event`` is the outcome are always left out.
    positive : str, optional
        The label of the positive outcome (see :func:`utility`).
    guarantee : mapping or Guarantee, optional
        The synthesizer's privacy guarantee (``mechanism``, ``epsilon``, ``delta``, ``rho``;
        a :class:`cardiobox.synth.api.Guarantee` or its ``to_dict()``), copied into the
        report.
    seed : int
        Seed of the independent baseline, the privacy samples and the models.
    privacy_rows : int
        Rows sampled from each table for the distance searches.

    Returns
    -------
    Evaluation

    Raises
    ------
    EvaluationError
        For an empty table, or an outcome that is not binary.
    DomainError
        For a table whose columns are not the domain's, or an unknown outcome column.
    """
    if outcome is not None:
        _positive_code(domain, outcome, positive)  # fail before the work
    encoded = {}
    for name, table in (("train", real_train), ("synthetic", synthetic), ("holdout", holdout)):
        if table.num_rows == 0:
            raise EvaluationError(f"the {name} table has no rows", rule="empty")
        encoded[name] = encode(table, domain, warn=False)
    sizes = domain.sizes()
    tr, sy, ho = (encoded[k].codes for k in ("train", "synthetic", "holdout"))
    seeds = np.random.SeedSequence(seed).spawn(2)
    indep = independent_sample(tr, sizes, sy.shape[0], np.random.default_rng(seeds[0]))
    privacy_seed = int(seeds[1].generate_state(1)[0])
    return Evaluation(
        domain=domain.name,
        columns=domain.names,
        rows={
            "train": tr.shape[0],
            "synthetic": sy.shape[0],
            "holdout": ho.shape[0],
            "independent": indep.shape[0],
        },
        out_of_range={
            name: {c: n for c, n in e.out_of_range.items() if n} for name, e in encoded.items()
        },
        fidelity=fidelity(tr, sy, ho, indep, domain),
        utility=(
            None
            if outcome is None
            else utility(
                tr,
                sy,
                ho,
                domain,
                outcome,
                positive=positive,
                independent=indep,
                seed=seed,
                exclude=exclude,
            )
        ),
        privacy=privacy(tr, sy, ho, sizes, rows=privacy_rows, seed=privacy_seed),
        guarantee=(
            None
            if guarantee is None
            else dict(guarantee)
            if isinstance(guarantee, Mapping)
            else guarantee.to_dict()
        ),
        seed=seed,
    )

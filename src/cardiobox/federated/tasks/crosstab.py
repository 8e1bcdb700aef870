"""``crosstab``: a contingency table of one or two categorical columns, pooled over the sites.

Levels are public when the request gives them (``levels``); otherwise round 1 asks every site
for its levels that each hold at least ``min_cell_count`` rows (released in clear — a level's
name reveals nothing more than that it is common at some site) and the hub takes their union,
sorted. In the counting round every site sends its counts on the shared grid of levels by
secure aggregation; the grid ends with ``(missing)`` (NULL) and ``(other)`` (a level not on the
grid), so every row is counted once. The hub suppresses pooled cells and totals below the
largest ``min_cell_count`` the sites declared, then suppresses further cells until no line of
the table (a row or a column with its total) has exactly one suppressed entry, which would
give it away by difference.

The chi-square test of independence is computed at the hub on the *unsuppressed* pooled
table (rows and columns ``(missing)`` left out, empty ones dropped): the statistic and its
p-value are aggregates over every cell, not counts, and reveal no single cell.

With ``rho`` > 0 each site adds Gaussian noise to its counts (sensitivity 1: adding or removing
one row changes one cell by one); levels must then be given, since listing the levels present
at a site is not differentially private.

The level helpers here (:func:`level_key`, :func:`read_level_codes`, :func:`frequent_levels`,
:func:`sort_levels`, :func:`grid_codes`, :func:`levels_release`), the releases of noisy counts
(:func:`noisy_counts_release`, :func:`count_noise_sd`) and :func:`suppression_mask` serve the
other tasks that group rows by a categorical column (``km``) or show counts (``describe``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import model_validator
from scipy.stats import chi2_contingency

from cardiobox.federated.site_table import SiteTable
from cardiobox.federated.task import (
    Next,
    Result,
    RoundResult,
    SiteContext,
    SiteOutput,
    Task,
    TaskError,
    TaskParams,
    register,
)
from cardiobox.privacy.zcdp import add_gaussian_noise, gaussian_sigma

#: Label of the NULL level.
MISSING = "(missing)"
#: Label of the rows whose level is not on the grid.
OTHER = "(other)"
#: The most levels one variable's grid may hold (keeps messages and tables bounded).
MAX_LEVELS = 10_000
#: The most cells a table may have (each site sends one number per cell).
MAX_CELLS = 250_000

Level = str | int | float | bool
_INTEGER = re.compile(r"-?\d+")


# --- levels ---------------------------------------------------------------------------------


def level_key(value: Level, what: str = "level") -> str:
    """The canonical text of a level, as the sites compare it.

    Booleans are ``"true"``/``"false"``, integer-valued numbers their integer text (``1.0`` →
    ``"1"``), strings themselves.

    Raises
    ------
    ValueError
        For a number that is not a whole number.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"{what} {value!r} is not a whole number (levels are codes)")
        return str(int(value))
    return value


def check_levels(raw: Sequence[Level], what: str) -> list[str]:
    """Canonical, distinct, non-empty levels from a request.

    Raises
    ------
    ValueError
        Naming ``what`` for an empty list, a repeated level, too many levels or a
        non-integer number.
    """
    if not raw:
        raise ValueError(f"{what} must list at least one level")
    if len(raw) > MAX_LEVELS:
        raise ValueError(f"{what} lists {len(raw)} levels; at most {MAX_LEVELS} are allowed")
    keys = [level_key(v, what) for v in raw]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"{what} repeats level(s) {', '.join(map(repr, repeated))}")
    if MISSING in keys or OTHER in keys:
        raise ValueError(f"{what}: {MISSING} and {OTHER} are added by the task, do not list them")
    return keys


def read_level_codes(
    table: SiteTable, column: str, where: str | None
) -> tuple[list[str], npt.NDArray[np.int64]]:
    """A categorical column as (its distinct levels, each row's index into them, -1 for NULL).

    String and boolean columns are read as text; number columns must hold whole numbers
    (integer codes), read as their integer text.

    Raises
    ------
    TaskError
        For a date or other column, or a number column with non-integer values.
    """
    table.check([column])
    family = table.families[column]
    if family == "number":
        x = table.numeric([column], where, complete=False)[:, 0]
        present = ~np.isnan(x)
        values = x[present]
        if not np.all(values == np.round(values)) or not np.all(np.isfinite(values)):
            raise TaskError(
                f"column {column!r} holds non-integer numbers; a categorical column must be "
                "a string, a boolean or integer codes",
                rule="column-type",
            )
        uniq, inverse = np.unique(values, return_inverse=True)
        levels = [str(int(u)) for u in uniq]
    elif family in ("string", "boolean"):
        raw = table.categories(column, where)
        present = np.asarray(raw != np.full(raw.shape, None, dtype=object), dtype=bool)
        uniq, inverse = np.unique(raw[present].astype(str), return_inverse=True)
        levels = [str(u) for u in uniq]
    else:
        raise TaskError(
            f"column {column!r} is {family}; a categorical column must be a string, a boolean "
            "or integer codes",
            rule="column-type",
        )
    codes = np.full(present.shape[0], -1, dtype=np.int64)
    codes[present] = inverse.ravel()
    return levels, codes


def frequent_levels(
    levels: Sequence[str], codes: npt.NDArray[np.int64], min_count: int
) -> list[str]:
    """The levels (NULL excluded) that at least ``min_count`` rows hold."""
    counts = np.bincount(codes[codes >= 0], minlength=len(levels))
    return [lv for lv, n in zip(levels, counts, strict=True) if n >= min_count]


def sort_levels(levels: Iterable[str]) -> list[str]:
    """Distinct levels in order: numerically when all are integers, else as text."""
    distinct = set(levels)
    if all(_INTEGER.fullmatch(v) for v in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def grid_codes(
    levels: Sequence[str], codes: npt.NDArray[np.int64], grid: Sequence[str]
) -> npt.NDArray[np.int64]:
    """Each row's index on a grid of levels followed by ``(missing)`` and ``(other)``.

    Parameters
    ----------
    levels, codes
        As returned by :func:`read_level_codes`.
    grid : sequence of str
        The shared levels; NULL rows get index ``len(grid)``, rows of a level not on the grid
        ``len(grid) + 1``.
    """
    position = {lv: i for i, lv in enumerate(grid)}
    other = len(grid) + 1
    # The last entry serves code -1 (NULL).
    lookup = np.array([position.get(lv, other) for lv in levels] + [len(grid)], dtype=np.int64)
    result: npt.NDArray[np.int64] = lookup[codes]
    return result


def payload_levels(payload: dict[str, Any], columns: Sequence[str]) -> dict[str, list[str]]:
    """The grid of levels the hub sent for each column, checked.

    Raises
    ------
    TaskError
        (rule ``protocol``) for a malformed payload.
    """
    raw = payload.get("levels")
    if not isinstance(raw, dict):
        raise TaskError("the payload carries no levels", rule="protocol")
    out: dict[str, list[str]] = {}
    for c in columns:
        lv = raw.get(c)
        if (
            not isinstance(lv, list)
            or len(lv) > MAX_LEVELS
            or not all(isinstance(v, str) for v in lv)
            or len(set(lv)) != len(lv)
        ):
            raise TaskError(f"the payload's levels of {c!r} are malformed", rule="protocol")
        out[c] = lv
    return out


def union_levels(values: dict[str, dict[str, Any]], column: str) -> list[str]:
    """Sorted union of the levels the sites listed for ``column`` in round 1.

    Raises
    ------
    TaskError
        (rule ``protocol``) for a site reply without a list of text levels.
    """
    union: set[str] = set()
    for site, v in values.items():
        listed = v.get("levels", {}).get(column) if isinstance(v.get("levels"), dict) else None
        if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
            raise TaskError(f"site {site} sent no levels for {column!r}", rule="protocol")
        union.update(listed)
    ordered = sort_levels(union)
    if len(ordered) > MAX_LEVELS:
        raise TaskError(
            f"column {column!r} has {len(ordered)} common levels; at most {MAX_LEVELS} allowed",
            rule="too-many-levels",
        )
    return ordered


def declared_min_cell(values: dict[str, dict[str, Any]]) -> int:
    """The largest ``min_cell_count`` the sites of a round declared (1 when none did)."""
    declared = [v.get("min_cell_count") for v in values.values()]
    return max([int(m) for m in declared if isinstance(m, int | float)], default=1)


def running_min_cell(values: dict[str, dict[str, Any]], state: dict[str, Any]) -> int:
    """The largest ``min_cell_count`` declared in this round or an earlier one of the run.

    Kept in the hub's ``state["min_cell"]``, so a site that drops out cannot lower it.
    """
    state["min_cell"] = max(declared_min_cell(values), int(state.get("min_cell", 1)))
    return int(state["min_cell"])


def levels_release(
    read: Mapping[str, tuple[list[str], npt.NDArray[np.int64]]], ctx: SiteContext, what: str
) -> SiteOutput:
    """A site's levels held by at least its ``min_cell_count`` rows, in clear (round 1).

    Parameters
    ----------
    read : mapping of str to (levels, codes)
        The columns whose levels the hub asks for, as :func:`read_level_codes` gives them.
    ctx : SiteContext
        The site's policy and ρ.
    what : str
        The levels the request must give instead when it asks for noise (for the error).

    Raises
    ------
    TaskError
        With rule ``dp-unsupported`` when ``ctx.rho`` > 0: listing the levels present at a
        site is not differentially private.
    """
    if ctx.rho > 0:
        raise TaskError(
            f"with rho > 0 the request must give {what} (params levels): the levels present at "
            "a site are not released with differential privacy",
            rule="dp-unsupported",
        )
    min_count = ctx.policy.min_cell_count
    return SiteOutput(
        values={
            "levels": {c: frequent_levels(*codes, min_count) for c, codes in read.items()},
            "min_cell_count": min_count,
        },
        mechanism=f"levels held by at least {min_count} rows",
    )


# --- noisy counts ---------------------------------------------------------------------------


def noisy_counts_release(
    name: str, counts: npt.NDArray[np.float64], ctx: SiteContext, mechanism: str
) -> SiteOutput:
    """Counts to be summed over the sites, with Gaussian noise when ``ctx.rho`` > 0.

    Every row must land in exactly one count, so that adding or removing a row changes the
    vector by one in one place (L2 sensitivity 1).

    Parameters
    ----------
    name : str
        The name of the summed vector.
    counts : numpy.ndarray
        The site's exact counts.
    ctx : SiteContext
        The site's policy, ρ and generator.
    mechanism : str
        How the counts are protected without noise, for the audit log.
    """
    if ctx.rho > 0:
        counts = add_gaussian_noise(counts, 1.0, ctx.rho, ctx.rng)
        mechanism = f"Gaussian noise (rho={ctx.rho:g}, sensitivity 1); " + mechanism
    return SiteOutput(
        values={"min_cell_count": ctx.policy.min_cell_count, "rho": ctx.rho},
        secure={name: counts},
        rho=ctx.rho,
        mechanism=mechanism,
    )


def count_noise_sd(values: dict[str, dict[str, Any]]) -> float | None:
    """Standard deviation of the noise in summed :func:`noisy_counts_release` counts.

    From the ρ each site declared; ``None`` when no site added noise.
    """
    rhos = [float(v.get("rho", 0.0) or 0.0) for v in values.values()]
    if not any(r > 0 for r in rhos):
        return None
    return math.sqrt(sum(gaussian_sigma(1.0, r) ** 2 for r in rhos if r > 0))


# --- suppression ----------------------------------------------------------------------------


def suppression_mask(
    values: npt.NDArray[np.float64], min_count: int, lines: Sequence[npt.NDArray[np.int64]]
) -> npt.NDArray[np.bool_]:
    """Primary and complementary suppression of a table of counts.

    Parameters
    ----------
    values : numpy.ndarray
        The counts (any shape), totals included.
    min_count : int
        Entries below this are suppressed (primary suppression).
    lines : sequence of numpy.ndarray
        Flat indices of the entries tied by one linear relation (a row with its total, a
        column with its total): a line with exactly one suppressed entry would give it away
        by difference, so one more of its entries is suppressed — the smallest of those that
        also close a crossing line with exactly one suppressed entry, else the smallest — and
        so on until no line has exactly one.

    Returns
    -------
    numpy.ndarray
        True where an entry must be shown as ``None`` (same shape as ``values``).

    Notes
    -----
    This is the usual greedy heuristic: it stops every recovery of a hidden count by one
    difference, not every bound a linear program could derive from several lines.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    hidden = flat < min_count
    member_of: list[list[int]] = [[] for _ in range(flat.size)]
    for i, line in enumerate(lines):
        for entry in line.tolist():
            member_of[entry].append(i)
    changed = True
    while changed:
        changed = False
        for i, line in enumerate(lines):
            if np.count_nonzero(hidden[line]) != 1:
                continue
            shown = line[~hidden[line]]
            if not shown.size:
                continue
            closes = np.array(
                [
                    any(np.count_nonzero(hidden[lines[o]]) == 1 for o in member_of[e] if o != i)
                    for e in shown.tolist()
                ]
            )
            pool = shown[closes] if closes.any() else shown
            hidden[pool[np.argmin(flat[pool])]] = True
            changed = True
    mask: npt.NDArray[np.bool_] = hidden.reshape(np.shape(values))
    return mask


def table_lines(n_rows: int, n_cols: int) -> list[npt.NDArray[np.int64]]:
    """The rows and columns of an ``n_rows × n_cols`` grid, as flat indices."""
    index = np.arange(n_rows * n_cols, dtype=np.int64).reshape(n_rows, n_cols)
    lines = [index[i, :] for i in range(n_rows)] + [index[:, j] for j in range(n_cols)]
    return [line for line in lines if line.size > 1]


def shown_counts(values: npt.NDArray[np.float64], hidden: npt.NDArray[np.bool_]) -> list[Any]:
    """Counts as (nested) lists of ints, ``None`` where hidden."""
    rounded = np.rint(values).astype(np.int64).ravel().tolist()
    listed: list[Any] = [
        None if h else int(v) for v, h in zip(rounded, hidden.ravel().tolist(), strict=True)
    ]
    if values.ndim == 2:
        return [listed[i * values.shape[1] : (i + 1) * values.shape[1]] for i in range(len(values))]
    return listed


def _checked_grid(grids: dict[str, list[str]]) -> dict[str, list[str]]:
    cells = math.prod(len(g) + 2 for g in grids.values())
    if cells > MAX_CELLS:
        sizes = " × ".join(f"{len(g) + 2} ({c})" for c, g in grids.items())
        raise TaskError(
            f"the table would have {sizes} = {cells} cells; at most {MAX_CELLS} are allowed",
            rule="too-many-levels",
        )
    return grids


# --- the task -------------------------------------------------------------------------------


class CrosstabParams(TaskParams):
    """Parameters of ``crosstab``.

    Parameters
    ----------
    row : str
        The categorical column of the table's rows (string, boolean or integer codes).
    column : str, optional
        The column of the table's columns; a one-way frequency table when absent.
    levels : dict of str to list, optional
        Public levels per column (strings, booleans or integers); the table lists them in
        this order. Columns without levels get them from the sites (round 1).
    correction : bool
        Yates' continuity correction of the chi-square test on 2 × 2 tables (scipy's
        default, True).
    """

    row: str
    column: str | None = None
    levels: dict[str, list[Level]] | None = None
    correction: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> CrosstabParams:
        if self.column is not None and self.column == self.row:
            raise ValueError(f"row and column are the same column {self.row!r}")
        for name, raw in (self.levels or {}).items():
            if name not in self.columns():
                raise ValueError(f"levels given for {name!r}, which is neither row nor column")
            check_levels(raw, f"levels of {name!r}")
        return self

    def columns(self) -> list[str]:
        """The row column, then the column column when there is one."""
        return [self.row] if self.column is None else [self.row, self.column]

    def given_levels(self) -> dict[str, list[str]]:
        """The canonical levels the request gives, per column."""
        return {k: check_levels(v, k) for k, v in (self.levels or {}).items()}


class CrosstabTask(Task[CrosstabParams]):
    """Pooled contingency table with suppression and the chi-square test."""

    name = "crosstab"
    params_model = CrosstabParams
    uses_secure_sum = True
    max_rounds = 2

    def variables(self, params: CrosstabParams) -> set[str]:
        """The row and column columns."""
        return set(params.columns())

    def start(self, params: CrosstabParams) -> dict[str, Any]:
        """Ask for levels when some column has none, else go straight to the counts."""
        given = params.given_levels()
        unknown = [c for c in params.columns() if c not in given]
        if unknown:
            return {"phase": "levels", "discover": unknown}
        return {"phase": "counts", "levels": _checked_grid(given)}

    def site(
        self, table: SiteTable, params: CrosstabParams, payload: dict[str, Any], ctx: SiteContext
    ) -> SiteOutput:
        """Round 1: the site's common levels (clear). Round 2: counts on the grid (secure)."""
        # Codes are read before anything else so that a column of the wrong type is reported
        # as such; the rows passing ``where`` are counted from them.
        read = {c: read_level_codes(table, c, params.where) for c in params.columns()}
        n = len(read[params.row][1])
        ctx.policy.check_cell(n, "the number of rows passing the filter")
        phase = payload.get("phase")
        if phase == "levels":
            return self._site_levels(read, params, payload, ctx)
        if phase != "counts":
            raise TaskError("the payload names no known phase", rule="protocol")
        grids = payload_levels(payload, params.columns())
        index = np.zeros(n, dtype=np.int64)
        for c, (levels, codes) in read.items():
            index = index * (len(grids[c]) + 2) + grid_codes(levels, codes, grids[c])
        size = math.prod(len(grids[c]) + 2 for c in params.columns())
        counts = np.bincount(index, minlength=size).astype(np.float64)
        return noisy_counts_release(
            "counts", counts, ctx, "secure sum of cell counts; pooled cells suppressed at the hub"
        )

    @staticmethod
    def _site_levels(
        read: dict[str, tuple[list[str], npt.NDArray[np.int64]]],
        params: CrosstabParams,
        payload: dict[str, Any],
        ctx: SiteContext,
    ) -> SiteOutput:
        discover = payload.get("discover")
        if not isinstance(discover, list) or not set(discover) <= set(params.columns()):
            raise TaskError("the payload asks for levels of unknown columns", rule="protocol")
        asked = {c: read[c] for c in discover}
        return levels_release(asked, ctx, f"levels for {', '.join(map(repr, discover))}")

    def hub(
        self, params: CrosstabParams, result: RoundResult, state: dict[str, Any]
    ) -> Next | Result:
        """Union the levels (round 1), or build the table, suppress and test (last round)."""
        min_cell = running_min_cell(result.values, state)
        given = params.given_levels()
        unknown = [c for c in params.columns() if c not in given]
        if unknown and "levels" not in state:
            found = {c: union_levels(result.values, c) for c in unknown}
            state["levels"] = _checked_grid(given | found)
            return Next({"phase": "counts", "levels": state["levels"]})
        return Result(self._table(params, result, state.get("levels", given), min_cell))

    def _table(
        self,
        params: CrosstabParams,
        result: RoundResult,
        grids: dict[str, list[str]],
        min_cell: int,
    ) -> dict[str, Any]:
        labels = [[*grids[c], MISSING, OTHER] for c in params.columns()]
        shape = (len(labels[0]), len(labels[1]) if len(labels) > 1 else 1)
        counts = result.sums["counts"].reshape(shape)
        noise_sd = count_noise_sd(result.values)
        noisy = noise_sd is not None
        if noisy:
            counts = np.maximum(np.rint(counts), 0.0)
        # The table with its margins: the last row holds column totals, the last column row
        # totals; every row and column of it is a line that sums to its last entry.
        full = np.zeros((shape[0] + 1, shape[1] + 1))
        full[:-1, :-1] = counts
        full[:-1, -1] = counts.sum(axis=1)
        full[-1, :] = full[:-1, :].sum(axis=0)
        if params.column is None:
            full = full[:, -1:]  # a one-way table: counts and their total
        hidden = suppression_mask(full, min_cell, table_lines(*full.shape))
        shown = shown_counts(full, hidden)
        out: dict[str, Any] = {"row": params.row, "column": params.column}
        if params.column is None:
            out |= {
                "levels": labels[0],
                "counts": [r[0] for r in shown[:-1]],
                "total": shown[-1][0],
            }
        else:
            out |= {
                "row_levels": labels[0],
                "column_levels": labels[1],
                "counts": [r[:-1] for r in shown[:-1]],
                "row_totals": [r[-1] for r in shown[:-1]],
                "column_totals": shown[-1][:-1],
                "total": shown[-1][-1],
            }
        out |= {
            "chi2": self._chi2(counts, params.correction) if params.column else None,
            "suppressed_below": min_cell,
            "noisy": noisy,
            "noise_sd": noise_sd,
            "sites": result.sites,
            "sites_refused": result.refused,
            "sites_failed": result.failed,
        }
        return out

    @staticmethod
    def _chi2(counts: npt.NDArray[np.float64], correction: bool) -> dict[str, Any] | None:
        # (missing) is the second-to-last row and column; empty rows/columns carry no
        # information and would make expected counts zero.
        keep_r = np.ones(counts.shape[0], dtype=bool)
        keep_c = np.ones(counts.shape[1], dtype=bool)
        keep_r[-2] = keep_c[-2] = False
        table = counts[keep_r][:, keep_c]
        table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
        if table.shape[0] < 2 or table.shape[1] < 2:
            return None
        test = chi2_contingency(table, correction=correction)
        return {
            "statistic": float(test.statistic),
            "dof": int(test.dof),
            "p": float(test.pvalue),
            "correction": bool(correction and test.dof == 1),
            "note": "computed at the hub on the unsuppressed pooled table ((missing) left "
            "out): an aggregate statistic that reveals no single cell",
        }


register(CrosstabTask())

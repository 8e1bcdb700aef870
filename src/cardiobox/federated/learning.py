"""Pieces shared by federated learning tasks (``mlp``, ``gbt``): rows, standardisation, evaluation.

A learning task trains a binary classifier across sites and evaluates it without moving rows:

- **Rows.** Each site reads the complete cases of the outcome (0/1 or boolean) and the
  covariates (numbers or booleans) that pass the request's ``where`` (or, for a model that
  handles missing covariates, every row with an outcome). With ``split_column`` —
  a string column holding ``'train'`` or ``'test'`` in every row — the model is trained on the
  ``'train'`` rows and evaluated on the ``'test'`` rows; without it, both use every row and
  the result says the model was evaluated on its training rows.
- **Standardisation.** Sites send, summed by secure aggregation, n, Σx and Σx² of their
  training rows; the hub turns them into the pooled mean and standard deviation (an
  aggregate, public afterwards) and sends them with the model.
- **Evaluation.** Sites release, summed, aggregates of their test rows' predictions, and in
  clear their own metrics when their test rows, events and non-events all reach their
  minimum cell count: see :mod:`cardiobox.federated.evaluation` (re-exported here:
  :func:`evaluation_release`, :func:`pooled_evaluation`, :func:`histogram_edges`).

Everything here is plain numpy on the site's table; the model itself belongs to the task.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from cardiobox.federated.evaluation import DEFAULT_BOOTSTRAP, MAX_BOOTSTRAP
from cardiobox.federated.evaluation import THRESHOLD as THRESHOLD
from cardiobox.federated.evaluation import evaluation_release as evaluation_release
from cardiobox.federated.evaluation import histogram_edges as histogram_edges
from cardiobox.federated.evaluation import pooled_evaluation as pooled_evaluation
from cardiobox.federated.site_table import ColumnError, SiteTable
from cardiobox.federated.task import Covariates, SiteContext, TaskError, TaskParams
from cardiobox.federated.task import payload_vector as payload_vector

Array = npt.NDArray[np.float64]
Part = Literal["train", "test"]

#: The values a split column may hold.
SPLIT_VALUES: tuple[str, str] = ("train", "test")


def check_outcome_role(outcome: str, covariates: list[str]) -> None:
    """Refuse an outcome that is also listed as a covariate.

    Raises
    ------
    ValueError
        Naming the outcome.
    """
    if outcome in covariates:
        raise ValueError(f"the outcome {outcome!r} cannot also be a covariate")


def _check_split_role(value: str | None, info: ValidationInfo) -> str | None:
    """The split column is neither the outcome nor a covariate (fields declared before it)."""
    if value is not None and (
        value == info.data.get("outcome") or value in info.data.get("covariates", ())
    ):
        raise ValueError(f"the split column {value!r} cannot be the outcome or a covariate")
    return value


#: The ``split_column`` parameter: a non-empty name, neither the outcome nor a covariate (a
#: model using it declares ``outcome`` and ``covariates`` before it).
SplitColumn = Annotated[str | None, Field(min_length=1), AfterValidator(_check_split_role)]


class LearningParams(TaskParams):
    """Parameters every federated binary classifier shares.

    Parameters
    ----------
    outcome : str
        The 0/1 (or boolean) outcome column.
    covariates : list of str
        Number or boolean columns (at least one, no repeats, not the outcome).
    split_column : str, optional
        A string column holding ``'train'`` or ``'test'`` in every row (after ``where``):
        train on the ``'train'`` rows, evaluate on the ``'test'`` rows. Without it both use
        every row (the result says ``evaluated_on: "training rows"``).
    seed : int
        Seed of everything random that is not privacy noise (model initialisation, local
        shuffles), so that runs without noise are reproducible (default 0).
    bins : int
        Bins of the per-class score histograms on [0, 1] behind the pooled AUROC, AUPRC and
        ROC curve (default 200).
    bootstrap : int
        Bootstrap replicates of the evaluation's intervals (default 200; 0 for none).
    """

    outcome: str = Field(min_length=1)
    covariates: Covariates
    split_column: SplitColumn = None
    seed: int = Field(0, ge=0, lt=2**63)
    bins: int = Field(200, ge=2, le=10_000)
    bootstrap: int = Field(DEFAULT_BOOTSTRAP, ge=0, le=MAX_BOOTSTRAP)

    @model_validator(mode="after")
    def _roles(self) -> LearningParams:
        check_outcome_role(self.outcome, self.covariates)
        return self


def learning_variables(params: LearningParams) -> set[str]:
    """The columns a learning task reads: outcome, covariates and the split column."""
    columns = {params.outcome, *params.covariates}
    if params.split_column:
        columns.add(params.split_column)
    return columns


def evaluated_on(params: LearningParams) -> str:
    """What the evaluation ran on, for the result."""
    return evaluated_on_split(params.split_column)


def evaluated_on_split(split_column: str | None) -> str:
    """What an evaluation with this split column (or none) ran on, for the result."""
    if split_column is None:
        return "training rows"
    return f"test rows ({split_column} = 'test')"


# -- rows -----------------------------------------------------------------------------------------
def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def row_filter(where: str | None, split_column: str | None, part: Part) -> str | None:
    """``where`` narrowed to one part of the split (unchanged without a split column).

    The result is in the ``where`` grammar (:mod:`cardiobox.federated.where`), so the site
    parses and binds it like any request filter.
    """
    if split_column is None:
        return where
    condition = f"{_quote(split_column)} = '{part}'"
    return condition if not where else f"({where}) AND {condition}"


def check_split(table: SiteTable, params: LearningParams) -> None:
    """:func:`check_split_column` on the request's split column, when it has one."""
    if params.split_column is not None:
        check_split_column(table, params.split_column, params.where)


def check_split_column(table: SiteTable, column: str, where: str | None) -> None:
    """Check that ``column`` is a string column with a part of the split in every row.

    A part is ``'train'`` or ``'test'``; the rows are those passing ``where``.

    Raises
    ------
    ColumnError
        When the column is missing or not a string column.
    TaskError
        With rule ``bad-split`` when rows passing ``where`` hold another value (or none).
    """
    try:
        table.check([column], "string")
    except ColumnError as exc:
        raise ColumnError(f"split_column {column!r}: {exc.message}", rule=exc.rule) from None
    # Read as strings, not counted: SiteTable.count leaves its DuckDB result unfinished
    # (fetchone), which can make the next query on the connection fail.
    values = table.categories(column, where)
    other = int(np.sum((values != SPLIT_VALUES[0]) & (values != SPLIT_VALUES[1])))
    if other:
        raise TaskError(
            f"split_column {column!r} must be {' or '.join(repr(v) for v in SPLIT_VALUES)} "
            f"in every row; {other} row(s) at this site hold another value or none",
            rule="bad-split",
        )


def check_number_columns(table: SiteTable, outcome: str, covariates: list[str]) -> None:
    """Check that the outcome and the covariates are number (or boolean) columns.

    Raises
    ------
    ColumnError
        Naming the role (``outcome`` or ``covariate``) and the column.
    """
    roles = [("outcome", outcome)] + [("covariate", c) for c in covariates]
    for role, column in roles:
        try:
            table.check([column], "number")
        except ColumnError as exc:
            raise ColumnError(f"{role} {column!r}: {exc.message}", rule=exc.rule) from None


def check_binary_outcome(y: Array, outcome: str) -> None:
    """Refuse an outcome holding a value other than 0 and 1.

    Raises
    ------
    TaskError
        With rule ``outcome-not-binary``, naming the outcome column.
    """
    if not np.all((y == 0) | (y == 1)):
        raise TaskError(
            f"the outcome {outcome!r} must be 0/1 or boolean; this site's rows hold other values",
            rule="outcome-not-binary",
        )


def binary_rows(
    table: SiteTable, params: LearningParams, part: Part, complete: bool = True
) -> tuple[Array, Array]:
    """The rows of one part as (covariate matrix, 0/1 outcome vector).

    Parameters
    ----------
    table : SiteTable
        The site's table.
    params : LearningParams
        Outcome, covariates, ``where`` and split column.
    part : {"train", "test"}
        Which rows; without a split column both parts are every row.
    complete : bool
        Complete cases only (default); when false, every row with an outcome, covariates
        missing as NaN.

    Raises
    ------
    ColumnError
        Naming the role and the column when a column is not a number or boolean.
    TaskError
        With rule ``outcome-not-binary`` when the outcome holds a value other than 0 and 1.
    """
    check_number_columns(table, params.outcome, params.covariates)
    data = table.numeric(
        [params.outcome, *params.covariates],
        row_filter(params.where, params.split_column, part),
        complete,
    )
    if not complete:
        data = data[~np.isnan(data[:, 0])]
    y = np.ascontiguousarray(data[:, 0])
    check_binary_outcome(y, params.outcome)
    return np.ascontiguousarray(data[:, 1:]), y


#: Row sets a site keeps per table (one per request shape and part), oldest dropped first.
_CACHE_SIZE = 8
_cache: weakref.WeakKeyDictionary[SiteTable, dict[tuple[str, str, bool], tuple[Array, Array]]]
_cache = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def site_rows(
    table: SiteTable, params: LearningParams, part: Part, complete: bool = True
) -> tuple[Array, Array]:
    """:func:`check_split` then :func:`binary_rows`, cached per table and request shape.

    A learning task asks for the same rows in every round; reading them once per run (not
    once per round) keeps rounds fast. The arrays are read-only.
    """
    key = (
        params.model_dump_json(include={"outcome", "covariates", "where", "split_column"}),
        part,
        complete,
    )
    with _cache_lock:
        hit = _cache.get(table, {}).get(key)
    if hit is not None:
        return hit
    check_split(table, params)
    x, y = binary_rows(table, params, part, complete)
    x.flags.writeable = False
    y.flags.writeable = False
    with _cache_lock:
        entries = _cache.setdefault(table, {})
        if len(entries) >= _CACHE_SIZE:
            del entries[next(iter(entries))]
        entries[key] = (x, y)
    return x, y


def check_training_cells(y: Array, ctx: SiteContext, outcome: str) -> None:
    """Refuse (:class:`~cardiobox.privacy.policy.PolicyRefusal`) small training sets.

    The rows, the events and the non-events must each reach the site's minimum cell count.
    """
    events = int(y.sum())
    ctx.policy.check_cell(len(y), "the number of complete training rows")
    ctx.policy.check_cell(events, f"the number of training events ({outcome} = 1)")
    ctx.policy.check_cell(len(y) - events, f"the number of training non-events ({outcome} = 0)")


# -- standardisation ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Standardisation:
    """Pooled mean and standard deviation of the covariates over the training rows.

    Parameters
    ----------
    n : int
        Pooled training rows.
    mean, sd : numpy.ndarray
        Per covariate; ``sd`` with n − 1 in the denominator.
    """

    n: int
    mean: Array
    sd: Array

    def apply(self, x: Array) -> Array:
        """The standardised matrix (x − mean) / sd."""
        out: Array = (x - self.mean) / self.sd
        return out

    def to_payload(self) -> dict[str, list[float]]:
        """The JSON form sent to the sites."""
        return {"mean": self.mean.tolist(), "sd": self.sd.tolist()}

    @classmethod
    def from_payload(cls, payload: dict[str, Any], p: int) -> Standardisation:
        """Read (and check) the mean and sd of ``p`` covariates from a payload."""
        mean = payload_vector(payload, "mean", p)
        sd = payload_vector(payload, "sd", p)
        if not np.all(sd > 0):
            raise TaskError("the payload's sd must be positive", rule="protocol")
        return cls(0, mean, sd)


def standardisation_sums(x: Array) -> dict[str, Array]:
    """A site's contribution to the pooled standardisation: n, Σx and Σx² (to sum securely)."""
    return {
        "std_n": np.array([float(len(x))]),
        "std_sum": x.sum(axis=0),
        "std_sumsq": (x * x).sum(axis=0),
    }


def pooled_standardisation(sums: dict[str, Array], covariates: list[str]) -> Standardisation:
    """Pooled mean and sd from the summed :func:`standardisation_sums`.

    Raises
    ------
    TaskError
        With rule ``constant-covariate`` naming the covariates that do not vary in the pooled
        training rows (they cannot be standardised, and carry no information).
    """
    n = float(sums["std_n"][0])
    if n < 2:
        raise TaskError("fewer than 2 pooled training rows", rule="too-few-rows")
    mean = sums["std_sum"] / n
    # The sums are exact to ~1e-12 (secure aggregation); cancellation is harmless for
    # covariates whose spread is not ~1e-6 of their magnitude.
    var = np.maximum(sums["std_sumsq"] - n * mean * mean, 0.0) / (n - 1)
    sd = np.sqrt(var)
    constant = [
        c for c, s, m in zip(covariates, sd, mean, strict=True) if not s > 1e-9 * (1 + abs(m))
    ]
    if constant:
        raise TaskError(
            f"covariate(s) {', '.join(constant)} do not vary in the pooled training rows",
            rule="constant-covariate",
        )
    return Standardisation(round(n), mean, sd)

"""The task contract: a site half that computes and a hub half that aggregates.

A task runs in rounds. The hub half starts with a payload for round 1; each site's half
turns (its table, the parameters, the payload) into a :class:`SiteOutput` — values released
in clear and vectors to be summed over the sites by secure aggregation; the hub half turns a
:class:`RoundResult` (the per-site values, the sums) into :class:`Next` (another round) or
:class:`Result`. Nothing else crosses between the halves, and only JSON-able values and float
vectors do.

Every task is registered in :data:`TASKS` by name; the contract test in
``tests/federated/test_task_contract.py`` runs against each one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from itertools import repeat
from typing import Annotated, Any, ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from cardiobox.errors import CardioboxError
from cardiobox.federated.site_table import SiteTable
from cardiobox.privacy.policy import SitePolicy


class TaskError(CardioboxError):
    """A request a task cannot run (bad parameters, unknown columns, no rows)."""


class TaskParams(BaseModel):
    """Parameters common to every task.

    Parameters
    ----------
    where : str, optional
        A boolean filter over the site table's columns in SQL syntax (comparisons, AND, OR,
        NOT, IN, BETWEEN, IS NULL); parsed and checked at each site, never run as raw SQL.
    rho : float, optional
        Differential-privacy budget (zCDP) the request asks each site to spend on noise; the
        site's policy default when absent.
    cohort, features : str, optional
        For sites that are stores: the cohort definition and feature set (built-in names or
        paths at the site) that make the site's analysis table.
    """

    model_config = ConfigDict(extra="forbid")

    where: str | None = None
    rho: float | None = None
    cohort: str | None = None
    features: str | None = None


P = TypeVar("P", bound=TaskParams)


def check_covariates(value: list[str]) -> list[str]:
    """Check a list of covariate names: at least one, none empty, no repeats.

    Raises
    ------
    ValueError
        Naming the rule broken (and the repeated names).
    """
    if not value:
        raise ValueError("at least one covariate is needed")
    if any(not c for c in value):
        raise ValueError("covariate names cannot be empty")
    repeated = sorted({c for c in value if value.count(c) > 1})
    if repeated:
        raise ValueError(f"covariates must be unique; repeated: {', '.join(repeated)}")
    return value


#: The ``covariates`` parameter of a model: column names checked by :func:`check_covariates`.
Covariates = Annotated[list[str], AfterValidator(check_covariates)]


def refuse_dp(task: str, rho: float | None) -> None:
    """Refuse a request (or a site policy) asking ``task`` for noise it cannot add yet.

    Raises
    ------
    TaskError
        With rule ``dp-unsupported`` when ``rho`` is above 0.
    """
    if rho is not None and rho > 0:
        raise TaskError(
            f"{task} does not add differential-privacy noise yet: ask with rho=0 (sites whose "
            "policy sets a default_rho above 0 refuse it)",
            rule="dp-unsupported",
        )


#: The JSON numbers (``bool`` is refused apart: it is an ``int`` too).
_NUMBER = (int, float)


def payload_vector(payload: dict[str, Any], key: str, size: int) -> npt.NDArray[np.float64]:
    """A list of ``size`` finite numbers from the hub's payload, checked.

    A site never trusts the shape of a request.

    Raises
    ------
    TaskError
        With rule ``protocol`` when the entry is missing, of another length or not finite.
    """
    raw = payload.get(key)
    if (
        not isinstance(raw, list)
        or len(raw) != size
        or not all(map(isinstance, raw, repeat(_NUMBER)))  # map: checked in C
        or any(map(isinstance, raw, repeat(bool)))
    ):
        raise TaskError(f"the payload's {key} must be a list of {size} numbers", rule="protocol")
    vector = np.array(raw, dtype=np.float64)
    if not np.isfinite(vector).all():
        raise TaskError(f"the payload's {key} holds a value that is not finite", rule="protocol")
    return vector


@dataclass
class SiteContext:
    """What a site half may use besides its table."""

    site: str
    policy: SitePolicy
    rho: float
    rng: np.random.Generator


@dataclass
class SiteOutput:
    """One site's release for one round.

    Parameters
    ----------
    values : dict
        Released in clear: JSON-able numbers, strings, lists, ``None``.
    secure : dict of str to numpy.ndarray
        Float vectors the hub sees only summed over the round's sites.
    rho : float
        The zCDP cost of the noise in this release (0 for none).
    mechanism : str
        How the release is protected, for the audit log.
    """

    values: dict[str, Any] = field(default_factory=dict)
    secure: dict[str, np.ndarray] = field(default_factory=dict)
    rho: float = 0.0
    mechanism: str = "aggregate with small-cell suppression"


@dataclass
class RoundResult:
    """What the hub half sees of one round."""

    round: int
    sites: list[str]
    values: dict[str, dict[str, Any]]
    sums: dict[str, np.ndarray]
    refused: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class Next:
    """Run another round with this payload."""

    payload: dict[str, Any]


@dataclass
class Result:
    """The task's final result (JSON-able)."""

    value: dict[str, Any]


class Task(ABC, Generic[P]):
    """Base class of federated tasks.

    Subclasses set :attr:`name`, :attr:`params_model` and :attr:`uses_secure_sum`, and
    implement :meth:`variables`, :meth:`site` and :meth:`hub` (and :meth:`start` when the
    first round needs a payload).
    """

    name: ClassVar[str]
    params_model: ClassVar[type[TaskParams]]
    #: Whether the task sums vectors over sites (the site's ``min_sites`` applies).
    uses_secure_sum: ClassVar[bool] = True
    #: The most rounds a run may take.
    max_rounds: ClassVar[int] = 100
    #: Whether a request's ``rho`` is the site's budget for the whole run, which the task
    #: spends in shares over its releases (``gbt``), rather than each release's.
    rho_per_run: ClassVar[bool] = False

    def parse(self, raw: dict[str, Any]) -> P:
        """Validate raw parameters (at the hub before sending, at the site on receipt).

        Raises
        ------
        TaskError
            Naming the parameter and the problem.
        """
        try:
            return self.params_model.model_validate(raw)  # type: ignore[return-value]
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "params"
            raise TaskError(
                f"{self.name}: parameter {where}: {first['msg'].removeprefix('Value error, ')}",
                rule="bad-params",
            ) from exc

    @abstractmethod
    def variables(self, params: P) -> set[str]:
        """Every column the task reads besides those in ``where``."""

    def start(self, params: P) -> dict[str, Any]:
        """The payload of round 1."""
        return {}

    @abstractmethod
    def site(
        self, table: SiteTable, params: P, payload: dict[str, Any], ctx: SiteContext
    ) -> SiteOutput:
        """The site half: compute this round's release."""

    @abstractmethod
    def hub(self, params: P, result: RoundResult, state: dict[str, Any]) -> Next | Result:
        """The hub half: aggregate a round (``state`` persists across rounds)."""


TASKS: dict[str, Task[Any]] = {}


def register(task: Task[Any]) -> Task[Any]:
    """Add a task to :data:`TASKS`."""
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task[Any]:
    """The registered task called ``name``.

    Raises
    ------
    TaskError
        For an unknown name, listing the known ones.
    """
    from cardiobox.federated import tasks as _tasks  # noqa: F401  (registers the built-ins)

    try:
        return TASKS[name]
    except KeyError:
        raise TaskError(
            f"unknown task {name!r} (tasks: {', '.join(sorted(TASKS))})", rule="unknown-task"
        ) from None

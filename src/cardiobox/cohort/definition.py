"""Cohort definitions and feature sets: YAML files validated by pydantic models.

A time offset is written as a signed whole number and a calendar unit, ``"-6 months"``,
``"30 days"``, ``"1 year"`` (also ``d``, ``w``, ``mo``, ``y``); it is applied to the index
time with calendar arithmetic (``index + INTERVAL 6 MONTH``), so "6 months before 31 August"
is 29 February or 28 February as the calendar says.

A window is relative to the index: ``{start: "-6 months", end: "0 days"}``, both ends
included unless ``closed`` says otherwise (``both``, ``left``, ``right``, ``neither``); a
missing end is open. Three named windows: ``before`` (everything strictly before the index),
``ever`` (every record, dated or not) and ``stay`` (the index admission, from its start to its
end, both included).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from cardiobox import yamlio
from cardiobox.errors import InputError, Location

_OFFSET = re.compile(r"^\s*([+-]?\d+)\s*(days?|d|weeks?|w|months?|mo|years?|y)\s*$", re.IGNORECASE)
_UNITS = {"d": "DAY", "w": "WEEK", "mo": "MONTH", "y": "YEAR"}


def parse_offset(text: str | int) -> tuple[int, str]:
    """``"-6 months"`` → ``(-6, "MONTH")``; a bare integer is days.

    Raises
    ------
    ValueError
        When the text is not a signed whole number and a unit.
    """
    if isinstance(text, int):
        return text, "DAY"
    m = _OFFSET.match(text)
    if not m:
        raise ValueError(
            f"{text!r} is not a time offset; write a whole number and a unit, "
            "for example '-6 months', '30 days', '1 year'"
        )
    unit = m.group(2).lower()
    key = "mo" if unit.startswith("mo") else unit[0]
    n = int(m.group(1))
    return (n * 7, "DAY") if key == "w" else (n, _UNITS[key])


def offset_sql(time_sql: str, text: str | int) -> str:
    """SQL adding an offset to a timestamp expression."""
    n, unit = parse_offset(text)
    return f"({time_sql} + INTERVAL ({n}) {unit})"


def offset_days(text: str | int) -> float:
    """Approximate length of an offset in days (for ordering checks only)."""
    n, unit = parse_offset(text)
    return n * {"DAY": 1.0, "MONTH": 30.4375, "YEAR": 365.25}[unit]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _iso(v: Any) -> Any:
    """YAML reads an unquoted 2020-01-31 as a date: take it as its text."""
    return v.isoformat() if isinstance(v, date) else v


Offset = Annotated[str | int, Field(description="time offset, e.g. '-6 months'")]


class Window(_Strict):
    """A time window relative to the index."""

    start: Offset | None = None
    end: Offset | None = None
    closed: Literal["both", "left", "right", "neither"] = "both"

    @field_validator("start", "end")
    @classmethod
    def _offset(cls, v: str | int | None) -> str | int | None:
        if v is not None:
            parse_offset(v)
        return v

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if (
            self.start is not None
            and self.end is not None
            and offset_days(self.start) > offset_days(self.end)
        ):
            raise ValueError(
                f"the window starts ({self.start}) after it ends ({self.end}); it can hold nothing"
            )
        return self


WindowSpec = Window | Literal["before", "ever", "stay"]


class ValueRange(_Strict):
    """Bounds on a numeric value (``min``/``max`` inclusive, ``gt``/``lt`` exclusive)."""

    min: float | None = None
    max: float | None = None
    gt: float | None = None
    lt: float | None = None

    @model_validator(mode="after")
    def _possible(self) -> ValueRange:
        lows = [x for x in (self.min, self.gt) if x is not None]
        highs = [x for x in (self.max, self.lt) if x is not None]
        # gt 40 with lt 40 (or max 40) holds nothing either
        if (
            lows
            and highs
            and (
                max(lows) > min(highs)
                or (max(lows) == min(highs) and max(lows) in (self.gt, self.lt))
            )
        ):
            raise ValueError(f"the value range {self.model_dump(exclude_none=True)} is empty")
        return self


class Criterion(_Strict):
    """One inclusion or exclusion criterion.

    Exactly one of ``age``, ``sex`` and ``variable``. For a variable: at least ``count``
    records (default 1) in ``window`` (default ``ever``), optionally with a value in
    ``value`` or a code in ``codes``.
    """

    name: str | None = None
    age: ValueRange | None = None
    sex: list[Literal["male", "female", "other", "unknown"]] | None = None
    variable: str | None = None
    value: ValueRange | None = None
    codes: list[str] | None = None
    window: WindowSpec = "ever"
    count: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Criterion:
        kinds = [k for k in ("age", "sex", "variable") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "a criterion needs exactly one of 'age', 'sex' or 'variable'"
                + (f" (found {', '.join(kinds)})" if kinds else "")
            )
        if self.variable is None and (self.value or self.codes):
            raise ValueError("'value' and 'codes' apply to a 'variable' criterion")
        return self

    def label(self) -> str:
        """A readable name for the attrition table."""
        if self.name:
            return self.name
        if self.age is not None:
            return f"age {self.age.model_dump(exclude_none=True)}"
        if self.sex is not None:
            return f"sex in {self.sex}"
        text = f"{self.variable}"
        if self.value is not None:
            text += f" value {self.value.model_dump(exclude_none=True)}"
        if self.codes:
            text += f" code in {self.codes}"
        return text + f" ({_window_text(self.window)})"


def _window_text(w: WindowSpec) -> str:
    if isinstance(w, str):
        return {"before": "before the index", "ever": "any time", "stay": "during the stay"}[w]
    return f"{w.start or '…'} to {w.end or '…'}, closed {w.closed}"


class Entry(_Strict):
    """The index events.

    ``event: encounter`` — encounters (optionally of ``classes``, with a ``diagnosis`` of a
    variable, primary if ``primary``), indexed at their start; ``event: variable`` — each
    record of ``variable``, indexed at its time; ``event: patient`` — one row per patient,
    without an index time (for undated data such as the UCI files).
    """

    event: Literal["encounter", "variable", "patient"]
    classes: list[str] | None = None
    diagnosis: str | None = None
    primary: bool = False
    variable: str | None = None
    start: str | None = Field(default=None, description="earliest index date, YYYY-MM-DD")
    end: str | None = Field(default=None, description="latest index date, YYYY-MM-DD")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _dates(cls, v: Any) -> Any:
        return _iso(v)

    @model_validator(mode="after")
    def _consistent(self) -> Entry:
        if self.event == "variable" and not self.variable:
            raise ValueError("entry event 'variable' needs 'variable'")
        if self.event != "encounter" and (self.classes or self.diagnosis):
            raise ValueError("'classes' and 'diagnosis' apply to entry event 'encounter'")
        for d in (self.start, self.end):
            if d is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", d):
                raise ValueError(f"{d!r} is not a date (YYYY-MM-DD)")
        return self


class ObservationWindow(_Strict):
    """Records required around the index.

    The patient's records must span from ``before`` the index to ``after`` it (a death ends
    the span early without excluding the patient).
    """

    before: Offset = "0 days"
    after: Offset = "0 days"

    @field_validator("before", "after")
    @classmethod
    def _offset(cls, v: str | int) -> str | int:
        n, _unit = parse_offset(v)
        if n < 0:
            raise ValueError(f"{v!r}: before and after are lengths (write '1 year', not '-1 year')")
        return v


class CohortDefinition(_Strict):
    """A cohort: entry events, criteria, observation window and selection."""

    cardiobox_cohort: Literal[1]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    entry: Entry
    inclusion: list[Criterion] = Field(default_factory=list)
    exclusion: list[Criterion] = Field(default_factory=list)
    observation_window: ObservationWindow | None = None
    select: Literal["first", "all"] = "first"


Aggregation = Literal[
    "first",
    "last",
    "min",
    "max",
    "mean",
    "sd",
    "count",
    "any",
    "days_since_first",
    "days_since_last",
]


class Feature(_Strict):
    """One column: an aggregation of a variable's records in a window.

    ``field`` chooses what is aggregated: ``value`` (numbers; answers' ordinals), ``code``
    (the coded value or the matched code). ``map`` turns codes into output values (keys:
    ``code`` or ``system|code``); ``unit`` converts the canonical unit to another;
    ``round`` rounds numbers.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    variable: str
    agg: Aggregation = "last"
    window: WindowSpec = "ever"
    field: Literal["value", "code"] | None = None
    map: dict[str, float | int | str] | None = None
    unit: str | None = None
    round: int | None = None
    description: str | None = None


class Pivot(_Strict):
    """One flag (or count) column per variable of a list or a category."""

    pivot: list[str] | Literal["phenotype", "medication_group", "procedure", "symptom"]
    agg: Literal["any", "count"] = "any"
    window: WindowSpec = "ever"
    prefix: str = ""
    suffix: str = ""


class Demographic(_Strict):
    """Age at the index (whole years), sex, or the index time itself."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    demographic: Literal["age", "sex", "index_time", "length_of_stay"]
    map: dict[str, float | int | str] | None = Field(
        default=None, description="for sex: output values (e.g. {male: 1, female: 0})"
    )
    description: str | None = None


class Derived(_Strict):
    """A formula over other columns.

    ``egfr_ckd_epi_2021`` (creatinine µmol/L, age, sex), ``bmi`` (weight kg, height cm) or
    ``maggic`` (the MAGGIC heart-failure risk score).
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    derived: Literal["egfr_ckd_epi_2021", "bmi", "maggic"]
    inputs: dict[str, str]
    description: str | None = None


class Outcome(_Strict):
    """An event within a horizon after the index (or the end of the stay with ``from: stay_end``).

    ``event``: ``death``, ``cv_death`` (death with an I00–I99 underlying cause), or
    ``readmission`` (a later inpatient admission, with a primary ``diagnosis`` of a variable
    if given, e.g. ``heart_failure``). Columns: ``<name>`` (1 event, 0 none within the
    horizon while followed, NULL if follow-up ended earlier without the event), and
    ``<name>_days`` (days to the event or to censoring, at most the horizon).
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    outcome: Literal["death", "cv_death", "readmission"]
    horizon: Offset
    diagnosis: str | None = None
    origin: Literal["index", "stay_end"] = "index"
    follow_up_end: str | None = Field(
        default=None, description="the date the site's follow-up ends (YYYY-MM-DD)"
    )
    description: str | None = None

    @field_validator("horizon")
    @classmethod
    def _offset(cls, v: str | int) -> str | int:
        parse_offset(v)
        return v

    @field_validator("follow_up_end", mode="before")
    @classmethod
    def _date(cls, v: Any) -> Any:
        v = _iso(v)
        if v is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            raise ValueError(f"{v!r} is not a date (YYYY-MM-DD)")
        return v


def _item_kind(raw: Any) -> str:
    if isinstance(raw, dict):
        for key in ("pivot", "demographic", "derived", "outcome"):
            if key in raw:
                return key
        return "feature"
    return type(raw).__name__.lower()


# The key that is present says which kind of column an item is (clear errors, no guessing).
Item = Annotated[
    Annotated[Feature, Tag("feature")]
    | Annotated[Pivot, Tag("pivot")]
    | Annotated[Demographic, Tag("demographic")]
    | Annotated[Derived, Tag("derived")]
    | Annotated[Outcome, Tag("outcome")],
    Discriminator(_item_kind),
]


class FeatureSet(_Strict):
    """A feature set: columns computed for every row of a cohort."""

    cardiobox_features: Literal[1]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    features: list[Item] = Field(min_length=1)


_TAGS = {"feature", "pivot", "demographic", "derived", "outcome"}


def _locate(raw: Any, loc: tuple[Any, ...], key_error: bool = False) -> str:
    """The path of an error in the file's terms.

    Pydantic's locations also name the kind of a feature-set item (``features.0.outcome...``)
    and the union member tried (``function-after[_ordered(), Window]``); only the keys and
    indexes of the data are kept (and the last part, for a missing or extra key).
    """
    parts: list[str] = []
    node = raw
    for k, p in enumerate(loc):
        if k == 2 and loc[0] == "features" and p in _TAGS:
            continue  # the item's kind
        if (isinstance(node, list) and isinstance(p, int) and 0 <= p < len(node)) or (
            isinstance(node, dict) and p in node
        ):
            node = node[p]
        elif not (key_error and k == len(loc) - 1):
            continue  # a union member's name
        parts.append(str(p))
    return ".".join(parts)


def load_definition(path: str | Path) -> CohortDefinition | FeatureSet:
    """Load a cohort definition or a feature set from YAML (or JSON).

    Raises
    ------
    InputError
        Naming the file and the field for a syntax or schema error.
    """
    p = Path(path)
    raw = yamlio.load_file(p, "definition-syntax")
    if not isinstance(raw, dict) or not ("cardiobox_cohort" in raw or "cardiobox_features" in raw):
        raise InputError(
            "expected a cohort definition (cardiobox_cohort: 1) or a feature set "
            "(cardiobox_features: 1)",
            rule="definition-schema",
            location=Location(file=str(p)),
        )
    model: type[CohortDefinition] | type[FeatureSet] = (
        CohortDefinition if "cardiobox_cohort" in raw else FeatureSet
    )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _locate(raw, first["loc"], first["type"] in ("missing", "extra_forbidden"))
        raise InputError(
            f"{where}: {first['msg'].removeprefix('Value error, ')}"
            + (f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""),
            rule="definition-schema",
            location=Location(file=str(p)),
        ) from exc

"""Domains from public metadata: the data dictionary, feature sets and built-in templates.

Nothing here reads data. A quantity's bounds are the plausible range the data dictionary
gives it (in its canonical unit); heavy-tailed laboratory values (NT-proBNP, troponins,
CRP, ...) get log-like edges (1-2-5 steps, or the clinical decision limits of natriuretic
peptides) instead of equal-width bins, which would put almost every patient in the first bin.
Coded answers become categories, flags become booleans.

Built-in templates (YAML files under ``cardiobox/synth/templates/``) describe public data sets:
``uci_heart_disease`` (the 14 attributes of the UCI Heart Disease processed files) and
``heart_failure_records`` (the heart-failure clinical records CSV); :func:`template` loads
one by name.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

from cardiobox.cdm.dictionary import Category, DataDictionary, Variable, load_dictionary
from cardiobox.cohort.compile import compile_features
from cardiobox.cohort.definition import (
    Demographic,
    Derived,
    Feature,
    FeatureSet,
    Outcome,
    Pivot,
    WindowSpec,
    load_definition,
    offset_days,
    parse_offset,
)
from cardiobox.cohort.library import resolve
from cardiobox.errors import CardioboxError
from cardiobox.synth.domain import DEFAULT_BINS, Domain, DomainError

#: Clinical decision limits. NT-proBNP (pg/mL): 125 (chronic HF rule-out), 300 (acute
#: rule-out), 450 / 900 / 1800 (age-stratified acute rule-in); BNP (pg/mL): 35 (chronic) and 100
#: (acute) rule-out; creatinine (umol/L): every 10 across the reference interval, then the
#: MAGGIC score's steps (90, 110, 130, 150, 170, 210, 250) and kidney failure.
CLINICAL_EDGES: dict[str, list[float]] = {
    "nt_probnp": [0, 50, 125, 300, 450, 900, 1800, 3000, 5000, 10000, 20000, 35000, 100000],
    "bnp": [0, 35, 100, 200, 400, 800, 1500, 3000, 5000, 10000, 50000],
    "creatinine": [
        5,
        40,
        50,
        60,
        70,
        80,
        90,
        100,
        110,
        130,
        150,
        170,
        210,
        250,
        350,
        500,
        1000,
        4000,
    ],
}

#: Heavy-tailed laboratory values: the first positive edge (in the canonical unit, about the
#: low end of the reference interval); edges follow in 1-2-5 steps up to the plausible maximum.
LOG_START: dict[str, float] = {
    "ferritin": 5,
    "crp": 0.5,
    "hs_crp": 0.5,
    "hs_troponin_i": 1,
    "troponin_i": 1,
    "hs_troponin_t": 1,
    "troponin_t": 1,
    "triglycerides": 0.2,
    "urine_albumin": 1,
    "albumin_creatinine_ratio": 0.2,
    "protein_creatinine_ratio": 1,
    "ast": 5,
    "alt": 5,
    "ggt": 5,
    "alp": 10,
    "bilirubin": 2,
    "creatine_kinase": 10,
    "urea": 1,
    "urea_nitrogen": 1,
}

#: Edges of counts of records (integers; the last bin is 100..1000).
COUNT_EDGES = [0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100, 1000]
#: Breakpoints (days) of times between records, mirrored for negative times.
DAY_STEPS = [0, 1, 7, 30, 90, 180, 365, 730, 1825, 3650, 7300, 36500]
#: Length of stay (days, fractional).
STAY_EDGES = [0, 1, 2, 3, 4, 5, 7, 10, 14, 21, 30, 60, 90, 180, 365, 3650]
#: Body-mass index (kg/m2) at the WHO categories, within the dictionary's [5, 200].
BMI_EDGES = [5, 16, 18.5, 21, 23, 25, 27.5, 30, 32.5, 35, 40, 50, 200]
#: eGFR (mL/min/1.73 m2) at the KDIGO stages, within the dictionary's [0, 250].
EGFR_EDGES = [0, 15, 30, 45, 60, 75, 90, 105, 120, 150, 250]
#: Age at the index of an adult cohort (whole years).
AGE_BOUNDS = (18, 110)
#: The MAGGIC score's largest possible total (points of every factor at its maximum).
MAGGIC_MAX = 62


def _templates_dir() -> Path:
    return Path(str(resources.files("cardiobox.synth") / "templates"))


def template_names() -> list[str]:
    """Names of the built-in domain templates."""
    return sorted(p.stem for p in _templates_dir().glob("*.yaml"))


def template(name: str) -> Domain:
    """A built-in domain template by name (``uci_heart_disease``, ``heart_failure_records``).

    Raises
    ------
    DomainError
        When there is no template of that name.
    """
    path = _templates_dir() / f"{name.removesuffix('.yaml').replace('-', '_')}.yaml"
    if not path.exists():
        raise DomainError(
            f"no built-in domain template {name!r} (built-in: {', '.join(template_names())})",
            rule="unknown-template",
        )
    return Domain.load(path)


# -- edges ----------------------------------------------------------------------------------


def _nice(x: float) -> float:
    """``x`` rounded to 2 significant digits (edges printed as people write them)."""
    if x == 0:
        return 0.0
    return float(f"{x:.2g}")


def log_edges(low: float, high: float, start: float) -> list[float]:
    """Edges ``low, start``, the 1-2-5 series above ``start`` (10, 20, 50, 100, …), ``high``.

    Parameters
    ----------
    low, high : float
        The plausible range.
    start : float
        The first edge above ``low`` (about the low end of the reference interval).
    """
    edges = [float(low)]
    if low < start < high:
        edges.append(float(start))
    exp = math.floor(math.log10(max(start, low, 1e-9)))
    while True:
        for mant in (1, 2, 5):
            x = _nice(mant * 10.0**exp)
            if x >= high:
                return [*edges, float(high)]
            if x > edges[-1]:
                edges.append(x)
        exp += 1


def day_edges(low: float, high: float) -> list[int | float]:
    """Edges of days in ``[low, high]`` at :data:`DAY_STEPS` (mirrored below zero)."""
    steps = sorted({-s for s in DAY_STEPS} | set(DAY_STEPS))
    return [_whole(x) for x in (low, *(s for s in steps if low < s < high), high)]


def _numeric(lo: float, hi: float, edges: list[float] | None, bins: int) -> dict[str, Any]:
    if edges is not None:
        return {"kind": "numeric", "edges": edges}
    return {"kind": "numeric", "bounds": [lo, hi], "bins": bins}


def _whole(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def quantity_column(v: Variable, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """The domain fields of a quantity variable: its plausible range, binned.

    Raises
    ------
    DomainError
        When the dictionary gives the variable no plausible range.
    """
    if v.range is None:
        raise DomainError(
            f"variable {v.id!r} has no plausible range in the data dictionary; give its "
            "column bounds by hand",
            rule="no-public-bounds",
        )
    lo, hi = (_whole(x) for x in v.range)
    if v.id in CLINICAL_EDGES:
        inner = [e for e in CLINICAL_EDGES[v.id] if lo < e < hi]
        return _numeric(lo, hi, [lo, *inner, hi], bins)
    if v.id in LOG_START:
        return _numeric(lo, hi, [_whole(e) for e in log_edges(lo, hi, LOG_START[v.id])], bins)
    return _numeric(lo, hi, None, bins)


# -- the data dictionary ------------------------------------------------------------------


def _answer_categories(v: Variable) -> tuple[list[Any], bool]:
    """(categories, by value) of a coded variable: the answers' values, else their codes."""
    if not v.answers:
        raise DomainError(
            f"variable {v.id!r} is coded without a list of answers in the data dictionary; "
            "give its column categories by hand",
            rule="no-public-bounds",
        )
    values = list(dict.fromkeys(a.value for a in v.answers if a.value is not None))
    if len(values) and all(a.value is not None for a in v.answers):
        numbers = [x for x in values if isinstance(x, int | float)]
        if len(numbers) == len(values):
            return sorted(numbers), True  # ordinals in order
        return values, True
    return list(dict.fromkeys(a.code for a in v.answers)), False


def variable_column(v: Variable, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """The domain of a column holding the values of one data-model variable.

    Raises
    ------
    DomainError
        For variables without public bounds or categories (dates, free text, codes without
        answers, quantities without a plausible range).
    """
    meta: dict[str, Any] = {"name": v.id, "variable": v.id, "description": v.name()}
    if v.unit:
        meta["unit"] = v.unit
    vt = v.value_type
    if vt == "quantity" or (vt == "decimal" and v.range is not None):
        return {**meta, **quantity_column(v, bins)}
    if vt == "integer" and v.range is not None:
        lo, hi = (int(x) for x in v.range)
        return {**meta, "kind": "integer", "bounds": [lo, hi], "bins": bins}
    if vt in ("boolean", "presence"):
        return {**meta, "kind": "boolean"}
    if vt == "code":
        cats, _ = _answer_categories(v)
        return {**meta, "kind": "categorical", "categories": cats}
    raise DomainError(
        f"variable {v.id!r} ({vt}) has no public domain to build from the data dictionary "
        "(dates need an index or origin, text has no categories); give it by hand",
        rule="no-public-bounds",
    )


def domain_for_variables(
    variable_ids: list[str],
    *,
    bins: int = DEFAULT_BINS,
    name: str = "data_model_variables",
    dictionary: DataDictionary | None = None,
) -> Domain:
    """A domain whose columns are data-model variables, named by their ids.

    Parameters
    ----------
    variable_ids : list of str
        Data-dictionary variable ids.
    bins : int
        Equal-width bins of quantities without heavy tails (default 20).
    name : str
        Name of the domain.
    dictionary : DataDictionary, optional
        Defaults to the packaged data dictionary.

    Raises
    ------
    DomainError
        For an unknown variable, or one without public bounds or categories.
    """
    d = dictionary or load_dictionary()
    columns = []
    for vid in variable_ids:
        if vid not in d:
            raise DomainError(f"{vid!r} is not a variable of the data model", rule="domain-column")
        columns.append(variable_column(d[vid], bins))
    return Domain.model_validate(
        {
            "name": name,
            "description": "data-model variables, bounds from the data dictionary",
            "columns": columns,
        }
    )


# -- feature sets -------------------------------------------------------------------------


def _window_days(w: WindowSpec) -> tuple[float, float]:
    """Bounds of ``index - record time`` (days) for records in a window."""
    if w == "before":
        return 0.0, float(DAY_STEPS[-1])
    if w == "stay":
        return -3650.0, 1.0  # a stay lasts at most the dictionary's 3650 days
    if w == "ever":
        return -float(DAY_STEPS[-1]), float(DAY_STEPS[-1])
    assert not isinstance(w, str)
    lo = -offset_days(w.end) if w.end is not None else -float(DAY_STEPS[-1])
    hi = -offset_days(w.start) if w.start is not None else float(DAY_STEPS[-1])
    return math.floor(lo) - 1.0, math.ceil(hi) + 1.0  # months and years vary in length


def horizon_days(horizon: str | int) -> int:
    """The most days a horizon can span (``"1 year"`` → 366: a leap day may fall inside)."""
    n, unit = parse_offset(horizon)
    n = abs(n)
    if unit == "DAY":
        return n
    if unit == "MONTH":
        return 31 * n if n < 12 else 365 * (n // 12) + (n // 12) // 4 + 1 + 31 * (n % 12)
    return 365 * n + n // 4 + 1


def _default_field(v: Variable) -> str:
    # as cardiobox.cohort.compile reads a variable when a feature does not say
    if v.value_type in ("quantity", "integer", "boolean"):
        return "value"
    if (
        v.value_type == "code"
        and v.answers
        and all(isinstance(a.value, int | float) for a in v.answers)
    ):
        return "value"
    return "code"


def _feature_column(item: Feature, v: Variable, bins: int) -> dict[str, Any]:
    agg = item.agg
    if agg == "any":
        return {"kind": "boolean"}
    if agg == "count":
        return {"kind": "integer", "edges": COUNT_EDGES}
    if agg in ("days_since_first", "days_since_last"):
        lo, hi = _window_days(item.window)
        return {"kind": "numeric", "edges": day_edges(lo, hi), "unit": "d"}
    where = f"feature {item.name!r}"
    fld = item.field or _default_field(v)
    if item.map is not None:
        values = list(dict.fromkeys(item.map.values()))
        numbers = [x for x in values if not isinstance(x, str)]
        if agg in ("mean", "sd", "min", "max") or (numbers and len(numbers) == len(values)):
            if agg in ("mean", "sd"):
                lo, hi = min(numbers), max(numbers)
                if agg == "sd":
                    lo, hi = 0, max(hi - lo, 1)
                return {"kind": "numeric", "bounds": [lo, hi if hi > lo else lo + 1], "bins": bins}
            floats = any(isinstance(x, float) for x in numbers)
            return {
                "kind": "categorical",
                "categories": sorted(numbers),
                "dtype": "float64" if floats else "int32",
            }
        return {"kind": "categorical", "categories": values}
    if fld == "code":
        if v.value_type != "code":
            raise DomainError(
                f"{where}: the codes of {v.id!r} ({v.value_type}) have no public list; "
                "give its column categories by hand",
                rule="no-public-bounds",
            )
        cats, by_value = _answer_categories(v)
        if by_value:  # field code gives the answers' codes, not their values
            cats = list(dict.fromkeys(a.code for a in v.answers))
        return {"kind": "categorical", "categories": cats}
    # numbers: a quantity, an integer, a boolean's 1/0, an answer's ordinal (all DOUBLE)
    if v.value_type == "boolean":
        if agg in ("mean", "sd"):
            return {"kind": "numeric", "bounds": [0, 1], "bins": 10}
        return {"kind": "boolean", "dtype": "float64"}
    if v.value_type == "code":
        ordinals, _ = _answer_categories(v)
        if agg in ("mean", "sd"):
            lo, hi = min(ordinals), max(ordinals)
            return {"kind": "numeric", "bounds": [0 if agg == "sd" else lo, hi], "bins": bins}
        return {"kind": "categorical", "categories": ordinals, "dtype": "float64"}
    if v.value_type == "integer" and v.range is not None and agg not in ("mean", "sd"):
        lo, hi = (int(x) for x in v.range)
        return {"kind": "integer", "bounds": [lo, hi], "dtype": "float64"}
    if v.value_type not in ("quantity", "integer", "decimal"):
        raise DomainError(
            f"{where}: {v.id!r} ({v.value_type}) gives no numbers to bin", rule="no-public-bounds"
        )
    out = quantity_column(v, bins)
    if item.unit is not None and v.unit is not None and item.unit != v.unit:
        out = _converted(out, v, item.unit)
    if agg == "sd":
        e = out.get("edges") or out["bounds"]
        out = {"kind": "numeric", "bounds": [0, _whole(e[-1] - e[0])], "bins": bins}
    if item.round is not None:
        out["decimals"] = item.round
    return out


def _converted(col: dict[str, Any], v: Variable, unit: str) -> dict[str, Any]:
    from cardiobox.ingest.units import conversion  # the one UCUM conversion table

    assert v.unit is not None
    conv = conversion(v.id, v.unit, unit)
    factor, offset = float(conv.factor), float(conv.offset)

    def f(x: float) -> float:
        return float(f"{x * factor + offset:.4g}")

    if "edges" in col:
        edges = sorted({f(e) for e in col["edges"]})
        return {**col, "edges": edges}
    lo, hi = sorted(f(b) for b in col["bounds"])
    return {**col, "bounds": [lo, hi]}


def _item_columns(item: Any, d: DataDictionary, bins: int, where: str) -> list[dict[str, Any]]:
    if isinstance(item, Feature):
        v = d[item.variable]
        return [{"name": item.name, "variable": v.id, **_feature_column(item, v, bins)}]
    if isinstance(item, Pivot):
        if isinstance(item.pivot, str):
            members = [v for v in d if v.category == Category(item.pivot)]
        else:
            members = [d[n] for n in item.pivot]
        kind: dict[str, Any] = (
            {"kind": "boolean"} if item.agg == "any" else {"kind": "integer", "edges": COUNT_EDGES}
        )
        return [
            {"name": f"{item.prefix}{v.id}{item.suffix}", "variable": v.id, **kind} for v in members
        ]
    if isinstance(item, Demographic):
        if item.demographic == "age":
            return [
                {"name": item.name, "kind": "integer", "bounds": list(AGE_BOUNDS), "bins": bins}
            ]
        if item.demographic == "sex":
            if item.map is not None:
                values = list(dict.fromkeys(item.map.values()))
                if all(isinstance(x, str) for x in values):
                    return [{"name": item.name, "kind": "categorical", "categories": values}]
                return [
                    {
                        "name": item.name,
                        "kind": "categorical",
                        "categories": sorted(values),
                        "dtype": "float64"
                        if any(isinstance(x, float) for x in values)
                        else "int32",
                    }
                ]
            cats, _ = _answer_categories(d["sex"])
            return [
                {"name": item.name, "kind": "categorical", "categories": cats, "variable": "sex"}
            ]
        if item.demographic == "length_of_stay":
            return [
                {
                    "name": item.name,
                    "kind": "numeric",
                    "edges": STAY_EDGES,
                    "variable": "length_of_stay",
                }
            ]
        raise DomainError(
            f"{where}: {item.name!r} is the index time, a calendar date with no public bounds "
            "(and identifying); leave it out of the synthetic table or give it a domain by hand",
            rule="no-public-bounds",
        )
    if isinstance(item, Derived):
        if item.derived == "bmi":
            return [
                {
                    "name": item.name,
                    "kind": "numeric",
                    "edges": BMI_EDGES,
                    "decimals": 2,
                    "variable": "bmi",
                }
            ]
        if item.derived == "egfr_ckd_epi_2021":
            return [
                {
                    "name": item.name,
                    "kind": "numeric",
                    "edges": EGFR_EDGES,
                    "decimals": 1,
                    "variable": "egfr",
                }
            ]
        return [{"name": item.name, "kind": "integer", "bounds": [0, MAGGIC_MAX], "bins": bins}]
    assert isinstance(item, Outcome)
    days = horizon_days(item.horizon)
    return [
        {"name": item.name, "kind": "boolean", "dtype": "int32"},
        {
            "name": f"{item.name}_days",
            "kind": "integer",
            "bounds": [0, days],
            "bins": bins,
            "event": item.name,
        },
    ]


def domain_for_feature_set(
    feature_set: str | Path | FeatureSet,
    *,
    bins: int = DEFAULT_BINS,
    dictionary: DataDictionary | None = None,
) -> Domain:
    """The domain of the feature columns of an analysis table built from a feature set.

    The key columns of an analysis table (``row_id``, ``patient_id``, ``encounter_id``,
    ``index_time``) are not part of it: identifiers and calendar times are not synthesized.

    Parameters
    ----------
    feature_set : str, Path or FeatureSet
        A feature-set file, the name of a built-in one (``hf_features``), or a loaded one.
    bins : int
        Equal-width bins of quantities without heavy tails (default 20).
    dictionary : DataDictionary, optional
        Defaults to the packaged data dictionary.

    Raises
    ------
    DomainError
        For a file that is not a feature set, or a column without public bounds (the index
        time, codes without a public list).
    """
    d = dictionary or load_dictionary()
    if isinstance(feature_set, FeatureSet):
        fs = feature_set
    else:
        try:
            loaded = load_definition(resolve(feature_set))
        except CardioboxError as exc:
            raise DomainError(exc.message, rule=exc.rule, location=exc.location) from exc
        if not isinstance(loaded, FeatureSet):
            raise DomainError(
                f"{feature_set}: a cohort definition, not a feature set", rule="domain-input"
            )
        fs = loaded
    try:  # the same checks (variables, inputs, names) and descriptions as the extraction
        compiled = compile_features(fs, d, dated=True)
    except CardioboxError as exc:
        raise DomainError(exc.message, rule=exc.rule, location=exc.location) from exc
    columns: list[dict[str, Any]] = []
    for k, item in enumerate(fs.features):
        columns.extend(_item_columns(item, d, bins, f"features[{k}]"))
    meta = {c.name: c for c in compiled.columns}
    if [c["name"] for c in columns] != [c.name for c in compiled.columns]:
        raise AssertionError("the domain's columns differ from the feature set's")  # a bug
    for c in columns:
        m = meta[c["name"]]
        c.setdefault("description", m.description)
        if m.unit:
            c.setdefault("unit", m.unit)
    return Domain.model_validate(
        {
            "name": fs.name,
            "description": f"feature set {fs.name}: bounds from the data dictionary and the "
            "feature definitions (no data read)",
            "columns": columns,
        }
    )

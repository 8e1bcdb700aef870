"""Compile cohort definitions and feature sets to DuckDB SQL over the fact tables.

The cohort is a chain of relations, one per step (entry events, each criterion, the
observation window, the selection), so that the attrition table is a count over each. A
feature set is a few aggregations of the cohort joined to facts — one per window of the
features (the join keeps the records in the window once; each feature is an aggregate with a
``FILTER`` on its variable), one per pivot (a list or histogram of the variables seen, looked
up per column) — merged by row, then one projection for demographics and outcomes and one
nested selection per derived column. Window bounds are computed once per cohort row, not once
per joined record.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

from cardiobox.cdm.dictionary import Category, DataDictionary, Variable
from cardiobox.cohort.definition import (
    CohortDefinition,
    Criterion,
    Demographic,
    Derived,
    Feature,
    FeatureSet,
    Outcome,
    Pivot,
    ValueRange,
    Window,
    WindowSpec,
    offset_sql,
    parse_offset,
)
from cardiobox.duck import sql_str
from cardiobox.errors import InputError


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _unknown_variable(name: str, dictionary: DataDictionary, where: str) -> InputError:
    close = difflib.get_close_matches(name, [v.id for v in dictionary], n=5, cutoff=0.6)
    hint = f"; similar: {', '.join(close)}" if close else ""
    return InputError(
        f"{where}: {name!r} is not a variable of the data model{hint} "
        "(cardiobox cdm variables lists them)",
        rule="unknown-variable",
    )


def window_sql(w: WindowSpec, bound: Callable[[str], str] | None = None) -> str:
    """SQL condition: the time of fact ``f`` lies in the window of index row ``i``.

    ``bound`` (for feature sets) turns an expression of the index row (written over ``r``)
    into a column computed once per row, instead of once per joined record.
    """

    def at(expr: str) -> str:
        return bound(expr.format(i="r")) if bound is not None else expr.format(i="i")

    if w == "ever":
        return "true"
    if w == "before":
        return "f.t < i.index_time"
    if w == "stay":
        # A record dated without a time (midnight) on the admission or discharge day belongs
        # to the stay.
        day = at("date_trunc('day', {i}.index_time)")
        end = at("coalesce({i}.stay_end, {i}.index_time)")
        return f"f.t >= {day} AND f.t <= {end} AND (f.t >= i.index_time OR f.date_only)"
    assert isinstance(w, Window)
    parts = []
    if w.start is not None:
        op = ">=" if w.closed in ("both", "left") else ">"
        parts.append(f"f.t {op} {at(offset_sql('{i}.index_time', w.start))}")
    if w.end is not None:
        op = "<=" if w.closed in ("both", "right") else "<"
        parts.append(f"f.t {op} {at(offset_sql('{i}.index_time', w.end))}")
    if not parts:  # an open window: every dated record
        parts.append("f.t IS NOT NULL")
    return " AND ".join(parts)


def _value_sql(r: ValueRange, x: str) -> str:
    parts = []
    if r.min is not None:
        parts.append(f"{x} >= {r.min!r}")
    if r.max is not None:
        parts.append(f"{x} <= {r.max!r}")
    if r.gt is not None:
        parts.append(f"{x} > {r.gt!r}")
    if r.lt is not None:
        parts.append(f"{x} < {r.lt!r}")
    return " AND ".join(parts) or "true"


AGE_SQL = "date_sub('year', {i}.birth_date, {i}.index_time::DATE)"


@dataclass
class Step:
    """One step of a cohort: its label and the relation after it."""

    label: str
    sql: str
    kind: str  # entry, inclusion, exclusion, observation, selection


@dataclass
class CompiledCohort:
    """A cohort as a chain of SQL relations (``cohort_0`` … ``cohort_n``)."""

    definition: CohortDefinition
    steps: list[Step] = field(default_factory=list)

    @property
    def final(self) -> str:
        """Name of the relation holding the cohort."""
        return f"cohort_{len(self.steps) - 1}"

    def script(self) -> str:
        """The whole cohort as one readable SQL script of CTEs."""
        ctes = ",\n".join(
            f"-- {s.kind}: {s.label}\ncohort_{k} AS (\n{s.sql}\n)" for k, s in enumerate(self.steps)
        )
        return f"WITH {ctes}\nSELECT * FROM {self.final}"


def compile_cohort(d: CohortDefinition, dictionary: DataDictionary) -> CompiledCohort:
    """Compile a cohort definition.

    Raises
    ------
    InputError
        For unknown variables and windows that need an index time the entry does not give.
    """
    out = CompiledCohort(d)
    e = d.entry
    patients = "c_patients p ON p.patient_id = x.patient_id"
    if e.event == "encounter":
        conds = ["e.start IS NOT NULL"]
        if e.classes:
            conds.append(f"e.class IN ({', '.join(sql_str(c) for c in e.classes)})")
        if e.diagnosis:
            _variable(e.diagnosis, dictionary, "entry.diagnosis")
            conds.append(
                "EXISTS (SELECT 1 FROM c_facts f WHERE f.encounter_id = e.encounter_id "
                f"AND f.variable = {sql_str(e.diagnosis)}"
                + (" AND f.is_primary" if e.primary else "")
                + ")"
            )
        source = (
            'SELECT e.patient_id, e.encounter_id, e.start AS index_time, e."end" AS stay_end '
            f"FROM c_encounters e WHERE {' AND '.join(conds)}"
        )
        what = "encounters" + (f" of class {', '.join(e.classes)}" if e.classes else "")
        if e.diagnosis:
            what += f" with a {'primary ' if e.primary else ''}{e.diagnosis} diagnosis"
    elif e.event == "variable":
        assert e.variable is not None
        _variable(e.variable, dictionary, "entry.variable")
        source = (
            "SELECT f.patient_id, f.encounter_id, f.t AS index_time, NULL::TIMESTAMP AS stay_end "
            f"FROM c_facts f WHERE f.variable = {sql_str(e.variable)} AND f.t IS NOT NULL"
        )
        what = f"records of {e.variable}"
    else:
        source = (
            "SELECT patient_id, NULL::VARCHAR AS encounter_id, NULL::TIMESTAMP AS index_time, "
            "NULL::TIMESTAMP AS stay_end FROM c_patients"
        )
        what = "patients"
    dated = e.event != "patient"
    date_conds = []
    if e.start:
        date_conds.append(f"x.index_time >= DATE {sql_str(e.start)}")
    if e.end:
        date_conds.append(f"x.index_time < DATE {sql_str(e.end)} + INTERVAL 1 DAY")
    out.steps.append(
        Step(
            what + (f" from {e.start}" if e.start else "") + (f" to {e.end}" if e.end else ""),
            "SELECT row_number() OVER (ORDER BY x.patient_id, x.index_time, x.encounter_id) "
            "AS row_id, x.*, p.sex, p.birth_date, p.death_date "
            f"FROM ({source}) x LEFT JOIN {patients}"
            + (f" WHERE {' AND '.join(date_conds)}" if date_conds else ""),
            "entry",
        )
    )
    for kind, criteria in (("inclusion", d.inclusion), ("exclusion", d.exclusion)):
        for k, c in enumerate(criteria):
            where = f"{kind}[{k}]"
            cond = _criterion_sql(c, dictionary, where, dated)
            if kind == "exclusion":
                cond = f"NOT coalesce({cond}, false)"
            prev = f"cohort_{len(out.steps) - 1}"
            out.steps.append(Step(c.label(), f"SELECT * FROM {prev} i WHERE {cond}", kind))
    if d.observation_window is not None:
        if not dated:
            raise InputError(
                "observation_window needs an index time; entry 'patient' has none",
                rule="impossible-window",
            )
        ow = d.observation_window
        prev = f"cohort_{len(out.steps) - 1}"
        out.steps.append(
            Step(
                f"records from {ow.before} to {ow.after} around the index",
                f"""SELECT i.* FROM {prev} i JOIN (
    SELECT patient_id, min(t) AS first_t, max(t) AS last_t FROM (
        SELECT patient_id, t FROM c_facts WHERE t IS NOT NULL
        UNION ALL SELECT patient_id, start FROM c_encounters
        UNION ALL SELECT patient_id, "end" FROM c_encounters
    ) GROUP BY patient_id
) s USING (patient_id)
WHERE s.first_t <= {offset_sql("i.index_time", _neg(ow.before))}
  AND (s.last_t >= {offset_sql("i.index_time", ow.after)}
       OR i.death_date <= {offset_sql("i.index_time", ow.after)}::DATE)""",
                "observation",
            )
        )
    prev = f"cohort_{len(out.steps) - 1}"
    if d.select == "first":
        out.steps.append(
            Step(
                "first qualifying index per patient",
                f"SELECT * FROM {prev} QUALIFY row_number() OVER (PARTITION BY patient_id "
                "ORDER BY index_time NULLS FIRST, row_id) = 1",
                "selection",
            )
        )
    return out


def _neg(offset: str | int) -> str:
    n, unit = parse_offset(offset)
    return f"{-n} {unit.lower()}s"


def _variable(name: str, dictionary: DataDictionary, where: str) -> Variable:
    if name not in dictionary:
        raise _unknown_variable(name, dictionary, where)
    return dictionary[name]


def _criterion_sql(c: Criterion, dictionary: DataDictionary, where: str, dated: bool) -> str:
    if c.age is not None:
        if not dated:
            raise InputError(
                f"{where}: an age criterion needs an index time; entry 'patient' has none "
                "(use a criterion on recorded_age instead)",
                rule="impossible-window",
            )
        return _value_sql(c.age, AGE_SQL.format(i="i"))
    if c.sex is not None:
        return f"i.sex IN ({', '.join(sql_str(s) for s in c.sex)})"
    assert c.variable is not None
    _variable(c.variable, dictionary, f"{where}.variable")
    if not dated and c.window != "ever":
        raise InputError(
            f"{where}: the window {c.window!r} needs an index time; entry 'patient' has none "
            "(use window: ever)",
            rule="impossible-window",
        )
    conds = [f"f.variable = {sql_str(c.variable)}", window_sql(c.window)]
    if c.value is not None:
        conds.append(_value_sql(c.value, "f.value"))
    if c.codes:
        v = dictionary[c.variable]
        if v.resource == "Observation":  # coded answers: exact codes
            conds.append(
                f"(f.code IN ({', '.join(sql_str(x) for x in c.codes)}) "
                f"OR f.system || '|' || f.code IN ({', '.join(sql_str(x) for x in c.codes)}))"
            )
        else:  # diagnoses, procedures, drugs: a code covers its descendants (I50 → I50.9)
            flat = "upper(replace(f.code, '.', ''))"
            tests = " OR ".join(
                f"starts_with({flat}, {sql_str(x.split('|')[-1].replace('.', '').upper())})"
                for x in c.codes
            )
            conds.append(f"({tests})")
    return (
        f"(SELECT count(*) FROM c_facts f WHERE f.patient_id = i.patient_id "
        f"AND {' AND '.join(conds)}) >= {c.count}"
    )


# -- feature sets ------------------------------------------------------------------------------


@dataclass
class Column:
    """What the metadata says of one output column."""

    name: str
    description: str
    unit: str | None = None
    variable: str | None = None
    value_set: list[str] | None = None
    kind: str = "feature"  # key, feature, demographic, derived, outcome


@dataclass
class Group:
    """Aggregates of the cohort rows joined to their records of some variables in a window."""

    window: str  # SQL condition over the cohort row i and the record f
    variables: set[str] = field(default_factory=set)
    aggregates: list[str] = field(default_factory=list)


@dataclass
class CompiledFeatures:
    """A feature set as SQL over a cohort relation ``i``."""

    #: the features' aggregates, in one group per window (keyed by its SQL condition)
    windows: dict[str, Group] = field(default_factory=dict)
    #: one group per pivot
    pivots: list[Group] = field(default_factory=list)
    projections: list[str] = field(default_factory=list)  # over the aggregated row
    #: derived columns, each over the columns before it (one nested SELECT each, so an input
    #: name always means the output column, never an internal one)
    derived: list[str] = field(default_factory=list)
    columns: list[Column] = field(default_factory=list)
    #: window bounds of the index row (SQL over ``r``) → their column names
    bounds: dict[str, str] = field(default_factory=dict)

    def window_group(self, window: str) -> Group:
        """The features' group of a window (SQL condition), created when new."""
        return self.windows.setdefault(window, Group(window))

    def bound(self, expr: str) -> str:
        """The column holding ``expr`` (computed once per cohort row)."""
        if expr not in self.bounds:
            self.bounds[expr] = f"_w{len(self.bounds)}"
        return f"i.{self.bounds[expr]}"

    def sql(self, cohort: str) -> str:
        """The analysis table for the rows of relation ``cohort``."""
        extra = "".join(f", {expr} AS {alias}" for expr, alias in self.bounds.items())
        rows = f"(SELECT *{extra} FROM {cohort} r)" if extra else cohort

        def group(g: Group) -> str:
            # Each group joins only the records of its own variables in its own window: a
            # pivot's many flags do not pay for the features' records, nor the features for
            # the pivots', and each window is tested once per record, not once per feature.
            names = ", ".join(sql_str(v) for v in sorted(g.variables)) or "NULL"
            return (
                f"SELECT i.row_id, {', '.join(g.aggregates)}\n"
                f"FROM {rows} i JOIN c_facts f ON f.patient_id = i.patient_id "
                f"AND f.variable IN ({names})\nWHERE {g.window}\nGROUP BY i.row_id"
            )

        groups = [group(g) for g in [*self.windows.values(), *self.pivots] if g.aggregates]
        joins = "".join(f"\nLEFT JOIN ({g}) g{k} USING (row_id)" for k, g in enumerate(groups))
        projections = ",\n    ".join(self.projections)
        query = (
            f"SELECT a.row_id, a.patient_id, a.encounter_id, a.index_time"
            f"{', ' + projections if projections else ''}\n"
            f"FROM (SELECT * FROM {rows} i{joins}) a"
        )
        for expr in self.derived:
            query = f"SELECT *, {expr} FROM ({query}) d"
        names = ", ".join(ident(c.name) for c in self.columns)
        return (
            f"SELECT row_id, patient_id, encounter_id, index_time{', ' + names if names else ''}"
            f"\nFROM ({query}) ORDER BY row_id"
        )


def _default_field(v: Variable) -> str:
    if v.value_type in ("quantity", "integer", "boolean"):
        return "value"
    if (
        v.value_type == "code"
        and v.answers
        and all(isinstance(a.value, int | float) for a in v.answers)
    ):
        return "value"
    return "code"


#: Subtracted from an undated record's rank for ``last``: below every dated record's rank.
_UNDATED = 1 << 40


def _agg_sql(f: Feature, v: Variable, cond: str, dictionary: DataDictionary) -> tuple[str, str]:
    """(aggregate SQL, unit) of one feature."""
    fld = f.field or _default_field(v)
    x = "f.value" if fld == "value" else "f.code"
    unit = v.unit if fld == "value" and v.value_type == "quantity" else None
    if f.map is not None:
        x = _map_sql(f.map)
        unit = None
    elif f.unit is not None and fld == "value":
        if v.value_type != "quantity" or v.unit is None:
            raise InputError(
                f"feature {f.name}: {v.id} has no unit to convert", rule="unit-conversion"
            )
        x = _convert_sql(v, f.unit, x, f.name)
        unit = f.unit
    cnt = f"FILTER (WHERE {cond})"
    has = f"FILTER (WHERE {cond} AND {x} IS NOT NULL)"
    # Dated records come before undated ones for first and last alike. ``ord`` ranks a
    # patient's records of a variable by time, undated last, ties by resource id: an integer
    # key instead of a (dated, time, id) struct, which DuckDB compares far more slowly.
    first_key = "f.ord"
    last_key = f"CASE WHEN f.t IS NULL THEN f.ord - {_UNDATED} ELSE f.ord END"
    agg = f.agg
    if (
        agg in ("mean", "sd", "min", "max")
        and (fld != "value" or f.map is not None)
        and not (f.map and all(isinstance(m, int | float) for m in f.map.values()))
    ):
        raise InputError(
            f"feature {f.name}: {agg} needs numbers, and {v.id} gives codes "
            "(use first, last, count or any, or a map to numbers)",
            rule="feature-type",
        )
    sql = {
        "first": f"arg_min({x}, {first_key}) {has}",
        "last": f"arg_max({x}, {last_key}) {has}",
        "min": f"min({x}) {has}",
        "max": f"max({x}) {has}",
        "mean": f"avg({x}) {has}",
        "sd": f"stddev_samp({x}) {has}",
        "count": f"count(*) {cnt}",
        "any": f"count(*) {cnt} > 0",
        "days_since_first": f"(epoch(any_value(i.index_time)) - epoch(min(f.t) {cnt})) / 86400.0",
        "days_since_last": f"(epoch(any_value(i.index_time)) - epoch(max(f.t) {cnt})) / 86400.0",
    }[agg]
    if agg in ("count", "any"):
        unit = None
    if agg.startswith("days_since"):
        unit = "d"
    return sql, unit or ""


def _map_sql(mapping: dict[str, float | int | str]) -> str:
    whens = []
    for key, value in mapping.items():
        lit = repr(value) if isinstance(value, int | float) else sql_str(str(value))
        test = (
            f"f.system || '|' || f.code = {sql_str(key)}"
            if "|" in key
            else (f"f.code = {sql_str(key)}")
        )
        whens.append(f"WHEN {test} THEN {lit}")
    return f"(CASE {' '.join(whens)} END)"


def _convert_sql(v: Variable, unit: str, x: str, name: str) -> str:
    from cardiobox.ingest.units import conversion  # the one UCUM conversion table

    assert v.unit is not None
    try:
        conv = conversion(v.id, v.unit, unit)
    except InputError as exc:  # what conversion raises: name the feature too
        raise InputError(f"feature {name}: {exc.message}", rule=exc.rule) from exc
    except (KeyError, ValueError) as exc:
        raise InputError(
            f"feature {name}: cannot convert {v.id} from {v.unit} to {unit}: {exc}",
            rule="unit-conversion",
        ) from exc
    return f"({x} * {float(conv.factor)!r} + {float(conv.offset)!r})"


# NULL when no cause is recorded: a death of unknown cause is not "not CV". (Added once per
# feature set with a cv_death outcome, whether or not another column reads cause_of_death.)
CV_DEATH_AGG = (
    "max(CASE WHEN f.variable = 'cause_of_death' THEN upper(f.code) LIKE 'I%' END) AS _cv_death"
)


def compile_features(
    fs: FeatureSet, dictionary: DataDictionary, dated: bool = True
) -> CompiledFeatures:
    """Compile a feature set (``dated``: the cohort has index times).

    Raises
    ------
    InputError
        For unknown variables, aggregations that do not fit a variable's values, windows
        without an index time, and derived features whose inputs are missing.
    """
    out = CompiledFeatures()
    names: set[str] = set()

    def add(col: Column, agg: tuple[Group, str] | None, proj: str | None) -> None:
        if col.name in names:
            raise InputError(
                f"feature set {fs.name}: two columns are named {col.name!r}",
                rule="duplicate-column",
            )
        names.add(col.name)
        if agg is not None:
            group, sql = agg
            group.aggregates.append(f"{sql} AS {ident('_a_' + col.name)}")
        if proj is not None:
            out.projections.append(f"{proj} AS {ident(col.name)}")
        out.columns.append(col)

    def check_window(w: WindowSpec, where: str) -> None:
        if not dated and w != "ever":
            raise InputError(
                f"{where}: the window {w!r} needs an index time, and the cohort has none "
                "(use window: ever)",
                rule="impossible-window",
            )

    for k, item in enumerate(fs.features):
        where = f"features[{k}]"
        if isinstance(item, Feature):
            v = _variable(item.variable, dictionary, f"{where}.variable")
            check_window(item.window, where)
            group = out.window_group(window_sql(item.window, bound=out.bound))
            group.variables.add(v.id)
            agg, unit = _agg_sql(item, v, f"f.variable = {sql_str(v.id)}", dictionary)
            proj = f"a.{ident('_a_' + item.name)}"
            if item.agg in ("count", "any"):  # no record at all: 0 and false, not missing
                proj = f"coalesce({proj}, {'0' if item.agg == 'count' else 'false'})"
            if item.round is not None:
                proj = f"round({proj}, {item.round})"
            value_set = (
                sorted({str(m) for m in item.map.values()}) if item.map is not None else None
            )
            add(
                Column(
                    item.name,
                    item.description or f"{item.agg} of {v.name()} ({_window_label(item.window)})",
                    unit or None,
                    v.id,
                    value_set,
                ),
                (group, agg),
                proj,
            )
        elif isinstance(item, Pivot):
            check_window(item.window, where)
            if isinstance(item.pivot, str):
                members = [v for v in dictionary if v.category == Category(item.pivot)]
            else:
                members = [_variable(n, dictionary, f"{where}.pivot") for n in item.pivot]
            # One aggregate for the whole pivot (the variables seen, or their counts), then one
            # cheap look-up per column: not one filtered aggregate per variable.
            pv = f"_pv{k}"
            if members:
                fn = "list(DISTINCT f.variable)" if item.agg == "any" else "histogram(f.variable)"
                out.pivots.append(
                    Group(
                        window_sql(item.window, bound=out.bound),
                        {v.id for v in members},
                        [f"{fn} AS {pv}"],
                    )
                )
            for v in members:
                name = f"{item.prefix}{v.id}{item.suffix}"
                proj = (
                    f"coalesce(list_contains(a.{pv}, {sql_str(v.id)}), false)"
                    if item.agg == "any"
                    else f"coalesce(a.{pv}[{sql_str(v.id)}], 0)"
                )
                add(
                    Column(
                        name,
                        f"{'any' if item.agg == 'any' else 'number of'} {v.name()} "
                        f"({_window_label(item.window)})",
                        None,
                        v.id,
                        kind="pivot",
                    ),
                    None,
                    proj,
                )
        elif isinstance(item, Demographic):
            if item.demographic == "age":
                if not dated:
                    raise InputError(
                        f"{where}: age at the index needs an index time; use a feature of "
                        "recorded_age",
                        rule="impossible-window",
                    )
                proj, desc, unit_ = AGE_SQL.format(i="a"), "age at the index, whole years", "a"
            elif item.demographic == "sex":
                proj, desc, unit_ = "a.sex", "administrative sex", None
                if item.map is not None:
                    proj = _map_sql(item.map).replace("f.system || '|' || f.code", "a.sex")
                    proj = proj.replace("f.code", "a.sex")
            elif item.demographic == "index_time":
                proj, desc, unit_ = "a.index_time", "index time (local)", None
            else:
                proj = "(epoch(a.stay_end) - epoch(a.index_time)) / 86400.0"
                desc, unit_ = "length of the index stay, days", "d"
            add(
                Column(item.name, item.description or desc, unit_, None, None, "demographic"),
                None,
                proj,
            )
        elif isinstance(item, Derived):
            missing = [c for c in item.inputs.values() if c not in names]
            if missing:
                raise InputError(
                    f"{where}: {item.derived} reads columns that come later or do not exist: "
                    f"{missing}",
                    rule="derived-inputs",
                )
            from cardiobox.cohort.derived import derived_sql

            proj, desc, unit_ = derived_sql(item.derived, item.inputs, where)
            add(
                Column(item.name, item.description or desc, unit_, None, None, "derived"),
                None,
                None,
            )
            out.derived.append(f"{proj} AS {ident(item.name)}")
        else:
            assert isinstance(item, Outcome)
            if not dated:
                raise InputError(
                    f"{where}: outcomes need an index time, and the cohort has none",
                    rule="impossible-window",
                )
            if item.outcome == "cv_death":
                ever = out.window_group(window_sql("ever"))
                if CV_DEATH_AGG not in ever.aggregates:
                    ever.variables.add("cause_of_death")
                    ever.aggregates.append(CV_DEATH_AGG)
            if item.diagnosis:
                _variable(item.diagnosis, dictionary, f"{where}.diagnosis")
            from cardiobox.cohort.outcomes import outcome_sql

            event, days, desc = outcome_sql(item)
            add(
                Column(item.name, item.description or desc, None, None, ["0", "1"], "outcome"),
                None,
                event,
            )
            add(
                Column(
                    item.name + "_days",
                    f"days to {item.name} or to censoring",
                    "d",
                    None,
                    None,
                    "outcome",
                ),
                None,
                days,
            )
    return out


def _window_label(w: WindowSpec) -> str:
    if isinstance(w, str):
        return {"before": "before the index", "ever": "any time", "stay": "during the stay"}[w]
    ends = {"both": "[]", "left": "[)", "right": "(]", "neither": "()"}[w.closed]
    return f"{ends[0]}{w.start or '-∞'}, {w.end or '+∞'}{ends[1]} around the index"

"""Generators: checks made from the data dictionary, the profile rules and the date sources.

Each generator turns one ``generator:`` entry of ``checks.yaml`` into a :class:`Family`: the
checks (one per variable, element or date source, with ids and descriptions from the entry's
templates) and one DuckDB query computing all of them. The query joins the data to a
``VALUES`` list of (check id, parameters), so a hundred checks cost one scan.

========================  ============================================================
generator                 one check per
========================  ============================================================
``unit``                  quantity Observation variable: UCUM system and canonical code
``answer``                coded variable with answers: the value is one of them
``binding``               bound element of the profile rules: a coding from its systems
``required``              element the profile rules require (warning level)
``range``                 quantity variable with a range: the dictionary's range
``clinical-range``        variable of ``clinical_ranges``: the softer clinical range
``duplicates``            resource type: identical content under different ids
``before-birth``          date source: not before the patient's birth
``after-death``           date source: not after the patient's death
``future``                date source: not after the day of the run
========================  ============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cardiobox.cdm import codes as codesys
from cardiobox.cdm.dictionary import DataDictionary, Variable, load_dictionary
from cardiobox.cdm.docs import format_number, system_label
from cardiobox.cdm.fhir_versions import R5, model_class
from cardiobox.cdm.profile import ProfileSpec, load_profile_spec
from cardiobox.duck import sql_str
from cardiobox.errors import InputError, Location
from cardiobox.quality.spec import ROW_COLUMNS, Check, DateSource, Family, parse_check
from cardiobox.quality.tables import ANSWER_ELEMENTS


@dataclass(frozen=True)
class Context:
    """What generators read besides their entry."""

    source: str
    clinical_ranges: dict[str, tuple[float, float]]
    dates: dict[str, DateSource]
    dictionary: DataDictionary = field(default_factory=load_dictionary)
    profile: ProfileSpec = field(default_factory=load_profile_spec)


Made = tuple[list[tuple[Check, tuple[Any, ...]]], str, tuple[str, ...]]
_Generator = Callable[[dict[str, Any], Context, Check], Made]


def _error(message: str, ctx: Context, element: str | None = None) -> InputError:
    return InputError(
        message, rule="quality-checks", location=Location(file=ctx.source, element=element)
    )


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]::VARCHAR[]"
    return sql_str(str(value))


def values_sql(rows: Iterable[tuple[Any, ...]], names: Sequence[str]) -> str:
    """A ``(VALUES ...) AS t(names)`` relation from Python tuples (parameters, not data)."""
    body = ",\n    ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
    return f"(VALUES\n    {body}\n) AS t({', '.join(names)})"


def _make(template: Check, fields: dict[str, Any], subject: str) -> Check:
    def fill(text: str) -> str:
        try:
            return text.format(**fields)
        except (KeyError, IndexError) as exc:
            raise InputError(
                f"generated check {template.id!r}: unknown field {exc} in {text!r} "
                f"(fields: {', '.join(sorted(fields))})",
                rule="quality-checks",
            ) from exc

    return Check(
        id=fill(template.id),
        category=template.category,
        subcategory=template.subcategory,
        description=fill(template.description),
        reads=template.reads,
        severity=template.severity,
        threshold=template.threshold,
        generator=template.generator,
        subject=subject,
    )


def _quantities(ctx: Context) -> list[Variable]:
    return [v for v in ctx.dictionary if v.value_type == "quantity"]


# -- measurement generators -----------------------------------------------------------------
def _unit(entry: dict[str, Any], ctx: Context, tpl: Check) -> Made:
    made = [
        (_make(tpl, {"variable": v.id, "name": v.name(), "unit": v.unit}, v.id), (v.id, v.unit))
        for v in _quantities(ctx)
        if v.resource == "Observation" and v.derived is None and v.codes
    ]
    sql = f"""SELECT t.check_id, m.resource_type, m.id, m.element || '.valueQuantity' AS element,
    concat_ws(' ', CASE WHEN m.unit_system = '{codesys.UCUM}' THEN 'UCUM'
                       ELSE coalesce(m.unit_system, 'no system') END,
              coalesce(m.unit_code, 'no code'), '(unit ' || m.unit_text || ')') AS value,
    NOT coalesce(m.unit_system = '{codesys.UCUM}' AND m.unit_code = t.unit, false) AS failed
FROM q_measure m JOIN {{values}} ON t.variable = m.variable
WHERE m.has_quantity AND NOT m.derived"""
    return made, sql, ("q_measure",)


def _range_rows(ctx: Context, tpl: Check, ranges: dict[str, tuple[float, float]]) -> Made:
    made = []
    for v in _quantities(ctx):
        if v.id not in ranges:
            continue
        lo, hi = ranges[v.id]
        fields = {
            "variable": v.id,
            "name": v.name(),
            "unit": v.unit,
            "low": format_number(lo),
            "high": format_number(hi),
        }
        made.append((_make(tpl, fields, v.id), (v.id, v.unit, lo, hi)))
    sql = """SELECT t.check_id, m.resource_type, m.id,
    m.element || CASE WHEN m.derived THEN '' ELSE '.valueQuantity.value' END AS element,
    m.qty_text || ' ' || t.unit AS value, m.qty < t.lo OR m.qty > t.hi AS failed
FROM q_measure m JOIN {values} ON t.variable = m.variable
WHERE m.qty IS NOT NULL AND coalesce(m.unit_code, m.unit_text) = t.unit"""
    return made, sql, ("q_measure",)


def _range(entry: dict[str, Any], ctx: Context, tpl: Check) -> Made:
    ranges = {v.id: v.range for v in _quantities(ctx) if v.range is not None}
    return _range_rows(ctx, tpl, ranges)


def _clinical_range(entry: dict[str, Any], ctx: Context, tpl: Check) -> Made:
    for var, (lo, hi) in ctx.clinical_ranges.items():
        if var not in ctx.dictionary or ctx.dictionary[var].value_type != "quantity":
            raise _error(f"clinical_ranges.{var}: not a quantity variable of the dictionary", ctx)
        hard = ctx.dictionary[var].range
        if hard is not None and (lo < hard[0] or hi > hard[1]):
            raise _error(
                f"clinical_ranges.{var}: [{lo}, {hi}] is wider than the dictionary's plausible "
                f"range [{hard[0]}, {hard[1]}]",
                ctx,
            )
    return _range_rows(ctx, tpl, ctx.clinical_ranges)


def _answer(entry: dict[str, Any], ctx: Context, tpl: Check) -> Made:
    made = []
    for v in ctx.dictionary:
        if not v.answers or (v.resource != "Observation" and v.element not in ANSWER_ELEMENTS):
            continue
        codes = ", ".join(a.code for a in v.answers)
        allowed = [f"{a.system}|{a.code}" for a in v.answers]
        fields = {"variable": v.id, "name": v.name(), "answers": codes}
        made.append((_make(tpl, fields, v.id), (v.id, allowed)))
    sql = """SELECT t.check_id, c.resource_type, c.id, c.element,
    array_to_string(list_transform(c.codings, lambda x: coalesce(x.code, '?')), ', ') AS value,
    NOT list_has_any(list_transform(c.codings,
        lambda x: coalesce(x.system, '') || '|' || coalesce(x.code, '')), t.allowed) AS failed
FROM q_coded_values c JOIN {values} ON t.variable = c.variable"""
    return made, sql, ("q_coded_values",)


# -- profile generators ---------------------------------------------------------------------
def choice_keys(resource_type: str, element: str) -> list[str]:
    """JSON keys of an element; a choice (``effective[x]``) gives every variant's key."""
    if not element.endswith("[x]"):
        return [element]
    stem = element[:-3]
    keys = []
    for name, info in model_class(R5, resource_type).model_fields.items():
        key = info.alias or name
        if key.startswith(stem) and key[len(stem) : len(stem) + 1].isupper():
            keys.append(key)
    return keys


def _binding(entry: dict[str, Any], ctx: Context, tpl: Check) -> Made:
    made: list[tuple[Check, tuple[Any, ...]]] = []
    parts = []
    for path, systems in ctx.profile.bindings.items():
        rtype, element = path.split(".", 1)
        labels = ", ".join(dict.fromkeys(system_label(s) for s in systems))
        check = _make(tpl, {"path": path, "systems": labels}, path)
        made.append((check, ()))
        allowed = "[" + ", ".join(sql_str(s) for s in systems) + "]"
        parts.append(
            f"""SELECT {sql_str(check.id)} AS check_id, resource_type, id,
    {sql_str(path)} AS element, coalesce(array_to_string(s, ', '), 'no system') AS value,
    NOT list_has_any(coalesce(s, []), {allowed}) AS failed
FROM (SELECT resource_type, id, json_extract(resource, '$.{element}') AS e,
        json_extract_string(resource, '$.{element}.coding[*].system') AS s
      FROM resources WHERE resource_type = {sql_str(rtype)})
WHERE e IS NOT NULL"""
        )
    return made, "\nUNION ALL\n".join(parts), ("resources",)


def _required(entry: dict[str, Any], ctx: Context, tpl: Check) -> Made:
    # Elements required at `error` level send a resource to quarantine: always complete.
    made: list[tuple[Check, tuple[Any, ...]]] = []
    parts = []
    for rtype, elements in ctx.profile.required.items():
        for element, severity in elements.items():
            if severity != "warning":
                continue
            keys = choice_keys(rtype, element)
            if not keys:
                continue
            path = f"{rtype}.{element}"
            check = _make(tpl, {"path": path}, path)
            made.append((check, ()))
            paths = ", ".join(sql_str(f"$.{k}") for k in keys)
            missing = " AND ".join(f"x[{i + 1}] IS NULL" for i in range(len(keys)))
            parts.append(
                f"""SELECT {sql_str(check.id)} AS check_id, {sql_str(rtype)} AS resource_type, id,
    {sql_str(path)} AS element, NULL::VARCHAR AS value, {missing} AS failed
FROM (SELECT id, json_extract_string(resource, [{paths}]) AS x FROM resources
      WHERE resource_type = {sql_str(rtype)})"""
            )
    return made, "\nUNION ALL\n".join(parts), ("resources",)


# -- date generators ------------------------------------------------------------------------
def _sources(
    entry: dict[str, Any], ctx: Context, tpl: Check
) -> list[tuple[Check, tuple[Any, ...]]]:
    names = entry.get("sources")
    if not isinstance(names, list) or not names:
        raise _error(f"generator {entry['generator']}: sources must list date sources", ctx)
    made = []
    for name in names:
        if name not in ctx.dates:
            raise _error(
                f"generator {entry['generator']}: unknown date source {name!r} "
                f"(dates: {', '.join(ctx.dates)})",
                ctx,
            )
        src = ctx.dates[name]
        made.append((_make(tpl, {"source": name, "label": src.label}, name), (name,)))
    return made


def _before_birth(entry: dict[str, Any], ctx: Context, tpl: Check) -> Made:
    sql = """SELECT t.check_id, e.resource_type, e.id, e.element,
    e.date || ' < birth ' || p.birth_date AS value, q_after(p.birth_date, e.date) AS failed
FROM q_events e JOIN {values} ON t.source = e.source JOIN v_patient p ON p.id = e.patient_id
WHERE e.date IS NOT NULL AND p.birth_date IS NOT NULL"""
    return _sources(entry, ctx, tpl), sql, ("q_events", "v_patient")


def _after_death(entry: dict[str, Any], ctx: Context, tpl: Check) -> Made:
    sql = """SELECT t.check_id, e.resource_type, e.id, e.element,
    e.date || ' > death ' || p.deceased_date AS value, q_after(e.date, p.deceased_date) AS failed
FROM q_events e JOIN {values} ON t.source = e.source JOIN v_patient p ON p.id = e.patient_id
WHERE e.date IS NOT NULL AND p.deceased_date IS NOT NULL AND NOT e.about_death"""
    return _sources(entry, ctx, tpl), sql, ("q_events", "v_patient")


def _future(entry: dict[str, Any], ctx: Context, tpl: Check) -> Made:
    sql = """SELECT t.check_id, e.resource_type, e.id, e.element, e.date AS value,
    q_after(e.date, q_today()) AS failed
FROM q_events e JOIN {values} ON t.source = e.source
WHERE e.date IS NOT NULL"""
    return _sources(entry, ctx, tpl), sql, ("q_events",)


def _duplicates(entry: dict[str, Any], ctx: Context, tpl: Check) -> Made:
    spec = entry.get("resources")
    if not isinstance(spec, dict) or not spec:
        raise _error("generator duplicates: resources must map names to {type, date}", ctx)
    made = []
    for name, item in spec.items():
        if not isinstance(item, dict) or item.get("date") not in ctx.dates:
            raise _error(f"generator duplicates: {name} needs a type and a known date", ctx)
        label = ctx.dates[item["date"]].element
        check = _make(tpl, {"name": name, "type": item["type"], "date": label}, str(item["type"]))
        made.append((check, (str(item["type"]), str(item["date"]))))
    # Identical content implies the same patient and dates; they are in the partition so
    # that the definition reads as it is meant: copies within one patient and one date.
    sql = """SELECT check_id, resource_type, id, resource_type AS element,
    'same content as ' || resource_type || '/' || original AS value, copy > 1 AS failed
FROM (
    SELECT c.*, row_number() OVER w AS copy, first_value(c.id) OVER w AS original
    FROM (
        SELECT t.check_id, r.resource_type, r.id, r.patient_id, e.date,
            md5(json_merge_patch(r.resource, '{"id": null, "meta": null}')::VARCHAR) AS content
        FROM resources r JOIN {values} ON t.resource_type = r.resource_type
        LEFT JOIN q_events e ON e.source = t.source AND e.id = r.id
            AND e.resource_type = r.resource_type
        WHERE r.patient_id IS NOT NULL
    ) c
    WINDOW w AS (PARTITION BY c.resource_type, c.patient_id, c.date, c.content ORDER BY c.id)
)"""
    return made, sql, ("resources", "q_events")


#: Generator name → (function, VALUES column names after ``check_id``, extra entry keys).
GENERATORS: dict[str, tuple[_Generator, tuple[str, ...], frozenset[str]]] = {
    "unit": (_unit, ("variable", "unit"), frozenset()),
    "answer": (_answer, ("variable", "allowed"), frozenset()),
    "binding": (_binding, (), frozenset()),
    "required": (_required, (), frozenset()),
    "range": (_range, ("variable", "unit", "lo", "hi"), frozenset()),
    "clinical-range": (_clinical_range, ("variable", "unit", "lo", "hi"), frozenset()),
    "duplicates": (_duplicates, ("resource_type", "source"), frozenset({"resources"})),
    "before-birth": (_before_birth, ("source",), frozenset({"sources"})),
    "after-death": (_after_death, ("source",), frozenset({"sources"})),
    "future": (_future, ("source",), frozenset({"sources"})),
}


def expand(entry: dict[str, Any], ctx: Context) -> Family:
    """Expand one ``generator:`` entry of checks.yaml into a family of checks.

    Parameters
    ----------
    entry : dict
        The entry: ``generator``, templates for ``id`` and ``description``, category,
        subcategory, severity, optional threshold, and the generator's own keys.
    ctx : Context
        Dictionary, profile rules, date sources and clinical ranges.

    Returns
    -------
    Family
    """
    name = entry.get("generator")
    if name not in GENERATORS:
        raise _error(
            f"unknown generator {name!r}; use one of {', '.join(GENERATORS)}", ctx, str(name)
        )
    function, columns, extra = GENERATORS[str(name)]
    allowed = {"generator", "id", "category", "subcategory", "description", "severity"}
    unknown = sorted(set(entry) - allowed - {"threshold"} - extra)
    if unknown:
        raise _error(f"generator {name}: unknown keys {unknown}", ctx, str(name))
    fields = {k: v for k, v in entry.items() if k in allowed | {"threshold"}}
    base = parse_check(fields, ctx.source, written=False)
    template = Check(
        id=base.id,
        category=base.category,
        subcategory=base.subcategory,
        description=base.description,
        reads=(),
        severity=base.severity,
        threshold=base.threshold,
        generator=str(name),
    )
    made, sql, reads = function(entry, ctx, template)
    checks = tuple(replace(c, reads=reads) for c, _ in made)
    if columns:
        if made:
            rows = [(c.id, *params) for c, params in made]
            sql = sql.replace("{values}", values_sql(rows, ("check_id", *columns)))
        else:
            sql = ""
    cols = ", ".join(("check_id", *ROW_COLUMNS))
    final = f"SELECT {cols} FROM (\n{sql}\n)" if sql else ""
    return Family(
        checks=checks,
        sql=final,
        reads=reads,
        generator=str(name),
        template=replace(template, reads=reads),
    )

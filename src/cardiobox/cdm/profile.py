"""Profile rules of the cardiology data model, generated from the data dictionary.

The rules check what the base FHIR specification cannot know:

* ``required`` — elements the data model needs (``Condition.code``, ``Observation.subject``);
* ``patient-reference`` — clinical resources must point at a Patient;
* ``binding`` — codes must come from the data model's code systems (warning);
* ``unit`` — a measurement of a dictionary variable must use its canonical UCUM unit;
* ``range`` — and lie inside its plausible range;
* ``answer`` — coded answers must be among the variable's allowed answers (NYHA class);
* ``value-type`` — a quantity variable should carry a Quantity (warning).

All rules are compiled to one DuckDB query over a relation ``items(seq, resource_type, doc)``
holding R5-shaped resources, so they run vectorised over millions of resources; a single
resource is checked by the same query on a one-row table (:func:`check_profile`).

A producer that built the resources itself (the ingestion engine) may give, with each
Observation, the values the rules read of it (column :data:`GIVEN_X`, see
:func:`observation_rule_paths`): the rules then read those instead of parsing the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import orjson

from cardiobox import yamlio
from cardiobox.cdm.codes import canonical_system
from cardiobox.cdm.dictionary import DataDictionary, load_dictionary
from cardiobox.cdm.fhir_versions import R5, model_class
from cardiobox.cdm.findings import Finding
from cardiobox.duck import sql_str, temp_table


@dataclass(frozen=True)
class ProfileSpec:
    """The resource-level rules (``cdm/data/profiles.yaml``)."""

    required: dict[str, dict[str, str]]
    patient_reference: dict[str, str]
    bindings: dict[str, list[str]]


@cache
def load_profile_spec() -> ProfileSpec:
    """Load the packaged resource-level rules."""
    path = Path(str(resources.files("cardiobox.cdm") / "data" / "profiles.yaml"))
    doc = yamlio.safe_load(path.read_text(encoding="utf-8"))
    return ProfileSpec(
        required=doc.get("required", {}),
        patient_reference=doc.get("patient_reference", {}),
        bindings={k: [canonical_system(s) for s in v] for k, v in doc.get("bindings", {}).items()},
    )


def _choice_keys(resource_type: str, stem: str) -> list[str]:
    """JSON keys of a choice element (``effective[x]`` → effectiveDateTime, ...)."""
    fields = model_class(R5, resource_type).model_fields
    keys = []
    for name, info in fields.items():
        key = info.alias or name
        if key.startswith(stem) and key[len(stem) : len(stem) + 1].isupper():
            keys.append(key)
    return keys


def _struct(severity: str, rule: str, element: str, message_sql: str) -> str:
    return (
        f"{{'severity': {sql_str(severity)}, 'rule': {sql_str(rule)}, "
        f"'element': {sql_str(element)}, 'message': {message_sql}}}"
    )


@dataclass
class _TypeRules:
    """The resource-level rules of one type, over ``x``: the values at ``paths``."""

    rtype: str
    paths: list[str]
    cases: list[tuple[str, str]]  # (condition, finding struct)

    def extract_sql(self, given: bool = False) -> str:
        """``x``: every value the rules read, from one parse of ``doc``.

        ``given``: from the column :data:`GIVEN_X` where it is not NULL (no parse).
        """
        parsed = f"json_extract_string(doc, [{', '.join(sql_str(p) for p in self.paths)}])"
        return f"coalesce({GIVEN_X}, {parsed})" if given else parsed

    def found_sql(self) -> str:
        """The list of findings of a resource; NULL (cheap) when it breaks no rule."""
        findings = ", ".join(f"CASE WHEN {cond} THEN {struct} END" for cond, struct in self.cases)
        broken = " OR ".join(f"coalesce({cond}, false)" for cond, _ in self.cases)
        return f"CASE WHEN {broken} THEN [{findings}] END"

    def findings_sql(self) -> str:
        """The findings of every resource of the type, in one scan."""
        return (
            "SELECT seq, f.severity, f.rule, f.element, f.message FROM ("
            f"SELECT seq, unnest(found) AS f FROM (SELECT seq, {self.found_sql()} AS found "
            f"FROM (SELECT seq, doc, {self.extract_sql()} AS x FROM items "
            f"WHERE resource_type = {sql_str(self.rtype)})) WHERE found IS NOT NULL"
            ") WHERE f IS NOT NULL"
        )


def _type_rules(spec: ProfileSpec, rtype: str, seed: tuple[str, ...] = ()) -> _TypeRules:
    """The rules of one type, reading every value with one multi-path extraction.

    Each resource is parsed once; only resources with more than two codings in a bound
    element are parsed again. ``seed`` paths come first in ``x`` (for other readers of the
    same scan).
    """
    paths: list[str] = list(seed)

    def at(path: str) -> str:
        if path not in paths:
            paths.append(path)
        return f"x[{paths.index(path) + 1}]"

    cases: list[tuple[str, str]] = []  # (condition, finding struct)
    for element, severity in spec.required.get(rtype, {}).items():
        keys = _choice_keys(rtype, element[:-3]) if element.endswith("[x]") else [element]
        present = " OR ".join(f"{at('$.' + k)} IS NOT NULL" for k in keys) or "false"
        cases.append(
            (
                f"NOT ({present})",
                _struct(
                    severity,
                    "required",
                    f"{rtype}.{element}",
                    sql_str(f"{rtype}.{element} is required by the cardiology data model"),
                ),
            )
        )
    ref_element = spec.patient_reference.get(rtype)
    if ref_element:
        ref = at(f"$.{ref_element}.reference")
        cases.append(
            (
                f"{ref} IS NOT NULL AND NOT regexp_matches({ref}, "
                "'(^|/)Patient/[A-Za-z0-9\\-\\.]{1,64}$|^urn:uuid:')",
                _struct(
                    "error",
                    "patient-reference",
                    f"{rtype}.{ref_element}",
                    f"format('{rtype}.{ref_element} must reference a Patient, found {{}}', {ref})",
                ),
            )
        )
    for path, systems in spec.bindings.items():
        if path.split(".", 1)[0] != rtype:
            continue
        element = path.split(".", 1)[1]
        systems_sql = "[" + ", ".join(sql_str(x) for x in systems) + "]"
        first_two = (
            f"[{at(f'$.{element}.coding[0].system')}, {at(f'$.{element}.coding[1].system')}]"
        )
        more = at(f"$.{element}.coding[2]")
        bound = (
            f"CASE WHEN list_has_any({first_two}, {systems_sql}) THEN true "
            f"WHEN {more} IS NULL THEN false ELSE list_has_any(coalesce(json_extract_string("
            f"doc, '$.{element}.coding[*].system'), []), {systems_sql}) END"
        )
        cases.append(
            (
                f"{at('$.' + element)} IS NOT NULL AND NOT ({bound})",
                _struct(
                    "warning",
                    "binding",
                    path,
                    sql_str(
                        f"{path} has no coding from {', '.join(systems)}; the data model's "
                        "code sets will not match it"
                    ),
                ),
            )
        )
    return _TypeRules(rtype, paths, cases)


def dictionary_tables(con: duckdb.DuckDBPyConnection, dictionary: DataDictionary) -> None:
    """Create the temporary tables the measurement rules join against.

    ``cdm_codes(idx, system, code, variable, display, value_type, unit, lo, hi)`` lists every
    exact code that identifies an Observation variable; ``cdm_answers(variable, system,
    code)`` lists allowed coded answers.
    """
    codes: list[tuple[Any, ...]] = []
    answers: list[tuple[str, str, str]] = []
    for v in dictionary:
        if v.resource != "Observation":
            continue
        lo, hi = v.range if v.range else (None, None)
        for cs in v.codes:
            if cs.hierarchical:
                continue
            for code in cs.codes:
                codes.append((cs.system, code, v.id, v.name("en"), v.value_type, v.unit, lo, hi))
        for a in v.answers:
            answers.append((v.id, a.system, a.code))
    temp_table(
        con,
        "cdm_codes",
        [
            ("idx", "INTEGER"),
            ("system", "VARCHAR"),
            ("code", "VARCHAR"),
            ("variable", "VARCHAR"),
            ("display", "VARCHAR"),
            ("value_type", "VARCHAR"),
            ("unit", "VARCHAR"),
            ("lo", "DOUBLE"),
            ("hi", "DOUBLE"),
        ],
        [(i, *row) for i, row in enumerate(codes)],
    )
    temp_table(
        con,
        "cdm_answers",
        [("variable", "VARCHAR"), ("system", "VARCHAR"), ("code", "VARCHAR")],
        answers,
    )


# Measurements: the Observation itself and each of its components, with the first coding
# that names a dictionary variable. Components are rare; they are unnested separately.
_MEASURE_PATHS = (
    "$.code.coding[0].system",
    "$.code.coding[0].code",
    "$.code.coding[1].system",
    "$.code.coding[1].code",
    "$.code.coding[2]",
    "$.valueQuantity",
    "$.valueQuantity.value",
    "$.valueQuantity.code",
    "$.valueQuantity.unit",
    "$.valueCodeableConcept",
    "$.valueString",
    "$.dataAbsentReason",
)
# Read only where a producer gave the values (after the rules' own paths): the coded value's
# first coding and whether there are more, and whether there are components. With them the
# coded value's codings need no parse.
_GIVEN_ONLY_PATHS = (
    "$.valueCodeableConcept.coding[0].system",
    "$.valueCodeableConcept.coding[0].code",
    "$.valueCodeableConcept.coding[1]",
    "$.component[0]",
)
#: Paths whose value the rules only test for presence (objects and arrays): a producer may
#: give any non-NULL text for them (the ingestion engine gives '').
PRESENCE_PATHS = frozenset(
    {
        "$.code",
        "$.code.coding[2]",
        "$.subject",
        "$.valueQuantity",
        "$.valueCodeableConcept",
        "$.valueCodeableConcept.coding[1]",
        "$.dataAbsentReason",
        "$.effectivePeriod",
        "$.effectiveTiming",
        "$.component[0]",
    }
)
#: The column of ``items`` holding a producer's values (see :func:`observation_rule_paths`).
GIVEN_X = "profile_x"


@cache
def observation_rule_paths() -> tuple[str, ...]:
    """The paths whose values a producer gives with each Observation, in order.

    The list in :data:`GIVEN_X` holds, for each path, what ``json_extract_string`` finds
    there in the Observation's text (NULL when absent), except for :data:`PRESENCE_PATHS`,
    where any non-NULL text says that the element is there. A NULL list means: parse the
    text.

    Returns
    -------
    tuple of str
        JSON paths.
    """
    rules = _type_rules(load_profile_spec(), "Observation", _MEASURE_PATHS)
    return (*rules.paths, *_GIVEN_ONLY_PATHS)


# What the measurement rules need of a node (an Observation or a component), from ``x`` (the
# values at _MEASURE_PATHS first) and ``node``: small columns, cheap to keep. {cc_given}: the
# coded value's codings are in ``x`` (given by the producer, one coding).
_MEASURE_COLUMNS = """
    coalesce(
        code_index.m[x[1] || '|' || x[2]],
        code_index.m[x[3] || '|' || x[4]],
        CASE WHEN x[5] IS NOT NULL THEN list_filter(list_transform(
            list_zip(json_extract_string(node, '$.code.coding[*].system'),
                     json_extract_string(node, '$.code.coding[*].code')),
            lambda p: code_index.m[p[1] || '|' || p[2]]),
        lambda i: i IS NOT NULL)[1] END
    ) AS idx,
    x[6] IS NOT NULL AS has_q, TRY_CAST(x[7] AS DOUBLE) AS qv, coalesce(x[8], x[9]) AS qu,
    x[10] IS NOT NULL AS has_cc, x[11] IS NOT NULL OR x[12] IS NOT NULL AS has_other,
    CASE WHEN x[10] IS NULL THEN NULL WHEN {cc_given} THEN [x[{cc_system}]]
         ELSE json_extract_string(node, '$.valueCodeableConcept.coding[*].system')
    END AS cc_systems,
    CASE WHEN x[10] IS NULL THEN NULL WHEN {cc_given} THEN [x[{cc_code}]]
         ELSE json_extract_string(node, '$.valueCodeableConcept.coding[*].code')
    END AS cc_codes"""


def _measure_columns(paths: list[str] | None) -> str:
    """:data:`_MEASURE_COLUMNS`; ``paths``: those of ``x`` when values may be given."""
    if paths is None:
        return _MEASURE_COLUMNS.format(cc_given="false", cc_system=0, cc_code=0)
    at = {p: i + 1 for i, p in enumerate(paths)}
    return _MEASURE_COLUMNS.format(
        cc_given=f"{GIVEN_X} IS NOT NULL AND x[{at['$.valueCodeableConcept.coding[1]']}] IS NULL",
        cc_system=at["$.valueCodeableConcept.coding[0].system"],
        cc_code=at["$.valueCodeableConcept.coding[0].code"],
    )


def _measurements_sql(obs: _TypeRules, given: bool = False) -> str:
    """The CTEs ``obs_scan`` and ``valued``.

    ``obs_scan``: each Observation parsed once (or its given values read), for its own
    findings and its measurement columns; ``valued``: each measurement joined to its
    dictionary variable.
    """
    paths = ", ".join(sql_str(p) for p in _MEASURE_PATHS)
    if given:
        # Both ways give the same list: the rules' paths, then the given-only ones.
        obs = _TypeRules(obs.rtype, [*obs.paths, *_GIVEN_ONLY_PATHS], obs.cases)
        has_comp = obs.paths.index("$.component[0]") + 1
        extra = f", {GIVEN_X}"
        # An Observation whose values were given has components only if they say so.
        comp_filter = f"({GIVEN_X} IS NULL OR {GIVEN_X}[{has_comp}] IS NOT NULL) AND "
    else:
        extra = comp_filter = ""
    return f"""
code_index AS (
    SELECT map(list(system || '|' || code), list(idx)) AS m FROM cdm_codes
),
obs_scan AS MATERIALIZED (
    SELECT seq, {obs.found_sql() if obs.cases else "NULL"} AS found,
        {_measure_columns(obs.paths if given else None)}
    FROM (SELECT seq, doc, doc AS node{extra}, {obs.extract_sql(given)} AS x FROM items
          WHERE resource_type = 'Observation'), code_index
),
measured AS (
    SELECT seq, 'Observation' AS prefix, * EXCLUDE (seq, found) FROM obs_scan
    UNION ALL
    SELECT seq, 'Observation.component[' || (i - 1) || ']' AS prefix,
        {_measure_columns(None)}
    FROM (
        SELECT seq, i, comp[i] AS node, json_extract_string(comp[i], [{paths}]) AS x
        FROM (
            SELECT seq, json_extract(doc, '$.component[*]') AS comp FROM items
            WHERE resource_type = 'Observation' AND {comp_filter}contains(doc, '"component"')
        ), range(1, len(comp) + 1) AS r(i)
    ), code_index
),
valued AS (
    SELECT m.*, k.* EXCLUDE (idx) FROM measured m JOIN cdm_codes k USING (idx)
)
"""


_MEASUREMENT_RULES = """
SELECT seq, 'error', 'unit', prefix || '.valueQuantity',
    format('{} ({} {}) must be in {}, found {}', display, system, code, unit,
           coalesce(chr(39) || qu || chr(39), 'no unit'))
FROM valued WHERE value_type = 'quantity' AND has_q AND qu IS DISTINCT FROM unit
UNION ALL
SELECT seq, 'error', 'range', prefix || '.valueQuantity.value',
    format('{} of {} {} is outside the plausible range {} to {} {}', display, qv, unit, lo, hi,
           unit)
FROM valued WHERE value_type = 'quantity' AND qu = unit AND qv IS NOT NULL
    AND (qv < lo OR qv > hi)
UNION ALL
SELECT seq, 'warning', 'value-type', prefix || '.value[x]',
    format('{} ({} {}) should be a Quantity in {}', display, system, code, unit)
FROM valued WHERE value_type = 'quantity' AND NOT has_q AND NOT has_other
UNION ALL
SELECT v.seq, 'error', 'answer', v.prefix || '.valueCodeableConcept',
    format('{} must be one of its allowed answers ({}), found {}', v.display,
           (SELECT string_agg(a.code, ', ') FROM cdm_answers a WHERE a.variable = v.variable),
           coalesce(array_to_string(v.cc_codes, ', '), 'no code'))
FROM valued v
WHERE v.has_cc AND EXISTS (SELECT 1 FROM cdm_answers a WHERE a.variable = v.variable)
    AND NOT EXISTS (
        SELECT 1 FROM cdm_answers a, range(1, len(v.cc_codes) + 1) AS r(i)
        WHERE a.variable = v.variable AND a.code = v.cc_codes[i]
            AND a.system = v.cc_systems[i]
    )
"""


def profile_rules_sql(given: bool = False) -> str:
    """One query returning ``(seq, severity, rule, element, message)`` for every finding.

    It reads the relation ``items(seq, resource_type, doc)`` and the tables made by
    :func:`dictionary_tables`.

    Parameters
    ----------
    given : bool
        ``items`` also has the column :data:`GIVEN_X`: each Observation's values at
        :func:`observation_rule_paths`, read instead of parsing ``doc`` where not NULL. The
        findings are the same as from the text.
    """
    spec = load_profile_spec()
    types = sorted(
        set(spec.required)
        | set(spec.patient_reference)
        | {p.split(".", 1)[0] for p in spec.bindings}
    )
    obs = _type_rules(spec, "Observation", _MEASURE_PATHS)
    per_type = [
        "SELECT seq, f.severity, f.rule, f.element, f.message FROM ("
        "SELECT seq, unnest(found) AS f FROM obs_scan WHERE found IS NOT NULL) "
        "WHERE f IS NOT NULL"
    ]
    for t in types:
        rules = _type_rules(spec, t)
        if t != "Observation" and rules.cases:
            per_type.append(rules.findings_sql())
    # Observations are parsed once, for their own rules and the measurement rules.
    return (
        "WITH "
        + _measurements_sql(obs, given).strip()
        + "\nSELECT * FROM (\n"
        + "\nUNION ALL\n".join(per_type)
        + "\nUNION ALL\n"
        + _MEASUREMENT_RULES.strip()
        + "\n) AS f(seq, severity, rule, element, message)"
    )


def check_profile(
    resource: dict[str, Any], dictionary: DataDictionary | None = None
) -> list[Finding]:
    """Check one R5-shaped resource against the profile rules.

    Parameters
    ----------
    resource : dict
        The resource (R5 shape).
    dictionary : DataDictionary, optional
        Defaults to the packaged dictionary.

    Returns
    -------
    list of Finding
    """
    con = duckdb.connect()
    try:
        dictionary_tables(con, dictionary or load_dictionary())
        con.execute(
            "CREATE TEMP TABLE items AS SELECT 0::BIGINT AS seq, ?::VARCHAR AS resource_type, "
            "?::JSON AS doc",
            [str(resource.get("resourceType")), orjson.dumps(resource).decode()],
        )
        rows = con.execute(profile_rules_sql() + " ORDER BY rule, element").fetchall()
    finally:
        con.close()
    rid = resource.get("id")
    return [
        Finding(
            str(resource.get("resourceType")),
            rid if isinstance(rid, str) else None,
            element,
            rule,
            message,
            severity,
        )
        for _, severity, rule, element, message in rows
    ]

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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import orjson
import yaml

from cardiobox.cdm.codes import canonical_system
from cardiobox.cdm.dictionary import DataDictionary, load_dictionary
from cardiobox.cdm.fhir_versions import R5, model_class
from cardiobox.cdm.findings import Finding


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
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return ProfileSpec(
        required=doc.get("required", {}),
        patient_reference=doc.get("patient_reference", {}),
        bindings={k: [canonical_system(s) for s in v] for k, v in doc.get("bindings", {}).items()},
    )


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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
        f"{{'severity': {_sql_str(severity)}, 'rule': {_sql_str(rule)}, "
        f"'element': {_sql_str(element)}, 'message': {message_sql}}}"
    )


def _type_rules_sql(spec: ProfileSpec, rtype: str) -> str | None:
    """One scan over the resources of one type, returning all its resource-level findings."""
    required = spec.required.get(rtype, {})
    req_paths: list[str] = []
    cases: list[str] = []
    for element, severity in required.items():
        keys = _choice_keys(rtype, element[:-3]) if element.endswith("[x]") else [element]
        first = len(req_paths) + 1
        req_paths += [f"$.{k}" for k in keys]
        present = " OR ".join(f"ex[{i}]" for i in range(first, first + len(keys))) or "false"
        cases.append(
            f"CASE WHEN NOT ({present}) THEN "
            + _struct(
                severity,
                "required",
                f"{rtype}.{element}",
                _sql_str(f"{rtype}.{element} is required by the cardiology data model"),
            )
            + " END"
        )
    columns = (
        [f"json_exists(doc, [{', '.join(_sql_str(p) for p in req_paths)}]) AS ex"]
        if req_paths
        else []
    )
    ref_element = spec.patient_reference.get(rtype)
    if ref_element:
        columns.append(f"json_extract_string(doc, '$.{ref_element}.reference') AS ref")
        cases.append(
            "CASE WHEN ref IS NOT NULL AND NOT regexp_matches(ref, "
            "'(^|/)Patient/[A-Za-z0-9\\-\\.]{1,64}$|^urn:uuid:') THEN "
            + _struct(
                "error",
                "patient-reference",
                f"{rtype}.{ref_element}",
                f"format('{rtype}.{ref_element} must reference a Patient, found {{}}', ref)",
            )
            + " END"
        )
    for i, (path, systems) in enumerate(
        (p, sy) for p, sy in spec.bindings.items() if p.split(".", 1)[0] == rtype
    ):
        element = path.split(".", 1)[1]
        systems_sql = "[" + ", ".join(_sql_str(x) for x in systems) + "]"
        columns.append(
            f"CASE WHEN json_exists(doc, '$.{element}') THEN "
            f"coalesce(json_extract_string(doc, '$.{element}.coding[*].system'), []) END AS b{i}"
        )
        cases.append(
            f"CASE WHEN b{i} IS NOT NULL AND NOT list_has_any(b{i}, {systems_sql}) THEN "
            + _struct(
                "warning",
                "binding",
                path,
                _sql_str(
                    f"{path} has no coding from {', '.join(systems)}; the data model's code "
                    "sets will not match it"
                ),
            )
            + " END"
        )
    if not cases:
        return None
    # Only resources that break a rule pay for building the findings.
    conds = [c[len("CASE WHEN ") : c.index(" THEN ")] for c in cases]
    return (
        "SELECT seq, f.severity, f.rule, f.element, f.message FROM ("
        f"SELECT seq, unnest([{', '.join(cases)}]) AS f FROM ("
        f"SELECT seq, {', '.join(columns)} FROM items WHERE resource_type = {_sql_str(rtype)}"
        f") WHERE {' OR '.join(f'coalesce({c}, false)' for c in conds)}"
        ") WHERE f IS NOT NULL"
    )


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
    con.execute(
        "CREATE OR REPLACE TEMP TABLE cdm_codes (idx INTEGER, system VARCHAR, code VARCHAR, "
        "variable VARCHAR, display VARCHAR, value_type VARCHAR, unit VARCHAR, lo DOUBLE, "
        "hi DOUBLE)"
    )
    if codes:
        con.executemany(
            "INSERT INTO cdm_codes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(i, *row) for i, row in enumerate(codes)],
        )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE cdm_answers (variable VARCHAR, system VARCHAR, code VARCHAR)"
    )
    if answers:
        con.executemany("INSERT INTO cdm_answers VALUES (?, ?, ?)", answers)


# Measurements: the Observation itself and each of its components, with the first coding
# that names a dictionary variable. Components are rare; they are unnested separately.
_MEASUREMENTS = """
measured AS (
    SELECT seq, 'Observation' AS prefix, doc AS node FROM items
    WHERE resource_type = 'Observation'
    UNION ALL
    SELECT seq, 'Observation.component[' || (i - 1) || ']' AS prefix, comp[i] AS node
    FROM (
        SELECT seq, json_extract(doc, '$.component[*]') AS comp FROM items
        WHERE resource_type = 'Observation' AND contains(doc, '"component"')
    ), range(1, len(comp) + 1) AS r(i)
),
code_index AS (
    SELECT map(list(system || '|' || code), list(idx)) AS m FROM cdm_codes
),
matched AS (
    SELECT seq, prefix, node, list_filter(list_transform(
            list_zip(json_extract_string(node, '$.code.coding[*].system'),
                     json_extract_string(node, '$.code.coding[*].code')),
            lambda p: code_index.m[p[1] || '|' || p[2]]),
        lambda x: x IS NOT NULL)[1] AS idx
    FROM measured, code_index
),
valued AS MATERIALIZED (
    SELECT m.seq, m.prefix, m.node, k.*,
        x[1] AS q, TRY_CAST(x[2] AS DOUBLE) AS qv, coalesce(x[3], x[4]) AS qu,
        x[5] IS NOT NULL AS has_cc, x[6] IS NOT NULL OR x[7] IS NOT NULL AS has_other
    FROM (
        SELECT *, json_extract_string(node, [
            '$.valueQuantity', '$.valueQuantity.value', '$.valueQuantity.code',
            '$.valueQuantity.unit', '$.valueCodeableConcept', '$.valueString',
            '$.dataAbsentReason']) AS x
        FROM matched WHERE idx IS NOT NULL
    ) m JOIN cdm_codes k USING (idx)
)
"""

_MEASUREMENT_RULES = """
SELECT seq, 'error', 'unit', prefix || '.valueQuantity',
    format('{} ({} {}) must be in {}, found {}', display, system, code, unit,
           coalesce(chr(39) || qu || chr(39), 'no unit'))
FROM valued WHERE value_type = 'quantity' AND q IS NOT NULL AND qu IS DISTINCT FROM unit
UNION ALL
SELECT seq, 'error', 'range', prefix || '.valueQuantity.value',
    format('{} of {} {} is outside the plausible range {} to {} {}', display, qv, unit, lo, hi,
           unit)
FROM valued WHERE value_type = 'quantity' AND qu = unit AND qv IS NOT NULL
    AND (qv < lo OR qv > hi)
UNION ALL
SELECT seq, 'warning', 'value-type', prefix || '.value[x]',
    format('{} ({} {}) should be a Quantity in {}', display, system, code, unit)
FROM valued WHERE value_type = 'quantity' AND q IS NULL AND NOT has_other
UNION ALL
SELECT v.seq, 'error', 'answer', v.prefix || '.valueCodeableConcept',
    format('{} must be one of its allowed answers ({}), found {}', v.display,
           (SELECT string_agg(a.code, ', ') FROM cdm_answers a WHERE a.variable = v.variable),
           coalesce(array_to_string(
               json_extract_string(v.node, '$.valueCodeableConcept.coding[*].code'), ', '),
               'no code'))
FROM valued v
WHERE v.has_cc AND EXISTS (SELECT 1 FROM cdm_answers a WHERE a.variable = v.variable)
    AND NOT EXISTS (
        SELECT 1 FROM cdm_answers a,
            (SELECT json_extract_string(v.node, '$.valueCodeableConcept.coding[*].system') AS s,
                    json_extract_string(v.node, '$.valueCodeableConcept.coding[*].code') AS c) z,
            range(1, len(z.c) + 1) AS r(i)
        WHERE a.variable = v.variable AND a.code = z.c[i] AND a.system = z.s[i]
    )
"""


def profile_rules_sql() -> str:
    """One query returning ``(seq, severity, rule, element, message)`` for every finding.

    It reads the relation ``items(seq, resource_type, doc)`` and the tables made by
    :func:`dictionary_tables`.
    """
    spec = load_profile_spec()
    types = sorted(
        set(spec.required)
        | set(spec.patient_reference)
        | {p.split(".", 1)[0] for p in spec.bindings}
    )
    per_type = [q for q in (_type_rules_sql(spec, t) for t in types) if q]
    return (
        "WITH "
        + _MEASUREMENTS.strip()
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

"""Patients, encounters and dated facts of a site store, as three DuckDB tables.

Cohorts and feature sets never read FHIR JSON themselves: they read these tables, built once
per connection from the store (set-based SQL, no Python loop per resource): patients and
encounters from the standard SQL-on-FHIR views, facts from every coding of every resource
(the views keep the first coding only, and code sets must see all of them).

==================  ============================================================================
table               holds
==================  ============================================================================
``c_patients``      ``patient_id, sex, birth_date, death_date`` (a year-only birth date is taken
                    as 1 July, a year-month as the 15th, as the data dictionary says)
``c_encounters``    ``encounter_id, patient_id, class, start, end`` (start/end as local
                    timestamps)
``c_facts``         one row per recorded value of a data-model variable: ``patient_id,
                    encounter_id, variable, t`` (local timestamp, NULL when undated),
                    ``date_only`` (the record gives a day without a time),
                    ``value`` (a number: the quantity in the canonical unit, an integer,
                    1/0 for booleans, the answer's ordinal for coded values), ``code`` and
                    ``system`` (the coded value, or the code that identified a condition,
                    procedure or medication), ``is_primary`` (a primary diagnosis),
                    ``resource_type, id``
==================  ============================================================================

Observations are matched to variables by exact code (components too); conditions, procedures
and medications by code set, hierarchically for ICD-10 and ATC (``I50`` covers ``I50.9``).
Conditions whose verification status is ``refuted`` or ``entered-in-error`` are not facts.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from cardiobox.cdm import codes as codesys
from cardiobox.cdm.dictionary import DataDictionary
from cardiobox.duck import sql_str, temp_table
from cardiobox.store.views.standard import materialise_standard_view

#: FHIR date or dateTime text → local TIMESTAMP (partial dates as the dictionary says).
MACROS = """
CREATE OR REPLACE TEMP MACRO c_time(x) AS CASE
    WHEN x IS NULL THEN NULL
    WHEN length(x) = 4 THEN TRY_CAST(x || '-07-01' AS TIMESTAMP)
    WHEN length(x) = 7 THEN TRY_CAST(x || '-15' AS TIMESTAMP)
    ELSE TRY_CAST(replace(left(x, 19), 'T', ' ') AS TIMESTAMP)
END;
"""

# Resource types matched by code set: (codings path, date paths in order, variables' resource)
_CODED: dict[str, tuple[str, tuple[str, ...], str]] = {
    "Condition": (
        "$.code.coding[*]",
        ("$.onsetDateTime", "$.onsetPeriod.start", "$.recordedDate"),
        "Condition",
    ),
    "Procedure": (
        "$.code.coding[*]",
        ("$.occurrenceDateTime", "$.occurrencePeriod.start"),
        "Procedure",
    ),
    "MedicationStatement": (
        "$.medication.concept.coding[*]",
        ("$.effectiveDateTime", "$.effectivePeriod.start"),
        "MedicationStatement",
    ),
    "MedicationRequest": (
        "$.medication.concept.coding[*]",
        ("$.authoredOn",),
        "MedicationStatement",
    ),
}

_REF = "regexp_extract({}, '(?:^|/)Encounter/([A-Za-z0-9\\-\\.]{{1,64}})$', 1)"


def _code_rows(dictionary: DataDictionary) -> list[tuple[str, str, str, str, bool]]:
    """The dictionary's code members, without redundant ones.

    A hierarchical member covered by a shorter one of the same variable (I50.9 under I50) is
    left out, so that one code matches a variable once.
    """
    rows = set(dictionary.code_members())
    prefixes = {(r[0], r[2], r[3]) for r in rows if r[4]}
    return sorted(
        r
        for r in rows
        if not r[4] or not any((r[0], r[2], r[3][:n]) in prefixes for n in range(1, len(r[3])))
    )


def _answer_rows(dictionary: DataDictionary) -> list[tuple[str, str, str, float | None]]:
    rows: list[tuple[str, str, str, float | None]] = []
    for v in dictionary:
        for a in v.answers:
            value = float(a.value) if isinstance(a.value, int | float) else None
            rows.append((v.id, a.system, a.code, value))
    return rows


def build_facts(
    con: duckdb.DuckDBPyConnection,
    dictionary: DataDictionary,
    resources: str = "resources",
    variables: Iterable[str] | None = None,
) -> None:
    """Create ``c_patients``, ``c_encounters`` and ``c_facts`` on ``con``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection that sees the store's ``resources`` table.
    dictionary : DataDictionary
        The data dictionary (codes, answers).
    resources : str
        The relation holding the resources.
    variables : iterable of str, optional
        Only facts of these variables (default: all).
    """
    con.execute(MACROS)
    wanted = set(variables) if variables is not None else None
    codes = [r for r in _code_rows(dictionary) if wanted is None or r[0] in wanted]
    temp_table(
        con,
        "c_codes",
        [
            ("variable", "VARCHAR"),
            ("resource", "VARCHAR"),
            ("system", "VARCHAR"),
            ("member", "VARCHAR"),
            ("hierarchical", "BOOLEAN"),
        ],
        codes,
    )
    temp_table(
        con,
        "c_answers",
        [("variable", "VARCHAR"), ("system", "VARCHAR"), ("code", "VARCHAR"), ("value", "DOUBLE")],
        _answer_rows(dictionary),
    )
    # Patients and encounters through the store's standard SQL-on-FHIR views.
    materialise_standard_view(con, "patient", "c_view_patient", resources)
    materialise_standard_view(con, "encounter", "c_view_encounter", resources)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE c_patients AS
        SELECT id AS patient_id, gender AS sex, c_time(birth_date::VARCHAR)::DATE AS birth_date,
            c_time(deceased_date::VARCHAR)::DATE AS death_date
        FROM c_view_patient"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE c_encounters AS
        SELECT id AS encounter_id, patient_id, class_code AS class,
            c_time(start::VARCHAR) AS start, c_time("end"::VARCHAR) AS "end"
        FROM c_view_encounter"""
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE c_facts AS SELECT * FROM ({_observations_sql(resources)})\n"
        f"UNION ALL BY NAME\nSELECT * FROM ({_coded_sql(resources)})"
    )


# What is read of each Observation node (the resource or a component), in one parse:
# its first two codings, its value, and (for the resource) its time and encounter.
_NODE_PATHS = (
    "$.code.coding[0].system",
    "$.code.coding[0].code",
    "$.code.coding[1]",
    "$.valueQuantity.value",
    "$.valueInteger",
    "$.valueBoolean",
    "$.valueCodeableConcept.coding[0].system",
    "$.valueCodeableConcept.coding[0].code",
)
_OBS_PATHS = (
    *_NODE_PATHS,
    "$.effectiveDateTime",
    "$.effectiveInstant",
    "$.effectivePeriod.start",
    "$.encounter.reference",
    "$.component[0]",
)


def _observations_sql(resources: str) -> str:
    node_paths = ", ".join(sql_str(p) for p in _NODE_PATHS)
    obs_paths = ", ".join(sql_str(p) for p in _OBS_PATHS)
    enc = _REF.format("x[12]")
    # Most nodes have one coding: they are matched from the single parse. Nodes with more
    # codings are parsed again for all of them.
    return f"""
WITH obs AS (
    -- the document is kept only where it is read again (several codings, components)
    SELECT id, patient_id, x,
        CASE WHEN x[3] IS NOT NULL OR x[13] IS NOT NULL THEN resource END AS doc,
        c_time(coalesce(x[9], x[10], x[11])) AS t,
        coalesce(length(coalesce(x[9], x[10], x[11])) <= 10, false) AS date_only,
        {enc} AS encounter_id
    FROM (
        SELECT id, patient_id, resource, json_extract_string(resource, [{obs_paths}]) AS x
        FROM {resources} WHERE resource_type = 'Observation'
    )
),
nodes AS (
    SELECT id, patient_id, encounter_id, t, date_only, 0 AS ni,
        CASE WHEN x[3] IS NOT NULL THEN doc END AS node, x[1:8] AS x
    FROM obs
    UNION ALL
    SELECT id, patient_id, encounter_id, t, date_only, i AS ni, comp[i] AS node,
        json_extract_string(comp[i], [{node_paths}]) AS x
    FROM (
        SELECT *, json_extract(doc, '$.component[*]') AS comp FROM obs
        WHERE x[13] IS NOT NULL
    ), range(1, len(comp) + 1) AS r(i)
),
coded AS (
    SELECT id, ni, patient_id, encounter_id, t, date_only, x, x[1] AS system, x[2] AS code
    FROM nodes WHERE x[3] IS NULL
    UNION ALL
    SELECT id, ni, patient_id, encounter_id, t, date_only, x, systems[i], codes[i]
    FROM (
        SELECT *, json_extract_string(node, '$.code.coding[*].system') AS systems,
            json_extract_string(node, '$.code.coding[*].code') AS codes
        FROM nodes WHERE x[3] IS NOT NULL
    ), range(1, len(codes) + 1) AS r(i)
),
joined AS (
    SELECT v.*, k.variable FROM coded v
    JOIN c_codes k ON k.resource = 'Observation' AND NOT k.hierarchical
        AND k.system = v.system AND k.member = v.code
),
matched AS (  -- a node with one coding matches each variable once; others may repeat
    SELECT * FROM joined WHERE x[3] IS NULL
    UNION ALL
    SELECT DISTINCT ON (id, ni, variable) * FROM joined WHERE x[3] IS NOT NULL
)
SELECT v.patient_id, v.encounter_id, v.variable, v.t, v.date_only,
    coalesce(TRY_CAST(v.x[4] AS DOUBLE), TRY_CAST(v.x[5] AS DOUBLE),
             CASE v.x[6] WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 END, a.value) AS value,
    v.x[8] AS code, v.x[7] AS system, false AS is_primary,
    'Observation' AS resource_type, v.id
FROM matched v
LEFT JOIN c_answers a ON a.variable = v.variable AND a.system = v.x[7] AND a.code = v.x[8]"""


def _coded_sql(resources: str) -> str:
    parts = []
    for rtype, (path, dates, target) in _CODED.items():
        n = len(dates)
        first = path.replace("[*]", "[0]")
        # One parse: dates, encounter, verification, the first coding, whether there are
        # more codings, and the first extension; resources with more are parsed again.
        paths = [
            *dates,
            "$.encounter.reference",
            "$.verificationStatus.coding[0].code",
            f"{first}.system",
            f"{first}.code",
            path.replace("[*]", "[1]"),
            "$.extension[0].url",
            "$.extension[0].valueBoolean",
            "$.extension[1]",
        ]
        x = {
            name: f"x[{n + k + 1}]"
            for k, name in enumerate(
                ("enc", "ver", "sys0", "code0", "more", "url0", "bool0", "ext1")
            )
        }
        when = ", ".join(f"x[{i + 1}]" for i in range(n))
        primary = (
            f"CASE WHEN {x['ext1']} IS NULL "
            f"THEN coalesce({x['url0']} = {sql_str(codesys.PRIMARY_DIAGNOSIS_EXT)} "
            f"AND {x['bool0']} = 'true', false) "
            "ELSE coalesce(list_contains(list_transform(list_filter(coalesce(json_extract("
            "resource, '$.extension[*]'), []), lambda e: e ->> '$.url' = "
            + sql_str(codesys.PRIMARY_DIAGNOSIS_EXT)
            + "), lambda e: e ->> '$.valueBoolean'), 'true'), false) END"
            if rtype == "Condition"
            else "false"
        )
        all_systems = f"json_extract_string(resource, '{path.replace('[*]', '[*].system')}')"
        all_codes = f"json_extract_string(resource, '{path.replace('[*]', '[*].code')}')"
        parts.append(
            f"""SELECT patient_id, id, {sql_str(rtype)} AS resource_type,
    {sql_str(target)} AS target, c_time(coalesce({when})) AS t,
    coalesce(length(coalesce({when})) <= 10, false) AS date_only,
    {_REF.format(x["enc"])} AS encounter_id,
    coalesce({x["ver"]} IN ('refuted', 'entered-in-error'), false) AS refuted,
    {primary} AS is_primary,
    CASE WHEN {x["more"]} IS NULL THEN [{x["sys0"]}] ELSE {all_systems} END AS systems,
    CASE WHEN {x["more"]} IS NULL THEN [{x["code0"]}] ELSE {all_codes} END AS codes,
    {x["more"]} IS NOT NULL AS several
FROM (SELECT patient_id, id, resource, json_extract_string(resource,
        [{", ".join(sql_str(p) for p in paths)}]) AS x
      FROM {resources} WHERE resource_type = {sql_str(rtype)})"""
        )
    coded = "\nUNION ALL\n".join(parts)
    # A resource gives a variable once, whichever of its codings matched (exactly, or by a
    # prefix for ICD-10 and ATC); only resources with several codings need the DISTINCT.
    return f"""
WITH coded AS (
    SELECT * EXCLUDE (systems, codes), systems[i] AS system, trim(codes[i]) AS code
    FROM (SELECT *, unnest(range(1, len(codes) + 1)) AS i FROM ({coded}))
    WHERE NOT refuted AND codes[i] IS NOT NULL
),
exact AS (
    SELECT c.*, k.variable FROM coded c
    JOIN c_codes k ON NOT k.hierarchical AND k.resource = c.target AND k.system = c.system
        AND k.member = c.code
),
prefixed AS (
    SELECT c.* EXCLUDE (flat), k.variable
    FROM (SELECT *, upper(replace(replace(code, ' ', ''), '.', '')) AS flat FROM coded) c,
        range(1, length(c.flat) + 1) AS r(n)
    JOIN c_codes k ON k.hierarchical AND k.resource = c.target AND k.system = c.system
        AND k.member = left(c.flat, n)
),
matched AS (
    SELECT * FROM prefixed UNION ALL BY NAME SELECT * FROM exact
)
SELECT patient_id, encounter_id, variable, t, date_only, NULL::DOUBLE AS value, code, system,
    is_primary, resource_type, id
FROM (
    SELECT DISTINCT ON (id, resource_type, variable) * FROM matched WHERE several
    UNION ALL BY NAME
    SELECT * FROM matched WHERE NOT several
)"""

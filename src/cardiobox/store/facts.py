"""Fact tables of a site store: patients, encounters and dated facts, kept in step with loads.

Cohorts and feature sets never read FHIR JSON: they read three tables derived from
``resources`` (set-based SQL, no Python loop per resource): patients and encounters from the
standard SQL-on-FHIR views, facts from every coding of every resource (the views keep the
first coding only, and code sets must see all of them). Like a database index, the tables are
stored with the resources and refreshed by every load inside the load's own transaction
(:func:`refresh_facts`): only the resources that the load created or updated are parsed.

===================  ==========================================================================
table                holds
===================  ==========================================================================
``fact_patients``    ``patient_id, sex, birth_date, death_date`` (a year-only birth date is
                     taken as 1 July, a year-month as the 15th, as the data dictionary says)
``fact_encounters``  ``encounter_id, patient_id, class, start, end`` (start/end as local
                     timestamps)
``facts``            one row per recorded value of a data-model variable: ``patient_id,
                     encounter_id, variable, t`` (local timestamp, NULL when undated),
                     ``date_only`` (the record gives a day without a time), ``value`` (a number:
                     the quantity in the canonical unit, an integer, 1/0 for booleans, the
                     answer's ordinal for coded values), ``code`` and ``system`` (the coded
                     value, or the code that identified a condition, procedure or medication),
                     ``is_primary`` (a primary diagnosis), ``resource_type, id``, and ``ord``:
                     the record's rank among its patient's records of the same variable,
                     dated ones first by time, undated ones after, ties by resource id
                     (stored in order of variable and patient)
===================  ==========================================================================

Observations are matched to variables by exact code (components too); conditions, procedures
and medications by code set, hierarchically for ICD-10 and ATC (``I50`` covers ``I50.9``).
Conditions whose verification status is ``refuted`` or ``entered-in-error`` are not facts.

The tables depend on the data dictionary and on this module's SQL: ``store_info`` keeps a
fingerprint of both with the resource and load counts they were built at, so that
:func:`facts_status` tells when they are missing (a store written by an older cardiobox),
built from another dictionary, or behind the resources (a load by an older cardiobox).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import duckdb
import orjson

from cardiobox.cdm import codes as codesys
from cardiobox.cdm.dictionary import DataDictionary, load_dictionary
from cardiobox.duck import sql_str, temp_table
from cardiobox.store.db import one, scalar_int
from cardiobox.store.views.standard import (
    STANDARD_DIR,
    compile_standard_view,
    materialise_standard_view,
    union_sql,
)

PATIENTS = "fact_patients"
ENCOUNTERS = "fact_encounters"
FACTS = "facts"
FACT_TABLES = (PATIENTS, ENCOUNTERS, FACTS)
#: ``store_info`` key of the fact tables' state (JSON: fingerprint, resources, loads).
STATE_KEY = "facts_state"
#: Changed by hand when the tables' meaning changes in a way the SQL text does not show.
FORMAT = "1"

#: FHIR date or dateTime text → local TIMESTAMP (partial dates as the dictionary says).
MACROS = """
CREATE OR REPLACE TEMP MACRO fact_time(x) AS CASE
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
#: Resource types that give facts.
FACT_RESOURCES = ("Observation", *_CODED)

_REF = "regexp_extract({}, '(?:^|/)Encounter/([A-Za-z0-9\\-\\.]{{1,64}})$', 1)"

#: A record's rank among its patient's records of one variable (see the module docstring);
#: value and code make the order total, so that equal records rank the same way every time.
#: A record without a patient joins no cohort and has no rank.
#: (Partitioned by variable first, as the table is stored: DuckDB then sorts about a third
#: faster, 0.93 → 0.69 s on a million records.)
ORD_SQL = (
    "CASE WHEN patient_id IS NOT NULL THEN row_number() OVER (PARTITION BY variable, "
    "patient_id ORDER BY t NULLS LAST, id, value NULLS LAST, code NULLS LAST) END"
)


def _ranked(facts: str) -> str:
    """The records of query ``facts`` with their ``ord``, stored by variable and patient.

    The order makes each variable's records lie together on disk: the feature queries, which
    read a few variables each, scan runs of one value instead of a mix (about a fifth faster).
    """
    return f"SELECT *, {ORD_SQL} AS ord FROM ({facts}) ORDER BY variable, patient_id, ord"


@dataclass
class FactsRefresh:
    """What a refresh of the fact tables did.

    Attributes
    ----------
    mode : str
        ``full`` (every resource parsed), ``incremental`` (only a load's resources) or
        ``none`` (the load changed no resource).
    resources : int
        Resources parsed.
    facts : int
        Rows of ``facts`` afterwards.
    seconds : float
        Time taken.
    """

    mode: str
    resources: int
    facts: int
    seconds: float


@cache
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


@cache
def _answer_rows(dictionary: DataDictionary) -> list[tuple[str, str, str, float | None]]:
    rows: list[tuple[str, str, str, float | None]] = []
    for v in dictionary:
        for a in v.answers:
            value = float(a.value) if isinstance(a.value, int | float) else None
            rows.append((v.id, a.system, a.code, value))
    return rows


@cache
def _fingerprint(dictionary: DataDictionary) -> str:
    """Hash of everything the tables are computed from, but the resources."""
    views = [(STANDARD_DIR / f"{n}.json").read_bytes() for n in ("patient", "encounter")]
    parts = [
        FORMAT.encode(),
        orjson.dumps([_code_rows(dictionary), _answer_rows(dictionary)]),
        (MACROS + _ranked("r") + _observations_sql("r") + _coded_sql("r")).encode(),
        *views,
    ]
    return hashlib.sha256(b"\x00".join(parts)).hexdigest()[:32]


def facts_fingerprint(dictionary: DataDictionary | None = None) -> str:
    """The fingerprint that fact tables built now would carry.

    Parameters
    ----------
    dictionary : DataDictionary, optional
        The data dictionary (default: the one shipped with cardiobox).
    """
    return _fingerprint(dictionary if dictionary is not None else load_dictionary())


@cache
def _view_sql(name: str, source: str) -> str | None:
    """A standard view's SQL over ``source`` (``None`` when it needs the fallback evaluator)."""
    compiled = compile_standard_view(name, source)
    return None if any(c.uses_fallback for c in compiled) else union_sql(compiled)


def _view(con: duckdb.DuckDBPyConnection, name: str, source: str) -> str:
    """A relation holding a standard view's rows over ``source``."""
    sql = _view_sql(name, source)
    if sql is not None:
        return f"({sql})"
    materialise_standard_view(con, name, f"_fx_view_{name}", source)
    return f"_fx_view_{name}"


def _prepare(con: duckdb.DuckDBPyConnection, dictionary: DataDictionary) -> None:
    """The macro and the code tables that the fact queries read."""
    con.execute(MACROS)
    temp_table(
        con,
        "_fx_codes",
        [
            ("variable", "VARCHAR"),
            ("resource", "VARCHAR"),
            ("system", "VARCHAR"),
            ("member", "VARCHAR"),
            ("hierarchical", "BOOLEAN"),
        ],
        _code_rows(dictionary),
    )
    temp_table(
        con,
        "_fx_answers",
        [("variable", "VARCHAR"), ("system", "VARCHAR"), ("code", "VARCHAR"), ("value", "DOUBLE")],
        _answer_rows(dictionary),
    )


def _selects(con: duckdb.DuckDBPyConnection, source: str, given_x: bool = False) -> dict[str, str]:
    """Queries of the three tables over the resources in ``source`` (``facts`` without ``ord``).

    ``given_x``: ``source`` has the column :data:`GIVEN_X`.
    """
    return {
        PATIENTS: f"""SELECT id AS patient_id, gender AS sex,
            fact_time(birth_date::VARCHAR)::DATE AS birth_date,
            fact_time(deceased_date::VARCHAR)::DATE AS death_date
        FROM {_view(con, "patient", source)}""",
        ENCOUNTERS: f"""SELECT id AS encounter_id, patient_id, class_code AS class,
            fact_time(start::VARCHAR) AS start, fact_time("end"::VARCHAR) AS "end"
        FROM {_view(con, "encounter", source)}""",
        FACTS: f"SELECT * FROM ({_observations_sql(source, given_x)})\n"
        f"UNION ALL BY NAME\nSELECT * FROM ({_coded_sql(source)})",
    }


def build_facts(
    con: duckdb.DuckDBPyConnection,
    names: Mapping[str, str],
    resources: str = "resources",
    dictionary: DataDictionary | None = None,
) -> None:
    """Compute the three tables from ``resources`` into temporary tables on ``con``.

    For a connection that can read the store but not write it, when its fact tables are
    missing or out of date.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection that sees the resources.
    names : mapping
        The temporary table to create for each of ``fact_patients``, ``fact_encounters`` and
        ``facts``.
    resources : str
        The relation holding the resources.
    dictionary : DataDictionary, optional
        The data dictionary (default: the one shipped with cardiobox).
    """
    _prepare(con, dictionary if dictionary is not None else load_dictionary())
    selects = _selects(con, resources)
    selects[FACTS] = _ranked(selects[FACTS])
    for table, sql in selects.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {names[table]} AS {sql}")


def _catalog(con: duckdb.DuckDBPyConnection, catalog: str | None) -> str:
    """The catalog's name (the connection's own database when ``None``)."""
    if catalog is None:
        row = one(con.execute("SELECT current_database()"))
        assert row is not None
        catalog = str(row[0])
    return catalog


def _table(catalog: str, table: str) -> str:
    return '"' + catalog.replace('"', '""') + '".' + table


def _state(con: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, object] | None:
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? "
            "AND schema_name = 'main'",
            [catalog],
        ).fetchall()
    }
    if not set(FACT_TABLES) <= tables:
        return None
    row = one(
        con.execute(f"SELECT value FROM {_table(catalog, 'store_info')} WHERE key = ?", [STATE_KEY])
    )
    state = orjson.loads(row[0]) if row else None
    return state if isinstance(state, dict) else None


def _counts(con: duckdb.DuckDBPyConnection, catalog: str) -> tuple[int, int]:
    row = one(
        con.execute(
            f"SELECT (SELECT count(*) FROM {_table(catalog, 'resources')}), "
            f"(SELECT count(*) FROM {_table(catalog, 'loads')})"
        )
    )
    assert row is not None
    return int(row[0]), int(row[1])


def facts_status(con: duckdb.DuckDBPyConnection, catalog: str | None = None) -> str | None:
    """Why the store's fact tables cannot be used as they are, or ``None`` when they can.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection that sees the store (read-only is enough).
    catalog : str, optional
        The alias of the store when it is attached to ``con`` (default: ``con``'s own
        database).

    Returns
    -------
    str or None
        A reason in plain words, or ``None`` when the tables match the resources.
    """
    catalog = _catalog(con, catalog)
    state = _state(con, catalog)
    if state is None:
        return "the store has no fact tables (it was written by an older cardiobox)"
    if state.get("fingerprint") != facts_fingerprint():
        return "the fact tables were built by another cardiobox version or data dictionary"
    if (state.get("resources"), state.get("loads")) != _counts(con, catalog):
        return "the resources changed since the fact tables were built (by an older cardiobox?)"
    return None


def _record_state(con: duckdb.DuckDBPyConnection) -> None:
    resources, loads = _counts(con, _catalog(con, None))
    state = {"fingerprint": facts_fingerprint(), "resources": resources, "loads": loads}
    con.execute("DELETE FROM store_info WHERE key = ?", [STATE_KEY])
    con.execute("INSERT INTO store_info VALUES (?, ?)", [STATE_KEY, orjson.dumps(state).decode()])


def _current_before(con: duckdb.DuckDBPyConnection, load_id: str) -> bool:
    """Whether the tables matched the resources before load ``load_id`` (already written)."""
    catalog = _catalog(con, None)
    state = _state(con, catalog)
    if state is None or state.get("fingerprint") != facts_fingerprint():
        return False
    resources, loads = _counts(con, catalog)
    # The load wrote its created and updated resources with its id, and moved each replaced
    # version to resource_history.
    row = one(
        con.execute(
            "SELECT (SELECT count(*) FROM resources WHERE load_id = $1), "
            "(SELECT count(*) FROM resource_history WHERE replaced_by_load = $1)",
            [load_id],
        )
    )
    assert row is not None
    created = int(row[0]) - int(row[1])
    return state.get("resources") == resources - created and state.get("loads") == loads - 1


def refresh_facts(
    con: duckdb.DuckDBPyConnection, load_id: str | None = None, written: str | None = None
) -> FactsRefresh:
    """Bring the store's fact tables in step with its resources.

    Runs on the store's read-write connection, inside the caller's transaction (a load calls
    it after writing its resources and before committing, so the tables change atomically
    with them). With ``load_id`` and tables that matched the store before that load, only the
    resources the load created or updated are parsed, and the ranks of their patients'
    records recomputed; otherwise (no ``load_id``, tables missing, built from another
    dictionary or behind the resources) the tables are rebuilt from every resource.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Read-write connection to the store.
    load_id : str, optional
        The load just written (its resources carry this ``load_id``).
    written : str, optional
        A relation holding exactly the resources that load created or updated, as they were
        written (columns ``resource_type, id, patient_id, resource``), read instead of
        ``resources`` (no decompression of the stored text). When the store holds nothing
        else, the tables are built from it alone. It may have a column ``facts_x``: for an
        Observation, the values at :data:`OBSERVATION_PATHS` as ``json_extract_string``
        gives them, which its producer knows without parsing the text (NULL: parse it).

    Returns
    -------
    FactsRefresh
    """
    started = time.perf_counter()
    given_x = written is not None and GIVEN_X in _columns(con, written)
    if load_id is not None and _current_before(con, load_id):
        mode, parsed = _refresh_load(con, load_id, written, given_x)
    elif load_id is not None and written is not None and _only_load(con, written):
        # The first load of a store: every resource is one of the load's own.
        mode, parsed = "full", _rebuild(con, written, given_x)
    else:
        mode, parsed = "full", _rebuild(con)
    _record_state(con)
    facts = scalar_int(con.execute(f"SELECT count(*) FROM {FACTS}"))
    return FactsRefresh(mode, parsed, facts, time.perf_counter() - started)


def _only_load(con: duckdb.DuckDBPyConnection, written: str) -> bool:
    """Whether every stored resource is one of ``written`` (a load's, already in the store)."""
    row = one(
        con.execute(f"SELECT (SELECT count(*) FROM resources), (SELECT count(*) FROM {written})")
    )
    return row is not None and int(row[0]) == int(row[1])


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM {relation} LIMIT 0").description or []]


def _rebuild(
    con: duckdb.DuckDBPyConnection, source: str = "resources", given_x: bool = False
) -> int:
    """Rebuild the three tables from ``source`` (every resource); return the resources read."""
    _prepare(con, load_dictionary())
    selects = _selects(con, source, given_x)
    selects[FACTS] = _ranked(selects[FACTS])
    for table, sql in selects.items():
        con.execute(f"CREATE OR REPLACE TABLE {table} AS {sql}")
    return scalar_int(con.execute(f"SELECT count(*) FROM {source}"))


def _refresh_load(
    con: duckdb.DuckDBPyConnection, load_id: str, written: str | None, given_x: bool
) -> tuple[str, int]:
    """Replace the rows of the resources that load ``load_id`` created or updated."""
    changed = written or f"resources WHERE load_id = {sql_str(load_id)}"
    con.execute(f"CREATE OR REPLACE TEMP VIEW _fx_changed AS SELECT * FROM {changed}")
    present = dict(
        con.execute("SELECT resource_type, count(*) FROM _fx_changed GROUP BY 1").fetchall()
    )
    parsed = sum(int(n) for n in present.values())
    if not parsed:
        return "none", 0
    _prepare(con, load_dictionary())
    selects = _selects(con, "_fx_changed", given_x)
    for table, key, rtype in (
        (PATIENTS, "patient_id", "Patient"),
        (ENCOUNTERS, "encounter_id", "Encounter"),
    ):
        if rtype not in present:
            continue
        con.execute(
            f"DELETE FROM {table} WHERE {key} IN "
            f"(SELECT id FROM _fx_changed WHERE resource_type = '{rtype}')"
        )
        con.execute(f"INSERT INTO {table} BY NAME {selects[table]}")
    if not present.keys() & set(FACT_RESOURCES):
        con.execute("DROP VIEW IF EXISTS temp._fx_changed")
        return "incremental", parsed
    types = ", ".join(sql_str(t) for t in FACT_RESOURCES)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _fx_keys AS SELECT resource_type, id FROM _fx_changed "
        f"WHERE resource_type IN ({types})"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _fx_new AS {selects[FACTS]}")
    # The ranks are per patient and variable: every record of a patient with a changed
    # record is ranked again (records of unchanged resources are kept, not parsed again).
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _fx_patients AS
        SELECT DISTINCT patient_id FROM (
            SELECT patient_id FROM {FACTS} WHERE (resource_type, id) IN
                (SELECT (resource_type, id) FROM _fx_keys)
            UNION ALL SELECT patient_id FROM _fx_new
        ) WHERE patient_id IS NOT NULL"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _fx_rank AS
        SELECT * EXCLUDE (ord) FROM {FACTS}
        WHERE patient_id IN (SELECT patient_id FROM _fx_patients)
          AND (resource_type, id) NOT IN (SELECT (resource_type, id) FROM _fx_keys)
        UNION ALL BY NAME SELECT * FROM _fx_new"""
    )
    con.execute(
        f"""DELETE FROM {FACTS} WHERE patient_id IN (SELECT patient_id FROM _fx_patients)
            OR (resource_type, id) IN (SELECT (resource_type, id) FROM _fx_keys)"""
    )
    con.execute(f"INSERT INTO {FACTS} BY NAME {_ranked('SELECT * FROM _fx_rank')}")
    for name in ("_fx_keys", "_fx_new", "_fx_patients", "_fx_rank"):
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")
    con.execute("DROP VIEW IF EXISTS temp._fx_changed")
    return "incremental", parsed


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


#: What the fact tables read of each Observation (one ``json_extract_string`` list).
OBSERVATION_PATHS = _OBS_PATHS
#: A column of a load's resources holding that list, given by the producer from the values
#: it built the text from (NULL where it did not); see :func:`refresh_facts`.
GIVEN_X = "facts_x"


def _observations_sql(resources: str, given_x: bool = False) -> str:
    node_paths = ", ".join(sql_str(p) for p in _NODE_PATHS)
    obs_paths = ", ".join(sql_str(p) for p in _OBS_PATHS)
    extract = f"json_extract_string(resource, [{obs_paths}])"
    if given_x:  # COALESCE parses only the rows whose list is not given
        extract = f"coalesce({GIVEN_X}, {extract})"
    enc = _REF.format("x[12]")
    # Most nodes have one coding: they are matched from the single parse. Nodes with more
    # codings are parsed again for all of them.
    return f"""
WITH obs AS (
    -- the document is kept only where it is read again (several codings, components)
    SELECT id, patient_id, x,
        CASE WHEN x[3] IS NOT NULL OR x[13] IS NOT NULL THEN resource END AS doc,
        fact_time(coalesce(x[9], x[10], x[11])) AS t,
        coalesce(length(coalesce(x[9], x[10], x[11])) <= 10, false) AS date_only,
        {enc} AS encounter_id
    FROM (
        SELECT id, patient_id, resource, {extract} AS x
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
    JOIN _fx_codes k ON k.resource = 'Observation' AND NOT k.hierarchical
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
LEFT JOIN _fx_answers a ON a.variable = v.variable AND a.system = v.x[7] AND a.code = v.x[8]"""


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
    {sql_str(target)} AS target, fact_time(coalesce({when})) AS t,
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
    JOIN _fx_codes k ON NOT k.hierarchical AND k.resource = c.target AND k.system = c.system
        AND k.member = c.code
),
prefixed AS (
    SELECT c.* EXCLUDE (flat), k.variable
    FROM (SELECT *, upper(replace(replace(code, ' ', ''), '.', '')) AS flat FROM coded) c,
        range(1, length(c.flat) + 1) AS r(n)
    JOIN _fx_codes k ON k.hierarchical AND k.resource = c.target AND k.system = c.system
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

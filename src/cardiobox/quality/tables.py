"""Helper relations the checks and metrics read, built once per store as DuckDB temp tables.

The store is opened read-only; temporary tables and macros live in the connection's own
in-memory catalogue. Everything here is SQL over the whole store (no Python loop per row).

========================  ===============================================================
relation                  holds
========================  ===============================================================
``v_<view>``              a standard view (``v_patient``, ``v_encounter``, ...)
``q_vars``                the dictionary's variables (id, category, resource, value type,
                          unit, range)
``q_codes``               the codes identifying each variable; ICD-10, ICD-10-PCS and ATC
                          members written without dots, matched by prefix
``q_events``              every dated element of checks.yaml's ``dates`` (one row per
                          resource and date source)
``q_nodes``               every Observation and Observation component: codings, value,
                          unit, date
``q_measure``             nodes identified as dictionary variables, plus the derived
                          quantities length of stay and age at each encounter
``q_coded_values``        coded values of variables with answers
``q_presence``            (variable, patient, date) for every recorded value of a variable
========================  ===============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import duckdb

from cardiobox.cdm import codes as codesys
from cardiobox.cdm.dictionary import DataDictionary, Variable
from cardiobox.duck import sql_str, temp_table
from cardiobox.store.views.standard import materialise_standard_view

if TYPE_CHECKING:
    from cardiobox.quality.spec import DateSource

ETHNICITY_URL = "https://datatools4heart.eu/fhir/StructureDefinition/HFR-Ethnicity"
_ETHNICITY_ELEMENT = f"Patient.extension('{ETHNICITY_URL}').value.ofType(CodeableConcept)"

#: FHIR date/dateTime comparison: true when `a` is definitely after `b`. Both with a time:
#: as instants (time zones applied). Otherwise: the written calendar text at the common
#: precision (year, month or day), so '2020-05' is not after '2020-05-17' and a dateTime is
#: compared by its local date with a date.
MACROS = """
CREATE OR REPLACE TEMP MACRO q_after(a, b) AS CASE
    WHEN a IS NULL OR b IS NULL THEN NULL
    WHEN length(a) > 10 AND length(b) > 10
        THEN TRY_CAST(a AS TIMESTAMPTZ) > TRY_CAST(b AS TIMESTAMPTZ)
    ELSE left(a, least(length(a), length(b), 10)) > left(b, least(length(a), length(b), 10))
END;
"""


def _codings(json_list: str) -> str:
    """SQL turning a JSON list of Codings into a list of ``{system, code}`` structs."""
    return (
        f"list_transform(coalesce({json_list}, []), "
        "lambda c: {'system': c ->> '$.system', 'code': c ->> '$.code'})"
    )


_ETHNICITY_CODINGS = _codings(
    "flatten(list_transform(list_filter(coalesce(json_extract(resource, '$.extension[*]'), []), "
    f"lambda e: e ->> '$.url' = {sql_str(ETHNICITY_URL)}), "
    "lambda e: coalesce(json_extract(e, '$.valueCodeableConcept.coding[*]'), [])))"
)


@dataclass(frozen=True)
class Element:
    """How to read a Patient or Encounter variable from a resource.

    Parameters
    ----------
    resource_type : str
        ``Patient`` or ``Encounter``.
    present : str
        SQL condition over ``resource`` (JSON): the element is recorded.
    codings : str or None
        SQL giving the element's codings as ``{system, code}`` structs (coded elements).
    label : str
        Element name shown in examples.
    """

    resource_type: str
    present: str
    codings: str | None
    label: str


_ENC_DATE = "resource ->> '$.actualPeriod.start'"

#: Patient and Encounter elements of the dictionary, by the variable's ``element``.
ELEMENTS: dict[str, Element] = {
    "Patient.gender": Element(
        "Patient",
        "resource ->> '$.gender' IS NOT NULL",
        f"[{{'system': {sql_str(codesys.ADMINISTRATIVE_GENDER)}, "
        "'code': resource ->> '$.gender'}]",
        "Patient.gender",
    ),
    "Patient.birthDate": Element(
        "Patient", "resource ->> '$.birthDate' IS NOT NULL", None, "Patient.birthDate"
    ),
    _ETHNICITY_ELEMENT: Element(
        "Patient",
        f"len({_ETHNICITY_CODINGS}) > 0",
        _ETHNICITY_CODINGS,
        "Patient.extension(HFR-Ethnicity)",
    ),
    "Patient.deceased.ofType(dateTime)": Element(
        "Patient", "resource ->> '$.deceasedDateTime' IS NOT NULL", None, "Patient.deceased"
    ),
    "Patient.deceased": Element(
        "Patient",
        "resource ->> '$.deceasedDateTime' IS NOT NULL "
        "OR resource ->> '$.deceasedBoolean' IS NOT NULL",
        None,
        "Patient.deceased",
    ),
    "Encounter.class": Element(
        "Encounter",
        "json_extract(resource, '$.class') IS NOT NULL",
        _codings("json_extract(resource, '$.class[*].coding[*]')"),
        "Encounter.class",
    ),
    "Encounter.actualPeriod.start": Element(
        "Encounter", f"{_ENC_DATE} IS NOT NULL", None, "Encounter.actualPeriod.start"
    ),
    "Encounter.actualPeriod.end": Element(
        "Encounter",
        "resource ->> '$.actualPeriod.end' IS NOT NULL",
        None,
        "Encounter.actualPeriod.end",
    ),
    "Encounter.actualPeriod": Element(
        "Encounter",
        f"({_ENC_DATE} IS NOT NULL AND resource ->> '$.actualPeriod.end' IS NOT NULL) "
        "OR json_extract(resource, '$.length') IS NOT NULL",
        None,
        "Encounter.actualPeriod",
    ),
    "Encounter.admission.admitSource": Element(
        "Encounter",
        "json_extract(resource, '$.admission.admitSource') IS NOT NULL",
        _codings("json_extract(resource, '$.admission.admitSource.coding[*]')"),
        "Encounter.admission.admitSource",
    ),
}

#: Coded elements outside Observations that the ``answer`` generator can check.
ANSWER_ELEMENTS = frozenset(k for k, e in ELEMENTS.items() if e.codings is not None)

#: Resource types matched by code, and the dictionary ``resource`` of their variables.
_CODED_TYPES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # type: (variables' resource, codings path, date paths in order of preference)
    "Condition": (
        "Condition",
        "$.code.coding[*]",
        ("$.onsetDateTime", "$.onsetPeriod.start", "$.recordedDate"),
    ),
    "Procedure": (
        "Procedure",
        "$.code.coding[*]",
        ("$.occurrenceDateTime", "$.occurrencePeriod.start"),
    ),
    "MedicationRequest": (
        "MedicationStatement",
        "$.medication.concept.coding[*]",
        ("$.authoredOn",),
    ),
    "MedicationStatement": (
        "MedicationStatement",
        "$.medication.concept.coding[*]",
        ("$.effectiveDateTime", "$.effectivePeriod.start"),
    ),
}


def supported(v: Variable) -> bool:
    """Whether completeness can be measured for a variable (its element or codes are known)."""
    if v.resource in ("Patient", "Encounter"):
        return v.element in ELEMENTS or v.id in ("age_at_index", "length_of_stay")
    return bool(v.codes) and v.resource in {
        "Observation",
        *(r for r, _, _ in _CODED_TYPES.values()),
    }


class Workspace:
    """A read-only store connection with the helper relations built on demand.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection to the store (read-only is fine).
    dictionary : DataDictionary
        The data dictionary.
    dates : dict
        Date sources of checks.yaml.
    today : date
        The day of the run (``q_today()``), for checks of dates in the future.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        dictionary: DataDictionary,
        dates: dict[str, DateSource],
        today: date,
    ):
        self.con = con
        self.dictionary = dictionary
        self.dates = dates
        self.today = today
        self._built: set[str] = {"resources"}
        con.execute("SET TimeZone = 'UTC'")
        con.execute(MACROS)
        con.execute(f"CREATE OR REPLACE TEMP MACRO q_today() AS {sql_str(today.isoformat())}")
        self._builders: dict[str, tuple[tuple[str, ...], Callable[[], None]]] = {
            "q_vars": ((), self._vars),
            "q_codes": ((), self._codes),
            "q_events": (tuple(r for s in dates.values() for r in s.reads), self._events),
            "q_nodes": ((), self._nodes),
            "q_measure": (("q_nodes", "q_codes", "v_encounter", "v_patient"), self._measure),
            "q_coded_values": (("q_measure",), self._coded_values),
            "q_presence": (("q_measure", "q_codes", "q_vars"), self._presence),
        }

    def ensure(self, names: Iterable[str]) -> None:
        """Build the named relations (and what they depend on) unless already built."""
        for name in names:
            if name in self._built:
                continue
            if name.startswith("v_"):
                self._view(name[2:])
            elif name in self._builders:
                deps, build = self._builders[name]
                self.ensure(deps)
                build()
            else:
                raise KeyError(f"unknown relation {name!r} for quality checks")
            self._built.add(name)

    # -- standard views ----------------------------------------------------------------------
    def _view(self, name: str) -> None:
        materialise_standard_view(self.con, name, f"v_{name}")

    # -- dictionary tables -------------------------------------------------------------------
    def _vars(self) -> None:
        rows = [
            (
                v.id,
                v.name(),
                v.category.value,
                v.resource,
                v.value_type,
                v.unit,
                v.range[0] if v.range else None,
                v.range[1] if v.range else None,
            )
            for v in self.dictionary
        ]
        text = ("variable", "name", "category", "resource", "value_type", "unit")
        columns = [*((c, "VARCHAR") for c in text), ("lo", "DOUBLE"), ("hi", "DOUBLE")]
        temp_table(self.con, "q_vars", columns, rows)

    def _codes(self) -> None:
        text = ("variable", "resource", "system", "member")
        columns = [*((c, "VARCHAR") for c in text), ("hierarchical", "BOOLEAN")]
        temp_table(self.con, "q_codes", columns, self.dictionary.code_members())

    # -- dates ---------------------------------------------------------------------------------
    def _events(self) -> None:
        parts = [
            "SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS element, NULL::BOOLEAN AS activity, "
            "NULL::VARCHAR AS resource_type, NULL::VARCHAR AS id, NULL::VARCHAR AS patient_id, "
            "NULL::VARCHAR AS date, NULL::BOOLEAN AS about_death WHERE false"
        ]
        for s in self.dates.values():
            parts.append(
                f"SELECT {sql_str(s.name)} AS source, {sql_str(s.element)} AS element, "
                f"{'true' if s.activity else 'false'} AS activity, * FROM ({s.sql})"
            )
        union = "\nUNION ALL BY NAME\n".join(f"({p})" for p in parts)
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE q_events AS SELECT source, element, activity, "
            "resource_type, id, patient_id, date::VARCHAR AS date, "
            f"coalesce(about_death, false) AS about_death FROM ({union})"
        )

    # -- measurements --------------------------------------------------------------------------
    def _nodes(self) -> None:
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE q_nodes AS
WITH obs AS (
    SELECT id, patient_id, resource AS doc, coalesce(d[1], d[2], d[3]) AS date
    FROM (
        SELECT id, patient_id, resource, json_extract_string(resource,
            ['$.effectiveDateTime', '$.effectiveInstant', '$.effectivePeriod.start']) AS d
        FROM resources WHERE resource_type = 'Observation'
    )
),
nodes AS (
    SELECT id, patient_id, date, 'Observation' AS element, doc AS node FROM obs
    UNION ALL
    SELECT id, patient_id, date, 'Observation.component[' || (i - 1) || ']' AS element,
        comp[i] AS node
    FROM (
        SELECT id, patient_id, date, json_extract(doc, '$.component[*]') AS comp
        FROM obs WHERE contains(doc, '"component"')
    ), range(1, len(comp) + 1) AS r(i)
)
SELECT id, patient_id, date, element,
    {_codings("json_extract(node, '$.code.coding[*]')")} AS codings,
    x[1] IS NOT NULL AS has_quantity, x[2] AS qty_text, TRY_CAST(x[2] AS DOUBLE) AS qty,
    x[3] AS unit_system, x[4] AS unit_code, x[5] AS unit_text,
    TRY_CAST(x[6] AS BOOLEAN) AS value_boolean, x[7] IS NOT NULL AS has_value_cc,
    {_codings("json_extract(node, '$.valueCodeableConcept.coding[*]')")} AS value_codings
FROM (
    SELECT *, json_extract_string(node, ['$.valueQuantity', '$.valueQuantity.value',
        '$.valueQuantity.system', '$.valueQuantity.code', '$.valueQuantity.unit',
        '$.valueBoolean', '$.valueCodeableConcept']) AS x
    FROM nodes
)"""
        )

    def _measure(self) -> None:
        ucum = sql_str(codesys.UCUM)
        parts = [
            """SELECT DISTINCT ON (n.id, n.element, k.variable)
    k.variable, 'Observation' AS resource_type, n.id, n.patient_id, n.element, n.date,
    false AS derived, n.has_quantity, n.qty, n.qty_text, n.unit_system, n.unit_code,
    n.unit_text, n.value_boolean, n.has_value_cc, n.value_codings
FROM (SELECT * EXCLUDE (codings), unnest(codings) AS c FROM q_nodes) n
JOIN q_codes k ON k.resource = 'Observation' AND NOT k.hierarchical
    AND k.system = n.c.system AND k.member = n.c.code"""
        ]
        if "length_of_stay" in self.dictionary:
            parts.append(
                f"""SELECT 'length_of_stay' AS variable, 'Encounter' AS resource_type, id,
    patient_id,
    'length of stay from Encounter.actualPeriod' AS element, start AS date, true AS derived,
    true AS has_quantity, los AS qty, printf('%.2f', los) AS qty_text, {ucum} AS unit_system,
    'd' AS unit_code
FROM (
    SELECT id, patient_id, start, CASE
        WHEN length(start) > 10 AND length("end") > 10
            THEN (epoch(TRY_CAST("end" AS TIMESTAMPTZ))
                  - epoch(TRY_CAST(start AS TIMESTAMPTZ))) / 86400.0
        ELSE date_diff('day', TRY_CAST(left(start, 10) AS DATE),
                       TRY_CAST(left("end", 10) AS DATE)) END AS los
    FROM v_encounter WHERE length(start) >= 10 AND length("end") >= 10
)
WHERE los IS NOT NULL"""
            )
        if "age_at_index" in self.dictionary:
            # Whole years at each encounter start; a year-only birth date is taken as 1 July
            # and a year-month as the 15th, as the dictionary says. Before birth the age is
            # negative (-1 in the year before birth), so that the range checks see it.
            parts.append(
                f"""SELECT 'age_at_index' AS variable, 'Encounter' AS resource_type, id, patient_id,
    'age at Encounter.actualPeriod.start' AS element, start AS date, true AS derived,
    true AS has_quantity, age::DOUBLE AS qty, age::VARCHAR AS qty_text, {ucum} AS unit_system,
    'a' AS unit_code
FROM (
    SELECT id, patient_id, start, CASE WHEN ev >= born THEN date_sub('year', born, ev)
        ELSE -1 - date_sub('year', ev, born) END AS age
    FROM (
        SELECT e.id, e.patient_id, e.start, TRY_CAST(left(e.start, 10) AS DATE) AS ev,
            TRY_CAST(CASE length(p.birth_date) WHEN 4 THEN p.birth_date || '-07-01'
                WHEN 7 THEN p.birth_date || '-15' ELSE left(p.birth_date, 10) END AS DATE)
                AS born
        FROM v_encounter e JOIN v_patient p ON p.id = e.patient_id
        WHERE length(e.start) >= 10
    )
)
WHERE age IS NOT NULL"""
            )
        union = "\nUNION ALL BY NAME\n".join(f"({p})" for p in parts)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE q_measure AS {union}")

    def _coded_values(self) -> None:
        parts = [
            """SELECT variable, resource_type, id, element || '.valueCodeableConcept' AS element,
    value_codings AS codings
FROM q_measure WHERE has_value_cc"""
        ]
        for v in self.dictionary:
            el = ELEMENTS.get(v.element)
            if v.answers and v.resource != "Observation" and el is not None and el.codings:
                parts.append(
                    f"SELECT {sql_str(v.id)} AS variable, resource_type, id, "
                    f"{sql_str(el.label)} AS element, {el.codings} AS codings FROM resources "
                    f"WHERE resource_type = {sql_str(el.resource_type)} AND ({el.present})"
                )
        union = "\nUNION ALL\n".join(parts)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE q_coded_values AS {union}")

    # -- presence (completeness) ----------------------------------------------------------------
    def _presence(self) -> None:
        coded = []
        for rtype, (target, path, dates) in _CODED_TYPES.items():
            d = ", ".join(sql_str(p) for p in dates)
            coded.append(
                f"SELECT {sql_str(target)} AS target, patient_id, "
                f"coalesce({', '.join(f'x[{i + 1}]' for i in range(len(dates)))}) AS date, "
                f"unnest({_codings(f'json_extract(resource, {sql_str(path)})')}) AS c "
                f"FROM (SELECT patient_id, resource, json_extract_string(resource, [{d}]) AS x "
                f"FROM resources WHERE resource_type = {sql_str(rtype)})"
            )
        coded_sql = "\nUNION ALL\n".join(coded)
        parts = [
            # Observation variables: a value of the variable's type (presence: the code).
            """SELECT m.variable, m.patient_id, m.date
FROM q_measure m JOIN q_vars v USING (variable)
WHERE NOT m.derived AND CASE v.value_type
    WHEN 'quantity' THEN m.qty IS NOT NULL
    WHEN 'code' THEN m.has_value_cc
    WHEN 'boolean' THEN m.value_boolean IS NOT NULL
    ELSE true END""",
            # Conditions, procedures, medications: a coding in the variable's code set.
            f"""SELECT k.variable, c.patient_id, c.date
FROM (SELECT target, patient_id, date, c.system AS system, c.code AS code FROM ({coded_sql})) c
JOIN q_codes k ON NOT k.hierarchical AND k.resource = c.target AND k.system = c.system
    AND k.member = trim(c.code)""",
            f"""SELECT k.variable, c.patient_id, c.date
FROM (
    SELECT *, unnest(range(1, length(flat) + 1)) AS n FROM (
        SELECT target, patient_id, date, c.system AS system,
            upper(replace(replace(trim(c.code), ' ', ''), '.', '')) AS flat
        FROM ({coded_sql})
    )
) c
JOIN q_codes k ON k.hierarchical AND k.resource = c.target AND k.system = c.system
    AND k.member = left(c.flat, c.n)""",
        ]
        for v in self.dictionary:
            if v.id == "age_at_index":
                el = ELEMENTS["Patient.birthDate"]
            elif v.resource in ("Patient", "Encounter") and v.element in ELEMENTS:
                el = ELEMENTS[v.element]
            else:
                continue
            when = "NULL" if el.resource_type == "Patient" else _ENC_DATE
            who = "id" if el.resource_type == "Patient" else "patient_id"
            parts.append(
                f"SELECT {sql_str(v.id)} AS variable, {who} AS patient_id, {when} AS date "
                f"FROM resources WHERE resource_type = {sql_str(el.resource_type)} "
                f"AND ({el.present})"
            )
        union = "\nUNION ALL\n".join(f"({p})" for p in parts)
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE q_presence AS SELECT variable, patient_id, "
            f"date::VARCHAR AS date FROM ({union}) WHERE patient_id IS NOT NULL"
        )

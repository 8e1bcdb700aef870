"""Synthetic admissions as FHIR R5 resources of the data model (the CardioSynth database).

Each row of a synthetic analysis table (one heart-failure admission per row, the columns of
``domain_for_feature_set("hf_features")``) becomes one synthetic patient, so that the cohort
tools run on synthetic data unchanged:

==========================  ===============================================================
row columns                 resources
==========================  ===============================================================
``age``, ``sex``, deaths    ``Patient/<prefix>-<n>``: gender, a birth date giving ``age`` at
                            the index, ``deceasedDateTime`` from the first death outcome
``length_of_stay``          an inpatient ``Encounter`` (``actualPeriod``) with a primary
                            heart-failure ``Condition`` (ICD-10 I50.9, dated at discharge)
quantities, NYHA, ECG AF    ``Observation``: the variable's LOINC (or data-model) code, the
                            canonical UCUM unit, at the admission (see :data:`TIMING`)
``hx_*`` flags              a ``Condition`` dated 180 days before the index
``med_before_*``            a ``MedicationStatement`` 30 days before the index
``med_stay_*``              a ``MedicationStatement`` at the admission
``previous_hf_records``     that many earlier heart-failure Conditions, the first
                            ``days_since_first_hf`` days before the index
``hf_readmission_*``        a later inpatient ``Encounter`` with a primary heart-failure
                            ``Condition``
==========================  ===============================================================

Every resource carries ``meta.tag`` ``https://cardiobox.org/synthetic|synthetic``. Index dates
are drawn (seeded) over :data:`INDEX_YEAR`; ages, identifiers and dates are synthetic, and
nothing here reads real data. Columns derived by the feature set (``bmi``,
``egfr_admission``) are recomputed by the cohort tools from the exported inputs, not exported.

Resources are built per column (one JSON template per column, filled for the rows that have
a value), not as one dict per row.

What does not round-trip exactly (the synthetic table may hold combinations real data cannot):
a medication group implies its parents (an ACE inhibitor is a RAS inhibitor), a history flag
of a phenotype inside another's code set, a ``lvef_last_year`` hidden by ``lvef_stay``, and
outcomes, which the cohort tools recompute from the death and readmission dates and the
store's follow-up end.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from cardiobox.cdm import codes as codesys
from cardiobox.cdm.dictionary import DataDictionary, Variable, load_dictionary
from cardiobox.store.importer import ImportReport
from cardiobox.store.site_store import SiteStore
from cardiobox.synth.domain import ColumnDomain, Domain, DomainError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
Timing = Literal["index", "after", "before"]

#: The ``meta.tag`` system marking every exported resource as synthetic.
SYNTHETIC_TAG_SYSTEM = "https://cardiobox.org/synthetic"
#: Index admissions are spread over this (non-leap) year.
INDEX_YEAR = 2022
#: When an observation column is recorded, relative to the admission (default ``index``):
#: ``after`` = later in the stay (a maximum, a second value), ``before`` = 30 days earlier.
TIMING: dict[str, Timing] = {
    "nt_probnp_max_stay": "after",
    "height_any": "after",
    "lvef_last_year": "before",
}
#: Columns the feature set derives from others: recomputed, never exported.
DERIVED_COLUMNS = frozenset({"bmi", "egfr_admission"})
#: Days before the index of history conditions and of medication taken before admission.
HISTORY_DAYS = 180
MEDICATION_BEFORE_DAYS = 30
#: At most this many earlier heart-failure records per patient (the count's top bin is 1000).
MAX_PREVIOUS_RECORDS = 100
#: ICD-10 code of the heart-failure diagnoses written (primary and earlier ones).
HF_CODE = "I50.9"
READMISSION_STAY_DAYS = 3

_META = orjson.dumps(
    {"tag": [{"system": SYNTHETIC_TAG_SYSTEM, "code": "synthetic", "display": "synthetic data"}]}
).decode()
_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"
_CLINICAL = (
    f'"clinicalStatus":{{"coding":[{{"system":"{_TERMINOLOGY}/condition-clinical",'
    '"code":"active"}]},'
    f'"verificationStatus":{{"coding":[{{"system":"{_TERMINOLOGY}/condition-ver-status",'
    '"code":"confirmed"}]}'
)
_DAY = 86_400
_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


class ExportError(DomainError):
    """A synthetic table that cannot be written as resources of the data model."""


@dataclass(frozen=True)
class Rows:
    """What every resource of a row needs: identifiers and times (epoch seconds, UTC)."""

    patient: list[str]
    index: IntArray
    end: IntArray  # discharge (the index when the stay is unknown)
    has_end: BoolArray


# -- small vectorised helpers -------------------------------------------------------------


def _floats(table: pa.Table, name: str) -> tuple[FloatArray, BoolArray]:
    """(values as float64, valid mask) of a numeric or boolean column."""
    col = table.column(name)
    valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_boolean(col.type):
        col = col.cast(pa.int8())
    values = pc.fill_null(col.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64), valid


def _flags(table: pa.Table, name: str) -> BoolArray:
    values, valid = _floats(table, name)
    out: BoolArray = valid & (values != 0)
    return out


def _datetimes(seconds: IntArray) -> list[str]:
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    return [f"{s}+00:00" for s in text.tolist()]


def _dates(seconds: IntArray) -> list[str]:
    return list(np.datetime_as_string(seconds.astype("datetime64[s]"), unit="D").tolist())


def _number(x: float) -> str:
    return repr(float(x))


def _ref(kind: str, ident: str) -> str:
    return f'{{"reference":"{kind}/{ident}"}}'


# -- code choices -------------------------------------------------------------------------


def _set_codes(v: Variable, system: str) -> list[str]:
    return [c for cs in v.codes if cs.system == system for c in cs.codes if "-" not in c]


def specific_code(v: Variable, others: Iterable[Variable], system: str) -> str:
    """The code of ``v``'s set (in ``system``) that falls in the fewest of the ``others``.

    A history flag or medication group written with it then sets as few other columns as the
    code sets allow (``C09AA`` is a RAS inhibitor only; every ACE inhibitor is also one).

    Raises
    ------
    ExportError
        When ``v`` has no code in ``system``.
    """
    candidates = _set_codes(v, system)
    if not candidates:
        raise ExportError(
            f"variable {v.id!r} has no {system} code to write it with", rule="export-code"
        )
    rivals = [o for o in others if o.id != v.id]

    def overlap(code: str) -> int:
        return sum(1 for o in rivals if o.matches(system, code))

    return min(candidates, key=overlap)  # min keeps the first of equals


@cache
def _dictionary() -> DataDictionary:
    return load_dictionary()


# -- rows ---------------------------------------------------------------------------------


def _rows(table: pa.Table, rng: np.random.Generator, prefix: str) -> Rows:
    n = table.num_rows
    origin = int((date(INDEX_YEAR, 1, 1) - date(1970, 1, 1)).days) * _DAY
    day = rng.integers(0, 365, size=n)
    minute = rng.integers(7 * 60, 20 * 60, size=n)  # admitted between 07:00 and 20:00
    index = origin + day * _DAY + minute * 60
    if "length_of_stay" in table.column_names:
        los, has_end = _floats(table, "length_of_stay")
        los = np.clip(los, 0.0, None)
    else:
        los, has_end = np.zeros(n), np.zeros(n, dtype=bool)
    end = index + np.where(has_end, np.round(los * _DAY), 0).astype(np.int64)
    return Rows([f"{prefix}-{i + 1}" for i in range(n)], index, end, has_end)


def _birth_dates(
    age: FloatArray, valid: BoolArray, index: IntArray, rng: np.random.Generator
) -> list[str]:
    """Birth dates giving exactly ``age`` full years at the index date."""
    idx_day = index.astype("datetime64[s]").astype("datetime64[D]")
    year = idx_day.astype("datetime64[Y]")
    day_of_year = (idx_day - year.astype("datetime64[D]")).astype(np.int64)
    birthday = (year - np.where(valid, age, 0).astype(np.int64)).astype("datetime64[D]")
    # the anniversary of the index day in the birth year, then up to 364 days before it
    born = birthday + day_of_year - rng.integers(0, 365, size=age.size)
    return list(np.datetime_as_string(born, unit="D").tolist())


def _death_days(table: pa.Table) -> tuple[FloatArray, BoolArray]:
    """Days from the index to death: the earliest death outcome that happened."""
    n = table.num_rows
    days = np.full(n, np.inf)
    for col in table.column_names:
        paired = f"{col}_days" in table.column_names
        if col.startswith("death_") and not col.endswith("_days") and paired:
            event = _flags(table, col)
            d, ok = _floats(table, f"{col}_days")
            days = np.where(event & ok & (d < days), d, days)
    died = np.isfinite(days)
    return np.where(died, days, 0.0), died


# -- resources ----------------------------------------------------------------------------


def _patients(
    table: pa.Table, rows: Rows, rng: np.random.Generator
) -> tuple[list[str], IntArray, BoolArray]:
    n = table.num_rows
    genders: list[str | None] = [None] * n
    if "sex" in table.column_names:
        allowed = {"male", "female", "other", "unknown"}
        genders = [g if g in allowed else None for g in table.column("sex").to_pylist()]
    births: list[str | None] = [None] * n
    if "age" in table.column_names:
        age, ok = _floats(table, "age")
        born = _birth_dates(age, ok, rows.index, rng)
        births = [b if v else None for b, v in zip(born, ok.tolist(), strict=True)]
    ddays, died = _death_days(table)
    death_t = rows.index + np.round(ddays).astype(np.int64) * _DAY
    deaths = _dates(death_t)
    out = []
    for i, pid in enumerate(rows.patient):
        g = f',"gender":"{genders[i]}"' if genders[i] else ""
        b = f',"birthDate":"{births[i]}"' if births[i] else ""
        d = f',"deceasedDateTime":"{deaths[i]}"' if died[i] else ""
        out.append(f'{{"resourceType":"Patient","id":"{pid}","meta":{_META}{g}{b}{d}}}')
    return out, death_t, died


def _encounter(ident: str, pid: str, start: str, end: str | None) -> str:
    period = f'{{"start":"{start}"' + (f',"end":"{end}"}}' if end else "}")
    return (
        f'{{"resourceType":"Encounter","id":"{ident}","meta":{_META},"status":"completed",'
        f'"class":[{{"coding":[{{"system":"{codesys.V3_ACT_CODE}","code":"IMP"}}]}}],'
        f'"subject":{_ref("Patient", pid)},"actualPeriod":{period}}}'
    )


def _condition(
    ident: str, pid: str, code: str, when: str, encounter: str | None, primary: bool | None
) -> str:
    ext = (
        f'"extension":[{{"url":"{codesys.PRIMARY_DIAGNOSIS_EXT}","valueBoolean":'
        f"{'true' if primary else 'false'}}}],"
        if primary is not None
        else ""
    )
    enc = f',"encounter":{_ref("Encounter", encounter)}' if encounter else ""
    date_key = "recordedDate" if encounter else "onsetDateTime"
    return (
        f'{{"resourceType":"Condition","id":"{ident}","meta":{_META},{ext}{_CLINICAL},'
        f'"code":{{"coding":[{{"system":"{codesys.ICD10}","code":"{code}"}}]}},'
        f'"subject":{_ref("Patient", pid)}{enc},"{date_key}":"{when}"}}'
    )


def _admissions(rows: Rows) -> tuple[list[str], list[str]]:
    """The index Encounters and their primary heart-failure diagnoses."""
    starts = _datetimes(rows.index)
    # dated at discharge, after the index, as hospitals record them (not in the history)
    ends = _datetimes(np.maximum(rows.end, rows.index + 60))
    encounters, conditions = [], []
    for i, pid in enumerate(rows.patient):
        enc = f"{pid}-adm"
        encounters.append(_encounter(enc, pid, starts[i], ends[i] if rows.has_end[i] else None))
        conditions.append(_condition(f"{pid}-dx", pid, HF_CODE, ends[i], enc, primary=True))
    return encounters, conditions


def _readmissions(
    table: pa.Table, rows: Rows, death_t: IntArray, died: BoolArray
) -> tuple[list[str], list[str]]:
    """One later heart-failure admission at the earliest readmission outcome."""
    days = np.full(table.num_rows, np.inf)
    for col in table.column_names:
        if col.startswith("hf_readmission_") and not col.endswith("_days"):
            if f"{col}_days" not in table.column_names:
                continue
            d, ok = _floats(table, f"{col}_days")
            days = np.where(_flags(table, col) & ok & (d < days), d, days)
    has = np.isfinite(days)
    start = rows.end + np.maximum(np.round(np.where(has, days, 0)), 1).astype(np.int64) * _DAY
    has &= ~died | (start < death_t + _DAY)
    pick = np.flatnonzero(has)
    s, e = _datetimes(start[pick]), _datetimes(start[pick] + READMISSION_STAY_DAYS * _DAY)
    encounters, conditions = [], []
    for k, i in enumerate(pick.tolist()):
        pid = rows.patient[i]
        enc = f"{pid}-readm"
        encounters.append(_encounter(enc, pid, s[k], e[k]))
        conditions.append(_condition(f"{pid}-readm-dx", pid, HF_CODE, e[k], enc, primary=True))
    return encounters, conditions


def _value_json(v: Variable, col: ColumnDomain, values: FloatArray) -> list[str] | None:
    """The ``value[x]`` of each row's Observation, or None for a column not written."""
    if v.value_type in ("quantity", "decimal") and v.unit:
        unit = orjson.dumps(v.unit).decode()
        return [
            f'"valueQuantity":{{"value":{_number(x)},"unit":{unit},'
            f'"system":"{codesys.UCUM}","code":{unit}}}'
            for x in values.tolist()
        ]
    if v.value_type == "integer":
        return [f'"valueInteger":{round(x)}' for x in values.tolist()]
    if v.value_type == "boolean":
        return [f'"valueBoolean":{"true" if x else "false"}' for x in values.tolist()]
    if v.value_type == "code" and v.answers:
        by_value: dict[float, str] = {}
        for a in v.answers:  # the first answer of each ordinal (LOINC before SNOMED CT)
            if isinstance(a.value, int | float):
                coding = orjson.dumps({"coding": [{"system": a.system, "code": a.code}]})
                by_value.setdefault(float(a.value), coding.decode())
        missing = set(values.tolist()) - set(by_value)
        if missing:
            raise ExportError(
                f"column {col.name!r}: values {sorted(missing)} are not ordinals of the "
                f"answers of {v.id!r}",
                rule="export-value",
            )
        return [f'"valueCodeableConcept":{by_value[x]}' for x in values.tolist()]
    return None


def _observations(table: pa.Table, domain: Domain, rows: Rows, d: DataDictionary) -> list[str]:
    out: list[str] = []
    times = {
        "index": _datetimes(rows.index),
        "after": _datetimes(rows.index + np.minimum((rows.end - rows.index) // 2, _DAY)),
        "before": _datetimes(rows.index - MEDICATION_BEFORE_DAYS * _DAY),
    }
    for j, col in enumerate(domain.columns):
        v = d[col.variable] if col.variable and col.variable in d else None
        if v is None or v.resource != "Observation" or col.name in DERIVED_COLUMNS:
            continue
        if col.name not in table.column_names:
            continue
        values, valid = _floats(table, col.name)
        pick = np.flatnonzero(valid)
        value = _value_json(v, col, values[pick])
        if value is None:
            continue
        system, code = v.codes[0].system, v.codes[0].codes[0]
        coding = orjson.dumps({"coding": [{"system": system, "code": code}]}).decode()
        category = (
            f'"category":[{{"coding":[{{"system":"{_OBS_CATEGORY}",'
            f'"code":"{v.observation_category}"}}]}}],'
            if v.observation_category
            else ""
        )
        when = times[TIMING.get(col.name, "index")]
        head = '{"resourceType":"Observation","id":"'
        tail = f'","meta":{_META},"status":"final",{category}"code":{coding},'
        for k, i in enumerate(pick.tolist()):
            pid = rows.patient[i]
            out.append(
                f'{head}{pid}-c{j}{tail}"subject":{_ref("Patient", pid)},'
                f'"encounter":{_ref("Encounter", pid + "-adm")},'
                f'"effectiveDateTime":"{when[i]}",{value[k]}}}'
            )
    return out


def _flag_columns(
    table: pa.Table, domain: Domain, d: DataDictionary, resource: str
) -> list[tuple[int, ColumnDomain, Variable]]:
    """(position, column, variable) of the table's flags of variables recorded as ``resource``."""
    out = []
    for j, c in enumerate(domain.columns):
        v = d[c.variable] if c.variable is not None and c.variable in d else None
        wanted = c.kind == "boolean" and v is not None and v.resource == resource
        if wanted and v is not None and c.name in table.column_names:
            out.append((j, c, v))
    return out


def _histories(table: pa.Table, domain: Domain, rows: Rows, d: DataDictionary) -> list[str]:
    """Conditions for true ``hx_*`` flags, and the earlier heart-failure records."""
    flags = _flag_columns(table, domain, d, "Condition")
    phenotypes = [v for _, _, v in flags]
    when = _dates(rows.index - HISTORY_DAYS * _DAY)
    out: list[str] = []
    for j, c, v in flags:
        code = specific_code(v, phenotypes, codesys.ICD10)
        for i in np.flatnonzero(_flags(table, c.name)).tolist():
            pid = rows.patient[i]
            out.append(_condition(f"{pid}-c{j}", pid, code, when[i], None, None))
    if "previous_hf_records" in table.column_names:
        out.extend(_previous_records(table, rows))
    return out


def _previous_records(table: pa.Table, rows: Rows) -> list[str]:
    count, ok = _floats(table, "previous_hf_records")
    k = np.where(ok, np.clip(np.round(count), 0, MAX_PREVIOUS_RECORDS), 0).astype(np.int64)
    first = np.full(table.num_rows, 365.0)
    if "days_since_first_hf" in table.column_names:
        days, dok = _floats(table, "days_since_first_hf")
        first = np.where(dok & (days >= 1), days, first)
    owner = np.repeat(np.arange(table.num_rows), k)
    nth = np.arange(owner.size) - np.repeat(np.cumsum(k) - k, k)
    # the first record `first` days before the index, the others evenly up to a day before it
    span = np.maximum(first[owner] - 1, 0)
    ago = first[owner] - span * nth / np.maximum(k[owner], 1)
    when = _dates(rows.index[owner] - np.round(ago * _DAY).astype(np.int64))
    return [
        _condition(f"{rows.patient[i]}-hf{j}", rows.patient[i], HF_CODE, when[m], None, None)
        for m, (i, j) in enumerate(zip(owner.tolist(), nth.tolist(), strict=True))
    ]


def _medications(table: pa.Table, domain: Domain, rows: Rows, d: DataDictionary) -> list[str]:
    cols = _flag_columns(table, domain, d, "MedicationStatement")
    groups = list({v.id: v for _, _, v in cols}.values())
    at_index = _datetimes(rows.index)
    before = _dates(rows.index - MEDICATION_BEFORE_DAYS * _DAY)
    out: list[str] = []
    for j, c, v in cols:
        code = specific_code(v, groups, codesys.ATC)
        stay = c.name.startswith("med_stay_")
        when = at_index if stay else before
        head = '{"resourceType":"MedicationStatement","id":"'
        med = orjson.dumps({"concept": {"coding": [{"system": codesys.ATC, "code": code}]}})
        tail = f'","meta":{_META},"status":"recorded","medication":{med.decode()},'
        for i in np.flatnonzero(_flags(table, c.name)).tolist():
            pid = rows.patient[i]
            enc = f',"encounter":{_ref("Encounter", pid + "-adm")}' if stay else ""
            out.append(
                f'{head}{pid}-c{j}{tail}"subject":{_ref("Patient", pid)}{enc},'
                f'"effectiveDateTime":"{when[i]}"}}'
            )
    return out


def build_resources(
    table: pa.Table, domain: Domain, *, seed: int = 0, id_prefix: str = "synth"
) -> dict[str, list[str]]:
    """The FHIR R5 resources (JSON text) of a synthetic analysis table, by resource type.

    Parameters
    ----------
    table : pyarrow.Table
        Synthetic rows, one admission each; columns of ``domain`` (missing ones are skipped).
    domain : Domain
        The table's domain: its columns' ``variable`` say which data-model variable they hold.
    seed : int
        Seed of the synthetic index dates and birth days.
    id_prefix : str
        Patients are ``<id_prefix>-1`` … ``<id_prefix>-<rows>``.

    Raises
    ------
    ExportError
        For a table without ``age`` or with values the data model cannot write.
    """
    if "age" not in table.column_names:
        raise ExportError(
            "the synthetic table has no 'age' column: the cohort needs adults", rule="export-column"
        )
    if not id_prefix.replace("-", "").isalnum():
        raise ExportError(f"id_prefix must be letters, digits and '-', got {id_prefix!r}",
                          rule="export-id")  # fmt: skip
    d = _dictionary()
    rng = np.random.default_rng(seed)
    rows = _rows(table, rng, id_prefix)
    patients, death_t, died = _patients(table, rows, rng)
    encounters, diagnoses = _admissions(rows)
    re_enc, re_dx = _readmissions(table, rows, death_t, died)
    return {
        "Patient": patients,
        "Encounter": encounters + re_enc,
        "Condition": diagnoses + re_dx + _histories(table, domain, rows, d),
        "Observation": _observations(table, domain, rows, d),
        "MedicationStatement": _medications(table, domain, rows, d),
    }


def export_fhir(
    table: pa.Table,
    domain: Domain,
    out_dir: str | Path,
    *,
    seed: int = 0,
    id_prefix: str = "synth",
) -> dict[str, int]:
    """Write the resources of a synthetic table as NDJSON, one file per resource type.

    Returns
    -------
    dict
        Resources written per type (``<out_dir>/<Type>.ndjson``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for rtype, lines in build_resources(table, domain, seed=seed, id_prefix=id_prefix).items():
        (out / f"{rtype}.ndjson").write_text(
            "\n".join(lines) + ("\n" if lines else ""), encoding="utf-8"
        )
        counts[rtype] = len(lines)
    return counts


def to_store(
    table: pa.Table,
    domain: Domain,
    store_path: str | Path,
    *,
    seed: int = 0,
    id_prefix: str = "synth",
) -> ImportReport:
    """Export a synthetic table into a site store through :meth:`SiteStore.import_fhir`.

    The resources are validated like any import (structure, the data model's profile
    rules); the report says how many were stored and quarantined.
    """
    with tempfile.TemporaryDirectory(prefix="cardiosynth-") as tmp:
        export_fhir(table, domain, tmp, seed=seed, id_prefix=id_prefix)
        with SiteStore(store_path) as store:
            return store.import_fhir(tmp, fhir_version="R5")

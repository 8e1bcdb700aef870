"""A hospital's conventions: file layout, column names, local codes, units, formats, language.

Each demo hospital is described by ``data/<name>/profile.yaml`` (conventions),
``data/<name>/notes.yaml`` (phrases of its clinical notes) and ``data/<name>/mappings/``
(the mapping files and concept maps its data steward wrote). :func:`load_profile` reads and
validates the first two.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cardiobox.demo.hospitals.clinical import DRUG_CLASSES, DRUG_KEYS, DX_KEYS, LAB_ANALYTES
from cardiobox.demo.hospitals.cohort import CohortParams

#: The demo hospitals, in a fixed order (their order also seeds their random streams).
HOSPITALS = ("hospital_es", "hospital_nl", "hospital_se")

#: The extract's tables and the columns (by role) each must name.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("patient", "sex", "birth_date", "death_date"),
    "encounters": (
        "encounter",
        "patient",
        "kind",
        "start",
        "end",
        "admit_source",
        "discharge",
        "department",
    ),
    "diagnoses": ("encounter", "patient", "position", "code", "description", "date"),
    "labs": ("result", "patient", "encounter", "time", "code", "name", "value", "unit"),
    "vitals": (
        "patient",
        "encounter",
        "time",
        "sbp",
        "dbp",
        "hr",
        "spo2",
        "temp",
        "weight",
        "height",
    ),
    "echo": ("patient", "encounter", "time", "lvef", "lvedd", "tapse", "lavi"),
    "ecg": ("patient", "encounter", "time", "rhythm", "hr", "pr", "qrs", "qtc", "lbbb"),
    "nyha": ("patient", "encounter", "time", "moment", "nyha"),
    "medications": (
        "patient",
        "encounter",
        "start",
        "end",
        "code",
        "name",
        "dose",
        "dose_unit",
        "frequency",
    ),
    "notes": ("note", "patient", "encounter", "time", "type", "text"),
}
TABLES = tuple(TABLE_COLUMNS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvStyle(_Strict):
    """How the hospital writes delimited text."""

    delimiter: str
    decimal: Literal[".", ","]
    encoding: Literal["utf-8", "latin-1"]
    newline: Literal["\n", "\r\n"] = "\n"
    extension: str = "csv"


class Formats(_Strict):
    """strftime formats of date-times and dates."""

    datetime: str
    date: str


class IdStyle(_Strict):
    """Local identifiers: a prefix and a zero-padded number of ``width`` digits."""

    prefix: str = ""
    width: int = Field(ge=4, le=12)


class Ids(_Strict):
    """Local identifier styles."""

    patient: IdStyle
    encounter: IdStyle
    result: IdStyle
    note: IdStyle


class Table(_Strict):
    """A file of the extract: its name (without extension) and its column names by role."""

    file: str = Field(pattern=r"^[a-z0-9_]+$")
    columns: dict[str, str]


class LabTest(_Strict):
    """A local laboratory test: code, name, unit and how values are printed.

    ``factor`` converts the canonical unit into the local one (local = canonical x factor);
    ``low``/``high`` give the range of values of tests the generator does not model (the
    tests missing from the concept map).
    """

    code: str
    name: str
    unit: str
    factor: float = 1.0
    decimals: int = Field(default=0, ge=0, le=3)
    low: float | None = None
    high: float | None = None


class Codes(_Strict):
    """Local codes and labels, by meaning."""

    sex: dict[Literal["male", "female"], str]
    kind: dict[Literal["inpatient", "outpatient"], str]
    admit_source: list[str] = Field(min_length=4, max_length=4)
    discharge: list[str] = Field(min_length=4, max_length=4)
    department: dict[Literal["inpatient", "outpatient"], str]
    moment: list[str] = Field(min_length=3, max_length=3)
    nyha: list[str] = Field(min_length=4, max_length=4)
    rhythm: dict[Literal["sinus", "af"], str]
    yes_no: dict[Literal["yes", "no"], str]
    note_type: dict[Literal["discharge", "visit"], str]
    position: Literal["number", "main_flag"] = "number"
    main_flag: dict[Literal["main", "other"], str] | None = None
    frequency: dict[int, str]
    dose_unit: str = "mg"


class Profile(_Strict):
    """Everything that makes one demo hospital's extract its own."""

    name: str
    number: int = Field(ge=1)
    title: str
    city: str
    country: str
    language: str
    timezone: str
    cohort: dict[str, Any] = Field(default_factory=dict)
    csv: CsvStyle
    formats: Formats
    ids: Ids
    tables: dict[str, Table]
    codes: Codes
    diagnosis_coding: Literal["icd10_dots", "icd10_no_dots", "snomed"]
    medication_coding: Literal["atc", "local"]
    labs: dict[str, LabTest]
    unknown_labs: list[LabTest] = Field(min_length=1)
    lvedd: LabTest
    drug_names: dict[str, str]
    drug_codes: dict[str, str] = Field(default_factory=dict)
    drug_preferences: dict[str, dict[str, float]]
    vka_share: float = Field(ge=0, le=1)
    diagnosis_names: dict[str, str]

    @model_validator(mode="after")
    def _complete(self) -> Profile:
        missing_tables = set(TABLES) - set(self.tables)
        if missing_tables:
            raise ValueError(f"tables missing: {sorted(missing_tables)}")
        for name, table in self.tables.items():
            need = set(TABLE_COLUMNS.get(name, ()))
            lacking = need - set(table.columns)
            if lacking:
                raise ValueError(f"table {name!r} lacks columns for {sorted(lacking)}")
        if set(self.labs) != set(LAB_ANALYTES):
            raise ValueError(f"labs must be exactly {LAB_ANALYTES}")
        codes = [t.code for t in self.labs.values()] + [t.code for t in self.unknown_labs]
        if len(set(codes)) != len(codes):
            raise ValueError("local laboratory codes must be unique")
        for t in self.unknown_labs:
            if t.low is None or t.high is None:
                raise ValueError(f"unknown lab {t.code!r} needs low and high")
        missing = set(DRUG_KEYS) - set(self.drug_names)
        if missing:
            raise ValueError(f"drug names missing: {sorted(missing)}")
        if self.medication_coding == "local" and set(DRUG_KEYS) - set(self.drug_codes):
            raise ValueError("a hospital with local medication codes needs drug_codes")
        unknown = set(self.drug_preferences) - set(DRUG_CLASSES)
        if unknown:
            raise ValueError(f"unknown drug classes in drug_preferences: {sorted(unknown)}")
        for prefs in self.drug_preferences.values():
            bad = set(prefs) - set(DRUG_KEYS)
            if bad:
                raise ValueError(f"unknown drugs in drug_preferences: {sorted(bad)}")
        dx_needed = set(DX_KEYS)
        if self.diagnosis_coding == "snomed":
            dx_needed -= {"hhd_hf", "hkd_hf", "diabetes2_renal"}
        if dx_needed - set(self.diagnosis_names):
            raise ValueError(
                f"diagnosis names missing: {sorted(dx_needed - set(self.diagnosis_names))}"
            )
        if self.codes.position == "main_flag" and not self.codes.main_flag:
            raise ValueError("codes.position 'main_flag' needs codes.main_flag")
        return self

    def cohort_params(self) -> CohortParams:
        """The hospital's case mix."""
        params = dict(self.cohort)
        if "phenotype_shares" in params:
            params["phenotype_shares"] = tuple(params["phenotype_shares"])
        return CohortParams(**params)

    def file_name(self, table: str) -> str:
        """The file name of ``table`` in the extract folder."""
        return f"{self.tables[table].file}.{self.csv.extension}"

    def column(self, table: str, role: str) -> str:
        """The local name of column ``role`` of ``table``."""
        return self.tables[table].columns[role]


def data_dir(name: str) -> Path:
    """The packaged data folder of hospital ``name``."""
    return Path(str(resources.files("cardiobox.demo.hospitals") / "data" / name))


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@cache
def load_profile(name: str) -> Profile:
    """Read and validate the profile of hospital ``name`` (one of :data:`HOSPITALS`).

    Raises
    ------
    KeyError
        If ``name`` is not a demo hospital.
    """
    if name not in HOSPITALS:
        raise KeyError(f"unknown demo hospital {name!r}; choose one of {', '.join(HOSPITALS)}")
    return Profile.model_validate(_read_yaml(data_dir(name) / "profile.yaml"))


@cache
def load_phrases(name: str) -> dict[str, Any]:
    """The phrase book of hospital ``name``'s clinical notes (``notes.yaml``)."""
    data = _read_yaml(data_dir(name) / "notes.yaml")
    if not isinstance(data, dict):
        raise ValueError(f"{name}/notes.yaml must be a mapping")
    return data

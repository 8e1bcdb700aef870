"""The example mappings under examples/: they validate, and they load their real data fully.

The UCI Heart Disease files (four hospitals) and the heart failure clinical records are
loaded into fresh site stores; every row must be accounted for, and spot checks compare
stored resources with the source rows.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from cardiobox.cdm import load_dictionary
from cardiobox.cdm.codes import canonical_system
from cardiobox.ingest.engine import run_mapping
from cardiobox.ingest.mapping import Mapping, load_mapping
from cardiobox.ingest.pseudonym import load_or_create_key

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# Mappings are the YAML files that say so (cohorts and feature sets live beside them).
MAPPINGS = sorted(
    p for p in EXAMPLES.glob("*/*.yaml") if "cardiobox_mapping:" in p.read_text(encoding="utf-8")
)
UCI_SITES = {"cleveland": 303, "hungarian": 294, "switzerland": 123, "va": 200}
UCI_COLUMNS = [
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak",
    "slope", "ca", "thal", "num",
]  # fmt: skip
UCI = EXAMPLES / "uci_heart_disease"
HF_MAPPING = EXAMPLES / "heart_failure" / "records.yaml"
HF_ROWS = 299
CARDIOBOX = "https://cardiobox.org/fhir/CodeSystem/cardiobox"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


# ------------------------------------------------------------------ static checks (no engine)


def test_examples_found() -> None:
    names = {_id(p) for p in MAPPINGS}
    assert {f"uci_heart_disease/{s}.yaml" for s in UCI_SITES} <= names
    assert "heart_failure/records.yaml" in names


@pytest.mark.parametrize("path", MAPPINGS, ids=_id)
def test_mapping_loads(path: Path) -> None:
    mapping = load_mapping(path)
    assert mapping.source.path is not None
    assert (path.parent / mapping.source.path).is_file(), "source.path must point at data/"
    assert mapping.source.path.startswith("../../data/")
    for spec in mapping.concept_maps.values():
        assert spec.file is not None and (path.parent / spec.file).is_file()


@pytest.mark.parametrize("path", MAPPINGS, ids=_id)
def test_variables_exist_and_maps_give_their_answers(path: Path) -> None:
    """Every variable named is in the dictionary, and every concept-map target used for a
    coded value is one of that variable's answers."""
    d = load_dictionary()
    mapping = load_mapping(path)
    for block in mapping.resources:
        for _suffix, fields in block.instances():
            if fields.variable is None:
                continue
            assert fields.variable in d, fields.variable
            var = d[fields.variable]
            value = fields.value
            assert value is not None
            if var.value_type == "quantity":
                assert fields.unit is not None, (block.id, fields.variable)
            if value.map:
                answers = {(a.system, a.code) for a in var.answers}
                targets = _map_targets(path, mapping, value.map)
                assert targets, value.map
                assert set(targets.values()) <= answers, (fields.variable, targets)
            elif value.const is not None and var.value_type == "code":
                assert str(value.const) in {a.code for a in var.answers}


def _map_targets(path: Path, mapping: Mapping, name: str) -> dict[str, tuple[str, str]]:
    spec = mapping.concept_maps[name]
    assert spec.file is not None
    with (path.parent / spec.file).open(encoding="utf-8", newline="") as fh:
        return {
            row["local_code"]: (canonical_system(row["system"]), row["code"])
            for row in csv.DictReader(fh)
        }


def test_uci_sites_share_one_structure() -> None:
    """The four hospital mappings differ only in name, description, file and patient prefix."""
    dumps = {}
    for site in UCI_SITES:
        m = load_mapping(UCI / f"{site}.yaml")
        assert m.name == f"uci-heart-{site}"
        assert m.source.path == f"../../data/uci_heart_disease/processed.{site}.data"
        assert m.source.null_values == ["?"]
        assert m.source.header is False and m.source.columns == UCI_COLUMNS
        assert m.patient.expr == f"'{site}-' || _row"
        dumps[site] = m.model_dump(exclude={"name", "description", "source", "patient"})
    first = dumps["cleveland"]
    assert all(dump == first for dump in dumps.values())


def test_uci_maps_cover_every_code_in_the_data() -> None:
    """Every code written in a coded column of the four files is in its concept map."""
    path = UCI / "cleveland.yaml"
    m = load_mapping(path)
    column_map = {
        "sex": "sex",
        "cp": "chest_pain_type",
        "restecg": "resting_ecg",
        "slope": "st_slope",
        "thal": "thallium",
        "num": "angiographic_status",
    }
    for site in UCI_SITES:
        for row in _uci_rows(site):
            for column, name in column_map.items():
                value = row[column]
                if value == "?":
                    continue
                code = value.removesuffix(".0")
                assert code in _map_targets(path, m, name), (site, column, value)


# ---------------------------------------------------------------------------- source rows


def _uci_rows(site: str) -> list[dict[str, str]]:
    path = ROOT / "data" / "uci_heart_disease" / f"processed.{site}.data"
    with path.open(encoding="utf-8", newline="") as fh:
        return [dict(zip(UCI_COLUMNS, row, strict=True)) for row in csv.reader(fh)]


def _hf_rows() -> list[dict[str, str]]:
    path = ROOT / "data" / "heart_failure_clinical_records"
    with (path / "heart_failure_clinical_records_dataset.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _uci_present(row: dict[str, str], column: str) -> bool:
    """Whether a UCI value is present: not '?', and not the 0 that stands for a missing
    cholesterol or resting blood pressure."""
    value = row[column]
    if value == "?":
        return False
    return not (column in ("chol", "trestbps") and float(value) == 0)


def test_data_files_have_the_documented_rows() -> None:
    for site, n in UCI_SITES.items():
        rows = _uci_rows(site)
        assert len(rows) == n
    assert len(_hf_rows()) == HF_ROWS
    # The zeros the mappings read as missing values.
    zeros = Counter(
        (site, column)
        for site in UCI_SITES
        for row in _uci_rows(site)
        for column in ("chol", "trestbps")
        if row[column] != "?" and float(row[column]) == 0
    )
    assert zeros == {("switzerland", "chol"): 123, ("va", "chol"): 49, ("va", "trestbps"): 1}


# ------------------------------------------------------------------------ loads into stores


class Loaded:
    """A mapping loaded into a fresh store, with helpers to read it back."""

    def __init__(self, name: str, report: Any, store: Path, key_file: Path):
        self.site = name
        self.report = report
        self.store = store
        self.key = load_or_create_key(key_file, create=False)
        self.resources = self._read()

    def _read(self) -> list[dict[str, Any]]:
        con = duckdb.connect(str(self.store), read_only=True)
        try:
            rows = con.execute("SELECT resource FROM resources").fetchall()
        finally:
            con.close()
        return [orjson.loads(r[0]) for r in rows]

    def patient_id(self, local: str) -> str:
        return self.key.pseudonym("Patient", local)

    def of_patient(self, local: str) -> list[dict[str, Any]]:
        pid = self.patient_id(local)
        return [
            r
            for r in self.resources
            if (r["resourceType"] == "Patient" and r["id"] == pid)
            or r.get("subject", {}).get("reference") == f"Patient/{pid}"
        ]

    def observation(self, local: str, system: str, code: str) -> dict[str, Any]:
        hits = [
            r
            for r in self.of_patient(local)
            if r["resourceType"] == "Observation"
            and any(c["system"] == system and c["code"] == code for c in r["code"]["coding"])
        ]
        assert len(hits) == 1, (local, code, len(hits))
        return hits[0]

    def count(self, resource_type: str) -> int:
        return sum(1 for r in self.resources if r["resourceType"] == resource_type)


class Stores:
    """Loads each example mapping once per test module into its own fresh store."""

    def __init__(self, factory: pytest.TempPathFactory):
        self.factory = factory
        self.loaded: dict[str, Loaded] = {}

    def __getitem__(self, name: str) -> Loaded:
        if name not in self.loaded:
            mapping = HF_MAPPING if name == "heart_failure" else UCI / f"{name}.yaml"
            folder = self.factory.mktemp(name)
            key_file = folder / "site.key"
            key_file.write_text(KEY_HEX + "\n", encoding="ascii")
            store = folder / f"{name}.duckdb"
            report = run_mapping(mapping, store, key_file=key_file)
            self.loaded[name] = Loaded(name, report, store, key_file)
        return self.loaded[name]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    return Stores(tmp_path_factory)


@pytest.fixture(scope="module", params=list(UCI_SITES))
def uci(request: pytest.FixtureRequest, stores: Stores) -> Loaded:
    return stores[request.param]


@pytest.fixture(scope="module")
def hf(stores: Stores) -> Loaded:
    return stores["heart_failure"]


def test_uci_every_row_loaded(uci: Loaded) -> None:
    r = uci.report
    assert r.rows_read == UCI_SITES[uci.site]
    assert r.rows_read == r.rows_loaded + r.rows_quarantined
    assert r.rows_quarantined == 0, r.quarantine_by_rule
    assert r.quarantine_by_rule == {}


def test_uci_one_resource_per_present_value(uci: Loaded) -> None:
    """One Patient per row and one Observation per present value: '?' and the zeros that
    stand for missing cholesterol or blood pressure make none."""
    rows = _uci_rows(uci.site)
    expected = sum(_uci_present(row, c) for row in rows for c in UCI_COLUMNS if c != "sex")
    assert uci.count("Patient") == len(rows)
    assert uci.count("Observation") == expected
    assert len(uci.resources) == len(rows) + expected


def test_uci_duplicate_rows_stay_two_patients(uci: Loaded) -> None:
    """Hungary and VA each hold one pair of identical rows: two patients, each with their own
    Observations."""
    site = uci.site
    seen: dict[tuple[str, ...], int] = {}
    duplicates = 0
    for line, row in enumerate(_uci_rows(site), start=1):
        key = tuple(row.values())
        if key in seen:
            duplicates += 1
            first = uci.of_patient(f"{site}-{seen[key]}")
            second = uci.of_patient(f"{site}-{line}")
            assert len(first) == len(second) > 1
            assert {r["id"] for r in first}.isdisjoint({r["id"] for r in second})
        seen[key] = line
    assert duplicates == {"hungarian": 1, "va": 1}.get(site, 0)


def _quantity(obs: dict[str, Any]) -> tuple[float, str]:
    q = obs["valueQuantity"]
    assert q["system"] == "http://unitsofmeasure.org"
    return float(q["value"]), q["code"]


def _coding(obs: dict[str, Any]) -> tuple[str, str]:
    c = obs["valueCodeableConcept"]["coding"][0]
    return c["system"], c["code"]


def test_cleveland_first_row(stores: Stores) -> None:
    uci = stores["cleveland"]
    # 63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0
    p = "cleveland-1"
    (patient,) = [r for r in uci.of_patient(p) if r["resourceType"] == "Patient"]
    assert patient["gender"] == "male"
    assert _quantity(uci.observation(p, LOINC, "30525-0")) == (63, "a")
    assert _coding(uci.observation(p, CARDIOBOX, "chest-pain-type")) == (SNOMED, "429559004")
    assert _quantity(uci.observation(p, LOINC, "8480-6")) == (145, "mm[Hg]")
    chol, unit = _quantity(uci.observation(p, LOINC, "14647-2"))
    assert unit == "mmol/L" and chol == pytest.approx(233 / 38.665, abs=1e-3)
    assert uci.observation(p, CARDIOBOX, "fasting-glucose-over-120-mg-dl")["valueBoolean"] is True
    assert _coding(uci.observation(p, CARDIOBOX, "resting-ecg-result")) == (
        CARDIOBOX,
        "resting-ecg-lvh-estes",
    )
    assert _quantity(uci.observation(p, CARDIOBOX, "exercise-max-heart-rate")) == (150, "/min")
    assert uci.observation(p, CARDIOBOX, "exercise-induced-angina")["valueBoolean"] is False
    assert _quantity(uci.observation(p, CARDIOBOX, "exercise-st-depression")) == (2.3, "mm")
    assert _coding(uci.observation(p, CARDIOBOX, "exercise-st-slope")) == (
        CARDIOBOX,
        "st-slope-downsloping",
    )
    assert uci.observation(p, CARDIOBOX, "fluoroscopy-vessel-count")["valueInteger"] == 0
    assert _coding(uci.observation(p, CARDIOBOX, "thallium-stress-result")) == (
        CARDIOBOX,
        "thallium-fixed-defect",
    )
    assert _coding(uci.observation(p, CARDIOBOX, "angiographic-cad-status")) == (
        CARDIOBOX,
        "angiographic-cad-0",
    )
    assert len(uci.of_patient(p)) == 14


def test_switzerland_missing_values_make_nothing(stores: Stores) -> None:
    # line 1: 32,1,1,95,0,?,0,127,0,.7,1,?,?,1 - cholesterol 0 and three '?' are absent.
    uci = stores["switzerland"]
    p = "switzerland-1"
    codes = {
        c["code"]
        for r in uci.of_patient(p)
        if r["resourceType"] == "Observation"
        for c in r["code"]["coding"]
    }
    assert len(codes) == 9
    assert "14647-2" not in codes
    assert not {"fasting-glucose-over-120-mg-dl", "fluoroscopy-vessel-count"} & codes
    assert "thallium-stress-result" not in codes
    assert _quantity(uci.observation(p, CARDIOBOX, "exercise-st-depression")) == (0.7, "mm")
    angiography = uci.observation(p, CARDIOBOX, "angiographic-cad-status")
    assert _coding(angiography) == (CARDIOBOX, "angiographic-cad-1")


def test_va_zero_blood_pressure_and_cholesterol_make_nothing(stores: Stores) -> None:
    uci = stores["va"]
    # line 1: 63,1,4,140,260,0,1,112,1,3,2,?,?,2 - cholesterol 260 mg/dL is present.
    chol, _unit = _quantity(uci.observation("va-1", LOINC, "14647-2"))
    assert chol == pytest.approx(260 / 38.665, abs=1e-3)
    rows = _uci_rows("va")
    for line, row in enumerate(rows, start=1):
        codes = {
            c["code"]
            for r in uci.of_patient(f"va-{line}")
            if r["resourceType"] == "Observation"
            for c in r["code"]["coding"]
        }
        assert ("14647-2" in codes) == _uci_present(row, "chol"), line
        assert ("8480-6" in codes) == _uci_present(row, "trestbps"), line


def test_reload_adds_nothing(stores: Stores, tmp_path: Path) -> None:
    """Loading the same file again (Hungary, with its duplicate rows) changes nothing."""
    loaded = stores["hungarian"]
    key_file = tmp_path / "site.key"
    key_file.write_text(KEY_HEX + "\n", encoding="ascii")
    again = run_mapping(UCI / "hungarian.yaml", loaded.store, key_file=key_file)
    assert again.rows_quarantined == 0
    assert again.resources_created == again.resources_updated == 0
    assert again.resources_unchanged == len(loaded.resources)


def test_hf_every_row_loaded(hf: Loaded) -> None:
    r = hf.report
    assert r.rows_read == HF_ROWS
    assert r.rows_read == r.rows_loaded + r.rows_quarantined
    assert r.rows_quarantined == 0, r.quarantine_by_rule


def test_hf_counts(hf: Loaded) -> None:
    rows = _hf_rows()
    assert hf.count("Patient") == HF_ROWS
    assert hf.count("Encounter") == HF_ROWS
    # seven measurements per patient, one smoking status per smoker
    smokers = sum(r["smoking"] == "1" for r in rows)
    assert hf.count("Observation") == 7 * HF_ROWS + smokers
    flags = sum(
        (r["anaemia"] == "1") + (r["diabetes"] == "1") + (r["high_blood_pressure"] == "1")
        for r in rows
    )
    assert hf.count("Condition") == HF_ROWS + flags
    deaths = [p for p in hf.resources if p["resourceType"] == "Patient" and "deceasedDateTime" in p]
    assert len(deaths) == sum(r["DEATH_EVENT"] == "1" for r in rows) == 96


def test_hf_first_record(hf: Loaded) -> None:
    # line 2: 75,0,582,0,20,1,265000,1.9,130,1,0,4,1
    p = "hf-2"
    (patient,) = [r for r in hf.of_patient(p) if r["resourceType"] == "Patient"]
    assert patient["gender"] == "male"
    assert patient["deceasedDateTime"] == "2015-04-05"  # index date + 4 days
    assert _quantity(hf.observation(p, LOINC, "30525-0")) == (75, "a")
    assert _quantity(hf.observation(p, LOINC, "2157-6")) == (582, "U/L")
    assert _quantity(hf.observation(p, LOINC, "10230-1")) == (20, "%")
    assert _quantity(hf.observation(p, LOINC, "777-3")) == (265, "10*9/L")
    creatinine, unit = _quantity(hf.observation(p, LOINC, "2160-0"))
    assert unit == "umol/L" and creatinine == pytest.approx(1.9 * 88.40, abs=0.05)
    assert _quantity(hf.observation(p, LOINC, "2951-2")) == (130, "mmol/L")
    follow_up = hf.observation(p, CARDIOBOX, "follow-up-duration")
    assert _quantity(follow_up) == (4, "d")
    assert follow_up["effectiveDateTime"] == "2015-04-01"
    conditions = sorted(
        r["code"]["coding"][0]["code"] for r in hf.of_patient(p) if r["resourceType"] == "Condition"
    )
    assert conditions == ["I10", "I50.9"]
    assert not [
        r
        for r in hf.of_patient(p)
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "72166-2"
    ]


def test_hf_survival_can_be_rebuilt(hf: Loaded) -> None:
    """time and DEATH_EVENT come back exactly from the follow-up Observation and the date of
    death (index date + follow-up days)."""
    import datetime as dt

    index = dt.date(2015, 4, 1)
    for line, row in enumerate(_hf_rows(), start=2):
        p = f"hf-{line}"
        days, _unit = _quantity(hf.observation(p, CARDIOBOX, "follow-up-duration"))
        assert days == float(row["time"])
        (patient,) = [r for r in hf.of_patient(p) if r["resourceType"] == "Patient"]
        died = "deceasedDateTime" in patient
        assert died == (row["DEATH_EVENT"] == "1")
        if died:
            death = dt.date.fromisoformat(patient["deceasedDateTime"])
            assert (death - index).days == int(row["time"])

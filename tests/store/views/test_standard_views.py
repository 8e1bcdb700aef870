"""Standard views of the data model on small hand-written R5 resources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from cardiobox.store.views import compile_view
from cardiobox.store.views.conformance import load_resources
from cardiobox.store.views.standard import (
    list_standard_views,
    members,
    run_standard_view,
    standard_view_names,
)

LOINC, SCT, ICD = "http://loinc.org", "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10"
UCUM = "http://unitsofmeasure.org"
ATC = "http://www.whocc.no/atc"

RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-02-03"},
    {"resourceType": "Patient", "id": "p2", "gender": "male", "birthDate": "1941",
     "deceasedDateTime": "2020-05-01T10:00:00Z"},
    {"resourceType": "Patient", "id": "p3", "deceasedBoolean": False},
    {
        "resourceType": "Encounter", "id": "e1", "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "class": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                               "code": "IMP"}]}],
        "actualPeriod": {"start": "2021-03-01T08:00:00+01:00", "end": "2021-03-05T12:00:00+01:00"},
        "length": {"value": 4, "unit": "days", "system": UCUM, "code": "d"},
        "serviceProvider": {"reference": "Organization/h1"},
    },
    {
        "resourceType": "Condition", "id": "c1",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "category": [{"coding": [{"code": "encounter-diagnosis"}]}],
        "code": {"coding": [{"system": ICD, "code": "I50.9", "display": "Heart failure"},
                            {"system": SCT, "code": "84114007"}]},
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
        "onsetDateTime": "2021-03-01", "recordedDate": "2021-03-02",
    },
    {
        "resourceType": "Condition", "id": "c2", "code": {"text": "uncoded"},
        "subject": {"reference": "Patient/p2"}, "onsetPeriod": {"start": "2019-01"},
    },
    {
        "resourceType": "Observation", "id": "o1", "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": "33762-6", "display": "NT-proBNP"}]},
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2021-03-01T09:00:00+01:00",
        "valueQuantity": {"value": 1250.5, "unit": "pg/mL", "system": UCUM, "code": "pg/mL"},
    },
    {
        "resourceType": "Observation", "id": "o2", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "10230-1"}]},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2021-03-02"},
        "valueCodeableConcept": {"coding": [{"system": SCT, "code": "260385009"}]},
    },
    {
        "resourceType": "Observation", "id": "o3", "status": "preliminary",
        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        "subject": {"reference": "Patient/p2"}, "effectiveInstant": "2021-03-03T10:00:00Z",
        "valueQuantity": {"value": 80, "unit": "beats/min"},
    },
    {
        "resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
        "medication": {"concept": {"coding": [{"system": ATC, "code": "C03CA01",
                                               "display": "furosemide"}]}},
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
        "authoredOn": "2021-03-01",
    },
    {
        "resourceType": "MedicationStatement", "id": "ms1", "status": "recorded",
        "medication": {"concept": {"coding": [{"system": ATC, "code": "C07AB07"}]}},
        "subject": {"reference": "Patient/p2"}, "effectivePeriod": {"start": "2020-01-01"},
    },
    {
        "resourceType": "Procedure", "id": "pr1", "status": "completed",
        "code": {"coding": [{"system": SCT, "code": "40701008", "display": "Echocardiography"}]},
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
        "occurrencePeriod": {"start": "2021-03-02T10:00:00Z", "end": "2021-03-02T10:30:00Z"},
    },
    {
        "resourceType": "Procedure", "id": "pr2", "status": "completed",
        "code": {"coding": [{"system": SCT, "code": "232717009"}]},
        "subject": {"reference": "Patient/p2"}, "occurrenceDateTime": "2019-06-01",
    },
]  # fmt: skip


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    load_resources(c, RESOURCES)
    return c


def by_id(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in run_standard_view(con, name).to_pylist()}


def test_every_standard_view_compiles_to_sql() -> None:
    assert set(standard_view_names()) >= {
        "patient", "encounter", "condition", "observation", "medication", "procedure",
    }  # fmt: skip
    for name in standard_view_names():
        for v in members(name):
            compiled = compile_view(v)
            assert not compiled.uses_fallback, (name, compiled.fallback_reason)


def test_list() -> None:
    views = {v.name: v for v in list_standard_views()}
    assert views["medication"].resources == ("MedicationRequest", "MedicationStatement")
    assert views["observation"].columns[:3] == ("id", "patient_id", "encounter_id")


def test_patient(con: duckdb.DuckDBPyConnection) -> None:
    assert by_id(con, "patient") == {
        "p1": {"id": "p1", "gender": "female", "birth_date": "1950-02-03", "deceased": None,
               "deceased_date": None},
        "p2": {"id": "p2", "gender": "male", "birth_date": "1941", "deceased": True,
               "deceased_date": "2020-05-01T10:00:00Z"},
        "p3": {"id": "p3", "gender": None, "birth_date": None, "deceased": False,
               "deceased_date": None},
    }  # fmt: skip


def test_encounter(con: duckdb.DuckDBPyConnection) -> None:
    assert by_id(con, "encounter")["e1"] == {
        "id": "e1", "patient_id": "p1", "class_code": "IMP", "status": "completed",
        "start": "2021-03-01T08:00:00+01:00", "end": "2021-03-05T12:00:00+01:00",
        "length_of_stay": 4.0, "length_unit": "d", "service_provider": "h1",
    }  # fmt: skip


def test_condition(con: duckdb.DuckDBPyConnection) -> None:
    rows = by_id(con, "condition")
    assert rows["c1"] == {
        "id": "c1", "patient_id": "p1", "encounter_id": "e1", "code_system": ICD,
        "code": "I50.9", "display": "Heart failure", "clinical_status": "active",
        "verification_status": "confirmed", "onset": "2021-03-01", "recorded_date": "2021-03-02",
        "category": "encounter-diagnosis",
    }  # fmt: skip
    assert rows["c2"]["code"] is None and rows["c2"]["onset"] == "2019-01"


def test_observation(con: duckdb.DuckDBPyConnection) -> None:
    rows = by_id(con, "observation")
    assert rows["o1"] == {
        "id": "o1", "patient_id": "p1", "encounter_id": "e1", "category": "laboratory",
        "code_system": LOINC, "code": "33762-6", "display": "NT-proBNP", "value": 1250.5,
        "unit": "pg/mL", "ucum_code": "pg/mL", "value_code": None, "value_string": None,
        "effective": "2021-03-01T09:00:00+01:00", "status": "final",
    }  # fmt: skip
    assert rows["o2"]["value_code"] == "260385009" and rows["o2"]["effective"] == "2021-03-02"
    # A quantity without a UCUM system has a unit but no UCUM code.
    assert (rows["o3"]["value"], rows["o3"]["unit"], rows["o3"]["ucum_code"]) == (
        80.0, "beats/min", None,
    )  # fmt: skip
    assert rows["o3"]["effective"] == "2021-03-03T10:00:00Z"


def test_medication_group(con: duckdb.DuckDBPyConnection) -> None:
    rows = by_id(con, "medication")
    assert rows["mr1"] == {
        "id": "mr1", "source": "MedicationRequest", "patient_id": "p1", "encounter_id": "e1",
        "code_system": ATC, "code": "C03CA01", "display": "furosemide", "status": "active",
        "date": "2021-03-01",
    }  # fmt: skip
    assert rows["ms1"]["source"] == "MedicationStatement"
    assert rows["ms1"]["date"] == "2020-01-01" and rows["ms1"]["code"] == "C07AB07"


def test_procedure(con: duckdb.DuckDBPyConnection) -> None:
    rows = by_id(con, "procedure")
    assert (rows["pr1"]["performed_start"], rows["pr1"]["performed_end"]) == (
        "2021-03-02T10:00:00Z", "2021-03-02T10:30:00Z",
    )  # fmt: skip
    assert rows["pr2"]["performed_start"] == "2019-06-01" and rows["pr2"]["performed_end"] is None


def test_on_an_imported_site_store(synthea_store: Path) -> None:
    # Synthea R4 data converted to R5 at import: every view gives one row per resource.
    con = duckdb.connect(str(synthea_store), read_only=True)
    try:
        for name in ("patient", "encounter", "condition", "procedure", "medication_request"):
            resource = members(name)[0].resource
            count = con.execute(
                "SELECT count(*) FROM resources WHERE resource_type = ?", [resource]
            ).fetchall()[0][0]
            table = run_standard_view(con, name)
            assert table.num_rows == count > 0, name
            assert table.column("patient_id" if name != "patient" else "id").null_count == 0
    finally:
        con.close()

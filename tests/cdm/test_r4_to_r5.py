"""R4 → R5 conversion of the data model's resource types."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from cardiobox.cdm.r4_to_r5 import convert_r4_to_r5, needs_conversion
from cardiobox.cdm.structure import structural_findings


def test_encounter() -> None:
    r4 = {
        "resourceType": "Encounter",
        "id": "e",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p"},
        "period": {"start": "2024-01-01", "end": "2024-01-05"},
        "reasonCode": [{"text": "dyspnoea"}],
        "hospitalization": {"dischargeDisposition": {"text": "home"}},
        "participant": [{"individual": {"reference": "Practitioner/x"}}],
    }
    r5 = convert_r4_to_r5(r4)
    assert r5["status"] == "completed"
    assert r5["class"] == [{"coding": [r4["class"]]}]
    assert r5["actualPeriod"] == r4["period"] and "period" not in r5
    assert r5["reason"] == [{"value": [{"concept": {"text": "dyspnoea"}}]}]
    assert r5["admission"] == {"dischargeDisposition": {"text": "home"}}
    assert r5["participant"] == [{"actor": {"reference": "Practitioner/x"}}]
    assert "period" in r4  # the input is not modified
    assert structural_findings(r5, "5.0.0") == []


def test_medication_request_and_statement() -> None:
    med = {"coding": [{"system": "http://www.whocc.no/atc", "code": "C03CA01"}]}
    req = convert_r4_to_r5(
        {
            "resourceType": "MedicationRequest",
            "id": "m",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": med,
            "subject": {"reference": "Patient/p"},
            "reasonReference": [{"reference": "Condition/c"}],
        }
    )
    assert req["medication"] == {"concept": med}
    assert req["reason"] == [{"reference": {"reference": "Condition/c"}}]
    assert structural_findings(req, "5.0.0") == []
    stmt = convert_r4_to_r5(
        {
            "resourceType": "MedicationStatement",
            "id": "s",
            "status": "not-taken",
            "medicationCodeableConcept": med,
            "subject": {"reference": "Patient/p"},
            "context": {"reference": "Encounter/e"},
        }
    )
    assert stmt["status"] == "recorded"
    assert stmt["adherence"]["code"]["coding"][0]["code"] == "not-taking"
    assert stmt["encounter"] == {"reference": "Encounter/e"}
    assert structural_findings(stmt, "5.0.0") == []


def test_procedure() -> None:
    r5 = convert_r4_to_r5(
        {
            "resourceType": "Procedure",
            "id": "p",
            "status": "completed",
            "code": {"text": "PCI"},
            "subject": {"reference": "Patient/p"},
            "performedPeriod": {"start": "2024-01-01"},
            "complication": [{"text": "bleeding"}],
        }
    )
    assert r5["occurrencePeriod"] == {"start": "2024-01-01"}
    assert r5["complication"] == [{"concept": {"text": "bleeding"}}]
    assert structural_findings(r5, "5.0.0") == []


def test_other_types_untouched() -> None:
    imm = {"resourceType": "Immunization", "id": "i", "status": "completed"}
    assert not needs_conversion(imm)
    assert convert_r4_to_r5(imm) == imm


@pytest.mark.parametrize(
    "name",
    [
        "AllergyIntolerance",
        "Condition",
        "DocumentReference",
        "Encounter",
        "Location",
        "MedicationRequest",
        "Organization",
        "Patient",
        "PractitionerRole",
        "Procedure",
    ],
)
def test_every_synthea_resource_converts_to_valid_r5(synthea_dir: Path, name: str) -> None:
    with gzip.open(synthea_dir / f"{name}.000.ndjson.gz", "rb") as fh:
        docs = [orjson.loads(line) for line in fh]
    for doc in docs[:200]:
        assert structural_findings(convert_r4_to_r5(doc), "5.0.0") == [], doc["id"]

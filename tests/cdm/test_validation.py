"""One-resource validation: structural layer, then the data model's profile rules."""

from __future__ import annotations

from typing import Any

from cardiobox.cdm.profile import check_profile
from cardiobox.cdm.validation import validate_resource


def potassium(value: float, unit: str = "mmol/L", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "k1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-05-01",
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "code": unit,
            "system": "http://unitsofmeasure.org",
        },
        **extra,
    }


def test_valid_lab() -> None:
    result = validate_resource(potassium(4.1))
    assert result.ok and result.findings == []


def test_structure_first() -> None:
    result = validate_resource(potassium(4.1, effectiveDateTime="yesterday"))
    assert not result.ok
    assert result.errors[0].rule == "structure"
    assert result.errors[0].element == "Observation.effectiveDateTime"


def test_unit_range_and_messages() -> None:
    wrong_unit = validate_resource(potassium(16, "mg/dL"))
    assert [f.rule for f in wrong_unit.errors] == ["unit"]
    assert "must be in mmol/L, found 'mg/dL'" in wrong_unit.errors[0].message
    implausible = validate_resource(potassium(42))
    assert [f.rule for f in implausible.errors] == ["range"]
    assert implausible.errors[0].resource_id == "k1"


def test_nyha_answers() -> None:
    def nyha(code: str) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "id": "n",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "88020-3"}]},
            "subject": {"reference": "Patient/p"},
            "effectiveDateTime": "2024-01-01",
            "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": code}]},
        }

    assert validate_resource(nyha("LA28405-1")).ok
    bad = validate_resource(nyha("LA00000-0"))
    assert [f.rule for f in bad.errors] == ["answer"]
    assert "LA28404-4" in bad.errors[0].message


def test_r4_input_is_converted_then_checked() -> None:
    r4 = {
        "resourceType": "Encounter",
        "id": "e",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p"},
        "period": {"start": "2024-01-01"},
    }
    result = validate_resource(r4, "R4")
    assert result.ok
    assert "actualPeriod" in result.resource


def test_binding_is_a_warning() -> None:
    findings = check_profile(
        {
            "resourceType": "Condition",
            "id": "c",
            "subject": {"reference": "Patient/p"},
            "clinicalStatus": {"text": "active"},
            "code": {"coding": [{"system": "http://example.org/local", "code": "HF"}]},
        }
    )
    assert [(f.rule, f.severity) for f in findings] == [("binding", "warning")]


def test_components_are_checked() -> None:
    bp = {
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": "2024-01-01",
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {"value": 900, "unit": "mm[Hg]", "code": "mm[Hg]"},
            }
        ],
    }
    findings = check_profile(bp)
    assert [(f.rule, f.element) for f in findings] == [
        ("range", "Observation.component[0].valueQuantity.value")
    ]

"""Small R5 resources and site stores with problems planted at known counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cardiobox.store import SiteStore

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ATC = "http://www.whocc.no/atc"
SNOMED = "http://snomed.info/sct"

Resource = dict[str, Any]


def patient(pid: str, birth: str = "1950-01-01", **extra: Any) -> Resource:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": birth, **extra}


def encounter(
    eid: str, pid: str, start: str, end: str | None = None, cls: str = "IMP", **extra: Any
) -> Resource:
    period = {"start": start, **({"end": end} if end else {})}
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "completed",
        "class": [{"coding": [{"system": ACT, "code": cls}]}],
        "subject": {"reference": f"Patient/{pid}"},
        "actualPeriod": period,
        **extra,
    }


def quantity(
    oid: str,
    pid: str,
    code: str,
    value: float,
    unit: str,
    when: str = "2020-03-01T10:00:00Z",
    coded: bool = True,
    **extra: Any,
) -> Resource:
    q: dict[str, Any] = {"value": value, "unit": unit}
    if coded:
        q |= {"system": UCUM, "code": unit}
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": q,
        **extra,
    }


def potassium(oid: str, pid: str, value: float, coded: bool = True, **extra: Any) -> Resource:
    return quantity(oid, pid, "2823-3", value, "mmol/L", coded=coded, **extra)


def condition(
    cid: str, pid: str, code: str = "I50.9", onset: str = "2020-01-05", **extra: Any
) -> Resource:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": ICD10, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": onset,
        **extra,
    }


def procedure(prid: str, pid: str, when: str = "2020-02-01", **extra: Any) -> Resource:
    return {
        "resourceType": "Procedure",
        "id": prid,
        "status": "completed",
        "code": {"coding": [{"system": SNOMED, "code": "415070008"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "occurrenceDateTime": when,
        **extra,
    }


def medication(mid: str, pid: str, code: str = "C09AA05", system: str = ATC) -> Resource:
    return {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": "active",
        "intent": "order",
        "medication": {"concept": {"coding": [{"system": system, "code": code}]}},
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": "2020-01-10",
    }


def write_store(path: Path, resources: list[Resource], extra_lines: Sequence[str] = ()) -> Path:
    """Import resources (R5) into a new store at ``path``; returns the store path."""
    ndjson = path.with_suffix(".ndjson")
    lines = [json.dumps(r) for r in resources] + list(extra_lines)
    ndjson.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with SiteStore(path) as store:
        store.import_fhir(ndjson, fhir_version="R5")
    return path


def planted() -> tuple[list[Resource], list[str]]:
    """Ten patients and their data, with problems at known counts (see test_checks.py)."""
    res: list[Resource] = [patient(f"p{i}") for i in range(10)]
    res[5] = patient("p5", birth="2021-01-01")  # born after an encounter
    res[9] = patient("p9", deceasedDateTime="2022-01-01T00:00:00Z")
    # 20 potassium values for 4 of the 10 patients: 3 outside the clinical range [2, 7.5],
    # 2 with a unit text but no UCUM code.
    values = [4.0, 4.2, 3.9, 8.5, 4.4, 9.0, 4.1, 1.5, 3.8, 4.0,
              4.3, 4.6, 5.0, 3.5, 4.8, 4.9, 4.2, 4.1, 3.7, 4.5]  # fmt: skip
    for i, v in enumerate(values):
        res.append(potassium(f"k{i}", f"p{i % 4}", v, coded=i not in (10, 11)))
    # Encounters: e0..e7 fine (one per patient p0..p7), e8 ends before it starts, e9 for p5
    # starts before p5's birth, e10 has class XYZ, e11 completed without an end.
    for i in range(8):
        res.append(encounter(f"e{i}", f"p{i}", "2020-03-01T08:00:00Z", "2020-03-04T08:00:00Z"))
    res.append(encounter("e8", "p8", "2020-03-02T10:00:00Z", "2020-03-01T10:00:00Z"))
    res.append(encounter("e9", "p5", "2020-06-01T10:00:00Z", "2020-06-02T10:00:00Z"))
    res.append(encounter("e10", "p6", "2020-07-01T10:00:00Z", "2020-07-01T12:00:00Z", cls="XYZ"))
    res.append(encounter("e11", "p7", "2020-08-01T10:00:00Z"))
    # An observation after p9's death; one for a patient that is not stored; one pointing at
    # an encounter that does not exist.
    res.append(quantity("w1", "p9", "29463-7", 70, "kg", when="2022-02-01T09:00:00Z"))
    res.append(quantity("w2", "ghost", "29463-7", 71, "kg"))
    res.append(quantity("w3", "p1", "29463-7", 72, "kg", encounter={"reference": "Encounter/nope"}))
    # BMI: one consistent with the same day's weight and height, one not.
    res.append(quantity("bw", "p2", "29463-7", 80, "kg", when="2020-04-01T09:00:00Z"))
    res.append(quantity("bh", "p2", "8302-2", 180, "cm", when="2020-04-01T09:05:00Z"))
    res.append(quantity("bmi1", "p2", "39156-5", 24.7, "kg/m2", when="2020-04-01T09:10:00Z"))
    res.append(quantity("bmi2", "p2", "39156-5", 30.0, "kg/m2", when="2020-04-01T09:20:00Z"))
    # Conditions: c0 and c1 identical but for the id; c2 refers to another patient's encounter.
    res.append(condition("c0", "p0"))
    res.append(condition("c1", "p0"))
    res.append(condition("c2", "p1", encounter={"reference": "Encounter/e0"}))
    # Procedures: one in the future (reference date of the tests: 2025-06-01).
    res.append(procedure("pr0", "p0"))
    res.append(procedure("pr1", "p1", when="2026-01-01"))
    # Medications: one in ATC, one in RxNorm (a store warning: binding).
    res.append(medication("m0", "p0"))
    res.append(
        medication("m1", "p1", code="197361", system="http://www.nlm.nih.gov/research/umls/rxnorm")
    )
    # Rejected by the store: an impossible potassium (quarantine rule `range`).
    rejected = [json.dumps(potassium("kbad", "p0", 42.0))]
    return res, rejected

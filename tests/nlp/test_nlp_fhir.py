"""Annotated notes become FHIR R5 resources of the data model, negation kept."""

from __future__ import annotations

from pathlib import Path

import orjson
from spacy.tokens import Doc

from cardiobox.nlp.doc import ENTITIES, MEASUREMENTS, make_doc, register_span_extensions
from cardiobox.nlp.fhir import DERIVATION, NoteContext, doc_to_resources
from cardiobox.store.site_store import SiteStore

TEXT = (
    "Niega disnea. Insuficiencia cardíaca. No se realizó coronariografía. No toma furosemida. "
    "FEVI 35 %."
)
NOTE = NoteContext("note-1", "p1", None, "2024-03-01T10:00:00Z")


def _annotated() -> Doc:
    register_span_extensions()
    doc = make_doc(TEXT, "es")

    def span(text: str, label: str, code: str | None, variable: str | None, negated: bool):  # type: ignore[no-untyped-def]
        start = TEXT.index(text)
        s = doc.char_span(start, start + len(text), label=label)
        s._.code, s._.variable, s._.negated = code, variable, negated
        return s

    doc.spans[ENTITIES] = [
        span("disnea", "SYMPTOM", "snomed|267036007", "breathlessness", True),
        span("Insuficiencia cardíaca", "DISEASE", "icd-10|I50", "heart_failure", False),
        span("coronariografía", "PROCEDURE", "snomed|33367005", "coronary_angiography", True),
        span("furosemida", "MEDICATION", "atc|C03CA01", "loop_diuretic", True),
    ]
    lvef = doc.char_span(TEXT.index("FEVI"), len(TEXT) - 1, label="lvef")
    lvef._.value, lvef._.unit = 35.0, "%"
    doc.spans[MEASUREMENTS] = [lvef]
    return doc


def test_negation_changes_the_resource_never_drops_it() -> None:
    resources = doc_to_resources(_annotated(), NOTE)
    by_type = {r["resourceType"]: r for r in resources if r["resourceType"] != "Observation"}
    symptom = next(r for r in resources if "valueBoolean" in r)
    assert symptom["valueBoolean"] is False
    condition = by_type["Condition"]
    assert condition["verificationStatus"]["coding"][0]["code"] == "confirmed"
    assert condition["code"]["coding"][0] == {
        "system": "http://hl7.org/fhir/sid/icd-10",
        "code": "I50",
        "display": "Insuficiencia cardíaca",
    }
    assert by_type["Procedure"]["status"] == "not-done"
    assert by_type["Procedure"]["code"]["text"] == "coronariografía"
    statement = by_type["MedicationStatement"]
    assert statement["adherence"]["code"]["coding"][0]["code"] == "not-taking"


def test_refuted_condition_and_provenance_span() -> None:
    doc = _annotated()
    doc.spans[ENTITIES][1]._.negated = True
    resources = doc_to_resources(doc, NOTE)
    condition = next(r for r in resources if r["resourceType"] == "Condition")
    assert condition["verificationStatus"]["coding"][0]["code"] == "refuted"
    derivation = {e["url"]: e for e in condition["extension"][0]["extension"]}
    assert condition["extension"][0]["url"] == DERIVATION
    assert derivation["reference"]["valueReference"]["reference"] == "DocumentReference/note-1"
    offset, length = derivation["offset"]["valueInteger"], derivation["length"]["valueInteger"]
    assert TEXT[offset : offset + length] == "Insuficiencia cardíaca"


def test_measurement_observation_has_value_and_unit() -> None:
    resources = doc_to_resources(_annotated(), NOTE)
    lvef = next(r for r in resources if "valueQuantity" in r)
    assert lvef["valueQuantity"]["value"] == 35.0
    assert lvef["valueQuantity"]["code"] == "%"
    assert lvef["effectiveDateTime"] == NOTE.date


def test_family_history_is_not_the_patients_condition() -> None:
    doc = _annotated()
    doc.spans[ENTITIES][1]._.family = True
    kinds = [r["resourceType"] for r in doc_to_resources(doc, NOTE)]
    assert "FamilyMemberHistory" in kinds and "Condition" not in kinds


def test_resources_load_into_a_site_store(tmp_path: Path) -> None:
    patient = {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1950-01-01"}
    lines = [orjson.dumps(patient)] + [
        orjson.dumps(r) for r in doc_to_resources(_annotated(), NOTE)
    ]
    path = tmp_path / "nlp.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with SiteStore(tmp_path / "site.duckdb") as store:
        report = store.import_fhir(path, fhir_version="R5")
    assert report.quarantined == 0
    assert report.stored == len(lines)

"""What a note says, as FHIR R5 resources of the data model, each pointing at its text span.

- DISEASE → ``Condition`` with ``verificationStatus`` ``refuted`` (negated), ``unconfirmed``
  (uncertain) or ``confirmed``; a family member's disease → ``FamilyMemberHistory``;
- SYMPTOM → ``Observation`` whose ``valueBoolean`` says whether the patient has it (false when
  negated: a documented absence), ``status`` ``preliminary`` when uncertain;
- PROCEDURE → ``Procedure`` (``not-done`` when negated, ``unknown`` when uncertain,
  ``completed`` otherwise);
- MEDICATION → ``MedicationStatement`` (``adherence`` ``not-taking`` when negated);
- measurements → ``Observation`` with the value in the data model's unit, or its coded answer.

Negation is never dropped: it changes the resource, not whether there is one. Every resource
carries FHIR's ``derivation-reference`` extension: the note (``DocumentReference``), the
character offset and the length of the mention, and the mention itself in ``code.text``.
Mentions without a code keep their text as the code's only content.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from spacy.tokens import Doc, Span

from cardiobox.cdm.codes import canonical_system
from cardiobox.cdm.dictionary import DataDictionary, Variable, load_dictionary
from cardiobox.nlp.doc import ENTITIES, MEASUREMENTS, register_span_extensions

DERIVATION = "http://hl7.org/fhir/StructureDefinition/derivation-reference"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ADHERENCE = "http://hl7.org/fhir/CodeSystem/medication-statement-adherence"
FAMILY_ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"


@dataclass(frozen=True)
class NoteContext:
    """The note a document comes from: its resource id, patient, encounter and date."""

    note_id: str
    patient_id: str
    encounter_id: str | None = None
    date: str | None = None  # FHIR dateTime of the note


def _variable(dd: DataDictionary, variable_id: str | None) -> Variable | None:
    return dd[variable_id] if variable_id is not None and variable_id in dd else None


def _resource_id(note_id: str, kind: str, span: Span) -> str:
    # The label too: a symptom and a measurement may cover the same characters.
    key = f"{note_id}|{kind}|{span.label_}|{span.start_char}|{span.end_char}"
    digest = hashlib.sha256(key.encode())
    return f"nlp-{digest.hexdigest()[:24]}"


def _derivation(note: NoteContext, span: Span) -> dict[str, Any]:
    return {
        "url": DERIVATION,
        "extension": [
            {
                "url": "reference",
                "valueReference": {"reference": f"DocumentReference/{note.note_id}"},
            },
            {"url": "offset", "valueInteger": span.start_char},
            {"url": "length", "valueInteger": span.end_char - span.start_char},
        ],
    }


def _concept(span: Span, dictionary: DataDictionary, lang: str) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": span.text}
    code = span._.code
    if code:
        system, _, value = str(code).partition("|")
        coding: dict[str, Any] = {"system": canonical_system(system), "code": value}
        variable = span._.variable
        if variable and variable in dictionary:
            coding["display"] = dictionary[variable].name(lang)
        concept["coding"] = [coding]
    return concept


def _common(kind: str, note: NoteContext, span: Span) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": kind,
        "id": _resource_id(note.note_id, kind, span),
        "extension": [_derivation(note, span)],
    }
    return resource


def _subject(note: NoteContext) -> dict[str, Any]:
    out: dict[str, Any] = {"subject": {"reference": f"Patient/{note.patient_id}"}}
    if note.encounter_id:
        out["encounter"] = {"reference": f"Encounter/{note.encounter_id}"}
    return out


def _condition(span: Span, note: NoteContext, dd: DataDictionary, lang: str) -> dict[str, Any]:
    if span._.family:
        resource = _common("FamilyMemberHistory", note, span)
        resource.update(
            {
                "status": "partial",
                "patient": {"reference": f"Patient/{note.patient_id}"},
                "relationship": {"coding": [{"system": FAMILY_ROLE, "code": "FAMMEMB"}]},
                "condition": [{"code": _concept(span, dd, lang)}],
            }
        )
        if span._.negated:
            resource["condition"][0]["outcome"] = {"text": "refuted"}
        return resource
    status = "refuted" if span._.negated else "unconfirmed" if span._.uncertain else "confirmed"
    resource = _common("Condition", note, span)
    resource.update(
        {
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
            "verificationStatus": {"coding": [{"system": VERIFICATION, "code": status}]},
            "code": _concept(span, dd, lang),
            **_subject(note),
        }
    )
    if note.date:
        resource["recordedDate"] = note.date
    return resource


def _symptom(span: Span, note: NoteContext, dd: DataDictionary, lang: str) -> dict[str, Any]:
    resource = _common("Observation", note, span)
    variable = _variable(dd, span._.variable)
    category = (variable.observation_category if variable else None) or "exam"
    resource.update(
        {
            "status": "preliminary" if span._.uncertain else "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
            "code": _concept(span, dd, lang),
            **_subject(note),
            "valueBoolean": not span._.negated,
        }
    )
    if note.date:
        resource["effectiveDateTime"] = note.date
    return resource


def _procedure(span: Span, note: NoteContext, dd: DataDictionary, lang: str) -> dict[str, Any]:
    status = "not-done" if span._.negated else "unknown" if span._.uncertain else "completed"
    resource = _common("Procedure", note, span)
    resource.update({"status": status, "code": _concept(span, dd, lang), **_subject(note)})
    if note.date and status == "completed" and not span._.historical:
        resource["occurrenceDateTime"] = note.date
    return resource


def _medication(span: Span, note: NoteContext, dd: DataDictionary, lang: str) -> dict[str, Any]:
    resource = _common("MedicationStatement", note, span)
    resource.update(
        {
            "status": "recorded",
            "medication": {"concept": _concept(span, dd, lang)},
            **_subject(note),
        }
    )
    if span._.negated:
        resource["adherence"] = {"code": {"coding": [{"system": ADHERENCE, "code": "not-taking"}]}}
    if note.date:
        resource["effectiveDateTime"] = note.date
    return resource


def _measurement(
    span: Span, note: NoteContext, dd: DataDictionary, lang: str
) -> dict[str, Any] | None:
    variable = _variable(dd, span.label_)
    if variable is None or not variable.codes:
        return None
    code_set = variable.codes[0]
    resource = _common("Observation", note, span)
    resource.update(
        {
            "status": "preliminary" if span._.uncertain else "final",
            "code": {
                "coding": [
                    {
                        "system": canonical_system(code_set.system),
                        "code": code_set.codes[0],
                        "display": variable.name(lang),
                    }
                ],
                "text": span.text,
            },
            **_subject(note),
        }
    )
    if variable.observation_category:
        resource["category"] = [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": variable.observation_category}]}
        ]
    if span._.value_code:
        system, _, value = str(span._.value_code).partition("|")
        resource["valueCodeableConcept"] = {
            "coding": [{"system": canonical_system(system), "code": value}]
        }
    elif span._.value is not None:
        resource["valueQuantity"] = {
            "value": span._.value,
            "unit": span._.unit or variable.unit,
            "system": "http://unitsofmeasure.org",
            "code": span._.unit or variable.unit,
        }
    else:
        return None
    if note.date:
        resource["effectiveDateTime"] = note.date
    return resource


_BUILDERS = {
    "DISEASE": _condition,
    "SYMPTOM": _symptom,
    "PROCEDURE": _procedure,
    "MEDICATION": _medication,
}


def doc_to_resources(
    doc: Doc, note: NoteContext, dictionary: DataDictionary | None = None
) -> list[dict[str, Any]]:
    """FHIR R5 resources for every entity and measurement found in ``doc``.

    Parameters
    ----------
    doc : Doc
        An annotated note (span groups ``entities`` and ``measurements``).
    note : NoteContext
        The note's resource id, patient, encounter and date.
    dictionary : DataDictionary, optional
        The data model (loaded when omitted).

    Returns
    -------
    list of dict
        One resource per entity and per measurement with a value.
    """
    register_span_extensions()
    dd = dictionary or load_dictionary()
    lang = doc.lang_
    out: list[dict[str, Any]] = []
    for span in doc.spans.get(ENTITIES, []):
        builder = _BUILDERS.get(span.label_)
        if builder is not None:
            out.append(builder(span, note, dd, lang))
    for span in doc.spans.get(MEASUREMENTS, []):
        resource = _measurement(span, note, dd, lang)
        if resource is not None:
            out.append(resource)
    return out

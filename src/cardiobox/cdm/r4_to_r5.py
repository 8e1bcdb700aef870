"""Conversion of the data model's resources from FHIR R4/R4B to R5.

The cardiology data model is FHIR R5. Hospitals and tools such as Synthea still export R4.
This module rewrites the elements that changed between the releases for the resource types
the data model profiles (the DataTools4Heart ``HFR-*`` profiles), following the official
R4→R5 element maps: for example ``Encounter.period`` → ``actualPeriod``,
``MedicationRequest.medicationCodeableConcept`` → ``medication.concept``,
``Procedure.performed[x]`` → ``occurrence[x]``, ``reasonCode``/``reasonReference`` →
``reason`` (CodeableReference).

Elements that R5 dropped (``Encounter.statusHistory``, ``Encounter.classHistory``, ...) are
not carried over; the store keeps the original R4 resource beside the converted one, so
nothing is lost. Resources of other types are stored as they came, with their release.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cardiobox.cdm.jsontext import copy_json

JSON = dict[str, Any]

_PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def _concepts(values: list[JSON]) -> list[JSON]:
    return [{"concept": v} for v in values]


def _references(values: list[JSON]) -> list[JSON]:
    return [{"reference": v} for v in values]


def _move(r: JSON, old: str, new: str) -> None:
    if old in r:
        r[new] = r.pop(old)
        if "_" + old in r:
            r["_" + new] = r.pop("_" + old)


def _reason(r: JSON) -> None:
    """reasonCode / reasonReference → reason (list of CodeableReference)."""
    reason = _concepts(r.pop("reasonCode", [])) + _references(r.pop("reasonReference", []))
    if reason:
        r["reason"] = reason


def _medication(r: JSON) -> None:
    if "medicationCodeableConcept" in r:
        r["medication"] = {"concept": r.pop("medicationCodeableConcept")}
    elif "medicationReference" in r:
        r["medication"] = {"reference": r.pop("medicationReference")}


def _listify(r: JSON, key: str) -> None:
    if key in r and not isinstance(r[key], list):
        r[key] = [r[key]]


def _dosage(dosages: list[JSON]) -> None:
    for d in dosages:
        if "asNeededCodeableConcept" in d:
            d["asNeededFor"] = [d.pop("asNeededCodeableConcept")]
        _move(d, "asNeededBoolean", "asNeeded")


def _participants(r: JSON, mapping: dict[str, str]) -> None:
    """Move single Reference elements (recorder, asserter) into ``participant``."""
    parts = r.get("participant", [])
    for key, function in mapping.items():
        if key in r:
            parts.append(
                {
                    "function": {"coding": [{"system": _PARTICIPANT_TYPE, "code": function}]},
                    "actor": r.pop(key),
                }
            )
    if parts:
        r["participant"] = parts


_ENCOUNTER_STATUS = {
    "arrived": "in-progress",
    "triaged": "in-progress",
    "onleave": "on-hold",
    "finished": "completed",
}


def _encounter(r: JSON) -> None:
    if "status" in r:
        r["status"] = _ENCOUNTER_STATUS.get(r["status"], r["status"])
    r.pop("statusHistory", None)
    r.pop("classHistory", None)
    if "class" in r and isinstance(r["class"], dict):
        r["class"] = [{"coding": [r["class"]]}]
    if "serviceType" in r and isinstance(r["serviceType"], dict):
        r["serviceType"] = [{"concept": r["serviceType"]}]
    for p in r.get("participant", []):
        _move(p, "individual", "actor")
    _move(r, "period", "actualPeriod")
    reason = [{"value": [c]} for c in _concepts(r.pop("reasonCode", []))]
    reason += [{"value": [c]} for c in _references(r.pop("reasonReference", []))]
    if reason:
        r["reason"] = reason
    for d in r.get("diagnosis", []):
        if isinstance(d.get("condition"), dict):
            d["condition"] = [{"reference": d["condition"]}]
        if isinstance(d.get("use"), dict):
            d["use"] = [d["use"]]
        d.pop("rank", None)
    hosp = r.pop("hospitalization", None)
    if hosp:
        for key in ("dietPreference", "specialArrangement", "specialCourtesy"):
            if key in hosp:
                r[key] = hosp.pop(key)
        if hosp:
            r["admission"] = hosp
    for loc in r.get("location", []):
        _move(loc, "physicalType", "form")


def _medication_request(r: JSON) -> None:
    _medication(r)
    _reason(r)
    if "reportedBoolean" in r:
        r["reported"] = r.pop("reportedBoolean")
    elif "reportedReference" in r:
        r.pop("reportedReference")
        r["reported"] = True
        # R5 keeps who reported it in informationSource.
    _listify(r, "performer")
    _dosage(r.get("dosageInstruction", []))
    dispense = r.get("dispenseRequest")
    if isinstance(dispense, dict):
        _move(dispense, "performer", "dispenser")


_STATEMENT_ADHERENCE = {
    "active": "taking",
    "completed": "stopped",
    "stopped": "stopped",
    "on-hold": "on-hold",
    "not-taken": "not-taking",
    "unknown": "unknown",
}


def _medication_statement(r: JSON) -> None:
    status = r.get("status")
    if status is not None and status != "entered-in-error":
        r["status"] = "recorded"
        adherence: JSON = {}
        if status in _STATEMENT_ADHERENCE:
            adherence["code"] = {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/CodeSystem/medication-statement-adherence",
                        "code": _STATEMENT_ADHERENCE[status],
                    }
                ]
            }
        reasons = r.pop("statusReason", [])
        if reasons and adherence:
            adherence["reason"] = reasons[0]
        if adherence:
            r["adherence"] = adherence
    _medication(r)
    _move(r, "context", "encounter")
    r.pop("basedOn", None)
    _listify(r, "informationSource")
    _listify(r, "category")
    _reason(r)
    _dosage(r.get("dosage", []))


def _medication_administration(r: JSON) -> None:
    _move(r, "instantiates", "instantiatesUri")
    _listify(r, "category")
    _medication(r)
    _move(r, "context", "encounter")
    for old, new in (
        ("effectiveDateTime", "occurenceDateTime"),
        ("effectivePeriod", "occurencePeriod"),
    ):
        _move(r, old, new)
    for p in r.get("performer", []):
        if isinstance(p.get("actor"), dict) and "reference" not in p["actor"].get("reference", {}):
            p["actor"] = {"reference": p["actor"]}
    _reason(r)
    if "device" in r:
        r["device"] = _references(r["device"])


def _procedure(r: JSON) -> None:
    _listify(r, "category")
    for suffix in ("DateTime", "Period", "String", "Age", "Range"):
        _move(r, "performed" + suffix, "occurrence" + suffix)
    if "asserter" in r:
        r["reportedReference"] = r.pop("asserter")
    _reason(r)
    complication = _concepts(r.pop("complication", [])) + _references(
        r.pop("complicationDetail", [])
    )
    if complication:
        r["complication"] = complication
    used = _references(r.pop("usedReference", [])) + _concepts(r.pop("usedCode", []))
    if used:
        r["used"] = used


def _condition(r: JSON) -> None:
    _participants(r, {"recorder": "author", "asserter": "informant"})
    evidence: list[JSON] = []
    for ev in r.pop("evidence", []):
        evidence += _concepts(ev.get("code", [])) + _references(ev.get("detail", []))
    if evidence:
        r["evidence"] = evidence


def _document_reference(r: JSON) -> None:
    if "masterIdentifier" in r:
        r["identifier"] = [r.pop("masterIdentifier"), *r.get("identifier", [])]
    if "authenticator" in r:
        r["attester"] = [
            {
                "mode": {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/composition-attestation-mode",
                            "code": "official",
                        }
                    ]
                },
                "party": r.pop("authenticator"),
            }
        ]
    for rel in r.get("relatesTo", []):
        if isinstance(rel.get("code"), str):
            rel["code"] = {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/document-relationship-type",
                        "code": rel["code"],
                    }
                ]
            }
    for content in r.get("content", []):
        if "format" in content:
            content["profile"] = [{"valueCoding": content.pop("format")}]
    ctx = r.pop("context", None)
    if isinstance(ctx, dict):
        if "encounter" in ctx:
            r["context"] = ctx.pop("encounter")
        if "event" in ctx:
            r["event"] = _concepts(ctx.pop("event"))
        for key in ("period", "facilityType", "practiceSetting"):
            if key in ctx:
                r[key] = ctx.pop(key)
        if "related" in ctx:
            r.setdefault("context", []).extend(ctx.pop("related"))


def _allergy(r: JSON) -> None:
    if isinstance(r.get("type"), str):
        r["type"] = {
            "coding": [
                {"system": "http://hl7.org/fhir/allergy-intolerance-type", "code": r["type"]}
            ]
        }
    _participants(r, {"recorder": "author", "asserter": "informant"})
    for reaction in r.get("reaction", []):
        if "manifestation" in reaction:
            reaction["manifestation"] = _concepts(reaction["manifestation"])


def _contact_details(r: JSON, keep_address: bool) -> None:
    """telecom (and address) → contact[ExtendedContactDetail] (Organization, Location...)."""
    telecom = r.pop("telecom", None)
    address = r.get("address") if keep_address else None
    if telecom:
        r.setdefault("contact", []).append({"telecom": telecom})
    if keep_address and isinstance(address, list):
        r.pop("address")
        for a in address:
            r.setdefault("contact", []).append({"address": a})


def _organization(r: JSON) -> None:
    _contact_details(r, keep_address=True)


def _location(r: JSON) -> None:
    _contact_details(r, keep_address=False)
    _move(r, "physicalType", "form")
    r.pop("hoursOfOperation", None)
    r.pop("availabilityExceptions", None)


def _practitioner_role(r: JSON) -> None:
    _contact_details(r, keep_address=False)
    r.pop("availableTime", None)
    r.pop("notAvailable", None)
    r.pop("availabilityExceptions", None)


#: Per resource type: the converter and the top-level R4 elements that trigger it.
CONVERTERS: dict[str, tuple[Callable[[JSON], None], frozenset[str]]] = {
    "Encounter": (
        _encounter,
        frozenset(
            {
                "status",
                "statusHistory",
                "class",
                "classHistory",
                "serviceType",
                "participant",
                "period",
                "reasonCode",
                "reasonReference",
                "diagnosis",
                "hospitalization",
                "location",
            }
        ),
    ),
    "MedicationRequest": (
        _medication_request,
        frozenset(
            {
                "medicationCodeableConcept",
                "medicationReference",
                "reasonCode",
                "reasonReference",
                "reportedBoolean",
                "reportedReference",
                "performer",
                "dosageInstruction",
                "dispenseRequest",
            }
        ),
    ),
    "MedicationStatement": (
        _medication_statement,
        frozenset(
            {
                "status",
                "medicationCodeableConcept",
                "medicationReference",
                "context",
                "basedOn",
                "informationSource",
                "category",
                "reasonCode",
                "reasonReference",
                "dosage",
                "statusReason",
            }
        ),
    ),
    "MedicationAdministration": (
        _medication_administration,
        frozenset(
            {
                "instantiates",
                "category",
                "medicationCodeableConcept",
                "medicationReference",
                "context",
                "effectiveDateTime",
                "effectivePeriod",
                "performer",
                "reasonCode",
                "reasonReference",
                "device",
            }
        ),
    ),
    "Procedure": (
        _procedure,
        frozenset(
            {
                "category",
                "performedDateTime",
                "performedPeriod",
                "performedString",
                "performedAge",
                "performedRange",
                "asserter",
                "reasonCode",
                "reasonReference",
                "complication",
                "complicationDetail",
                "usedReference",
                "usedCode",
            }
        ),
    ),
    "Condition": (_condition, frozenset({"recorder", "asserter", "evidence"})),
    "DocumentReference": (
        _document_reference,
        frozenset({"masterIdentifier", "authenticator", "relatesTo", "content", "context"}),
    ),
    "AllergyIntolerance": (_allergy, frozenset({"type", "recorder", "asserter", "reaction"})),
    "Organization": (_organization, frozenset({"telecom", "address"})),
    "Location": (
        _location,
        frozenset({"telecom", "physicalType", "hoursOfOperation", "availabilityExceptions"}),
    ),
    "PractitionerRole": (
        _practitioner_role,
        frozenset({"telecom", "availableTime", "notAvailable", "availabilityExceptions"}),
    ),
}

#: Resource types the data model profiles; R4 resources of these types are converted.
PROFILED_TYPES = frozenset(CONVERTERS) | {"Patient", "Observation"}


def needs_conversion(resource: JSON) -> bool:
    """Tell whether an R4 resource has elements that differ in R5."""
    entry = CONVERTERS.get(str(resource.get("resourceType")))
    return entry is not None and not entry[1].isdisjoint(resource)


def convert_r4_to_r5(resource: JSON) -> JSON:
    """Convert one R4/R4B resource of a profiled type to R5.

    Parameters
    ----------
    resource : dict
        A structurally valid R4 resource.

    Returns
    -------
    dict
        A new dict in R5 shape; the input is not modified. Resources of types without a
        converter are returned as an unchanged copy.
    """
    out: JSON = copy_json(resource)
    entry = CONVERTERS.get(str(out.get("resourceType")))
    if entry is not None:
        entry[0](out)
    return out

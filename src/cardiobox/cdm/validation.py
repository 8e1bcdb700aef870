"""Validate one resource against FHIR and the cardiology data model.

Two layers, in this order:

1. structural — the base specification of the release the resource is written in
   (:mod:`cardiobox.cdm.structure`, ``fhir.resources``);
2. profile — the data model's own rules generated from the dictionary
   (:mod:`cardiobox.cdm.profile`), on the R5 form of the resource.

The site store runs the same two layers vectorised over whole imports
(:mod:`cardiobox.store.validate`); this module is the one-resource entry point.

Example
-------
>>> from cardiobox.cdm.validation import validate_resource
>>> result = validate_resource({"resourceType": "Observation", "id": "x", "status": "final",
...     "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
...     "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-05-01",
...     "valueQuantity": {"value": 42, "unit": "mmol/L", "code": "mmol/L"}})
>>> [f.rule for f in result.errors]
['range']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cardiobox.cdm.fhir_versions import R5, normalise_version
from cardiobox.cdm.findings import Finding
from cardiobox.cdm.profile import check_profile
from cardiobox.cdm.r4_to_r5 import PROFILED_TYPES, convert_r4_to_r5
from cardiobox.cdm.structure import structural_findings


@dataclass
class ValidationResult:
    """Outcome of validating one resource.

    Attributes
    ----------
    resource : dict
        The resource in the form the store keeps (R5 for the data model's types).
    fhir_version : str
        Release the input was written in.
    findings : list of Finding
        All findings, errors and warnings.
    """

    resource: dict[str, Any]
    fhir_version: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """Findings that reject the resource."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """Findings that are recorded but do not reject the resource."""
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there are no errors."""
        return not self.errors


def validate_resource(resource: dict[str, Any], fhir_version: str = R5) -> ValidationResult:
    """Validate one resource structurally and against the data model's profile rules.

    Parameters
    ----------
    resource : dict
        Parsed resource JSON.
    fhir_version : str
        Release it is written in (``"R4"``, ``"4.0.1"``, ``"R5"``, ...).

    Returns
    -------
    ValidationResult
        Profile rules run only when the structure is valid.
    """
    version = normalise_version(fhir_version)
    findings = structural_findings(resource, version)
    if findings:
        return ValidationResult(resource, version, findings)
    converted = resource
    if version != R5 and resource.get("resourceType") in PROFILED_TYPES:
        converted = convert_r4_to_r5(resource)
        findings = structural_findings(converted, R5)
        if findings:
            findings = [
                Finding(
                    f.resource_type,
                    f.resource_id,
                    f.element,
                    "conversion",
                    f"after conversion to R5: {f.message}",
                )
                for f in findings
            ]
            return ValidationResult(converted, version, findings)
    return ValidationResult(converted, version, check_profile(converted))

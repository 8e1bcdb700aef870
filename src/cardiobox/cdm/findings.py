"""Validation findings: one problem with one element of one resource."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """A problem found while validating a resource.

    Parameters
    ----------
    resource_type : str
        FHIR resource type of the resource.
    resource_id : str or None
        Its id.
    element : str
        FHIRPath-like location of the element, e.g. ``Observation.valueQuantity.unit``.
    rule : str
        Name of the broken rule (``structure``, ``json-type``, ``required``, ``unit``,
        ``range``, ``binding``, ...).
    message : str
        Plain-language explanation.
    severity : {"error", "warning"}
        Errors send the resource to quarantine; warnings are stored beside it.
    """

    resource_type: str
    resource_id: str | None
    element: str
    rule: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return (
            f"{self.resource_type}/{self.resource_id or '?'} {self.element}: "
            f"[{self.rule}] {self.message}"
        )

    def to_dict(self) -> dict[str, str | None]:
        """Plain dict, for JSON output."""
        return asdict(self)

"""FHIR releases: names, detection from profiles, resource-type lists."""

from __future__ import annotations

import pytest

from cardiobox.cdm.fhir_versions import (
    R4,
    R4B,
    R5,
    model_resource_types,
    normalise_version,
    resource_types,
    version_from_profiles,
)
from cardiobox.errors import InputError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("R4", R4),
        ("4.0.1", R4),
        ("4.0", R4),
        ("r4b", R4B),
        ("4.3.0", R4B),
        ("R5", R5),
        ("5.0.0", R5),
    ],
)
def test_normalise_version(given: str, expected: str) -> None:
    assert normalise_version(given) == expected


@pytest.mark.parametrize("bad", ["3.0.2", "STU3", "6.0.0", "", "five"])
def test_unsupported_version(bad: str) -> None:
    with pytest.raises(InputError) as err:
        normalise_version(bad)
    assert err.value.rule == "fhir-version"


def test_version_from_profiles() -> None:
    us_core = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
    dt4h = "https://datatools4heart.eu/fhir/StructureDefinition/HFR-LabResult"
    assert version_from_profiles([us_core]) == R4
    assert version_from_profiles([dt4h]) == R5
    assert version_from_profiles(["http://example.org/x"]) is None
    with pytest.raises(InputError, match="different FHIR releases"):
        version_from_profiles([us_core, dt4h])


@pytest.mark.parametrize("version", [R5, R4B])
def test_shipped_resource_type_list_matches_models(version: str) -> None:
    assert resource_types(version) == model_resource_types(version)
    assert "Observation" in resource_types(version)
    assert "Coding" not in resource_types(version)

"""FHIR releases that cardiobox accepts, and their resource models.

cardiobox's data model is FHIR R5 (as the DataTools4Heart model is). The store also accepts
R4 (4.0.x) and R4B (4.3.x) data: structural validation uses the release the data was written
in (R4 data is checked with the R4B models of ``fhir.resources``, which differ from R4 only in
resources the data model does not use), then the profiled resources are converted to R5
(:mod:`cardiobox.cdm.r4_to_r5`).
"""

from __future__ import annotations

import importlib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

from cardiobox.errors import InputError

R4 = "4.0.1"
R4B = "4.3.0"
R5 = "5.0.0"

#: Accepted spellings of each supported release.
_ALIASES: dict[str, str] = {
    "r4": R4,
    "4.0": R4,
    "4.0.0": R4,
    "4.0.1": R4,
    "r4b": R4B,
    "4.3": R4B,
    "4.3.0": R4B,
    "r5": R5,
    "5.0": R5,
    "5.0.0": R5,
}

SUPPORTED = (R4, R4B, R5)

#: Implementation guides whose profiles tell the release of a resource.
_PROFILE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("http://hl7.org/fhir/us/core/", R4),
    ("https://datatools4heart.eu/fhir/", R5),
    ("http://hl7.eu/fhir/base-r5/", R5),
    ("http://hl7.org/fhir/uv/ips/", R4),
)


def normalise_version(version: str) -> str:
    """Return the canonical version string for a FHIR release name.

    Parameters
    ----------
    version : str
        ``"R4"``, ``"4.0.1"``, ``"R4B"``, ``"4.3.0"``, ``"R5"``, ``"5.0.0"`` (case-insensitive).

    Returns
    -------
    str
        ``"4.0.1"``, ``"4.3.0"`` or ``"5.0.0"``.

    Raises
    ------
    InputError
        With rule ``fhir-version`` for any other release (e.g. STU3 ``3.0.2``).
    """
    key = str(version).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    if key.startswith("4.0."):
        return R4
    raise InputError(
        f"unsupported FHIR version {version!r}; cardiobox reads R4 (4.0.1), R4B (4.3.0) "
        "and R5 (5.0.0)",
        rule="fhir-version",
    )


def version_from_profiles(profiles: list[str]) -> str | None:
    """Infer the FHIR release from ``meta.profile`` URLs of known implementation guides.

    Returns
    -------
    str or None
        The release, or ``None`` when no profile is recognised.

    Raises
    ------
    InputError
        When the profiles point at different releases.
    """
    found: set[str] = set()
    for url in profiles:
        for prefix, release in _PROFILE_PREFIXES:
            if url.startswith(prefix):
                found.add(release)
    if len(found) > 1:
        raise InputError(
            f"resources claim profiles of different FHIR releases ({', '.join(sorted(found))}); "
            "import them separately with --fhir-version",
            rule="fhir-version",
        )
    return found.pop() if found else None


def _package(version: str) -> ModuleType:
    name = "fhir.resources" if version == R5 else "fhir.resources.R4B"
    return importlib.import_module(name)


@cache
def model_class(version: str, resource_type: str) -> Any:
    """The ``fhir.resources`` model class of a resource or data type in a release.

    Raises
    ------
    KeyError
        If the type does not exist in that release.
    """
    pkg = _package(normalise_version(version))
    try:
        return pkg.get_fhir_model_class(resource_type)
    except (ValueError, AttributeError):
        raise KeyError(resource_type) from None


@cache
def resource_types(version: str) -> frozenset[str]:
    """Names of all concrete resource types of a release.

    Read from a list shipped with cardiobox (importing every ``fhir.resources`` model to
    find them takes seconds); a test keeps the list equal to :func:`model_resource_types`.
    """
    version = normalise_version(version)
    path = Path(str(resources.files("cardiobox.cdm") / "data" / "fhir_resource_types.json"))
    table = json.loads(path.read_text(encoding="utf-8"))
    return frozenset(table[R4B if version == R4 else version])


def model_resource_types(version: str) -> frozenset[str]:
    """Resource types found by inspecting the ``fhir.resources`` models (slow)."""
    version = normalise_version(version)
    fhirtypes = importlib.import_module(_package(version).__name__ + ".fhirtypes")
    resource_base = model_class(version, "Resource")
    abstract = {"Resource", "DomainResource", "CanonicalResource", "MetadataResource"}
    names: set[str] = set()
    for attr in dir(fhirtypes):
        if not attr.endswith("Type") or attr[0].islower():
            continue
        name = attr[: -len("Type")]
        if name in abstract:
            continue
        try:
            cls = model_class(version, name)
        except KeyError:
            continue
        if (
            isinstance(cls, type)
            and issubclass(cls, resource_base)
            and getattr(cls, "__resource_type__", None) == name
        ):
            names.add(name)
    return frozenset(names)

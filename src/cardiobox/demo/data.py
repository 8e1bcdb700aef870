"""Where the demo's data lives: in the source tree, or in the installed package's share."""

from __future__ import annotations

from pathlib import Path

from cardiobox.errors import InputError


def synthea_dir() -> Path:
    """The Synthea FHIR R4 bulk export shipped in the repository's ``data/`` folder."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "data" / "synthea_r4_bulk_10patients"
        if candidate.is_dir():
            return candidate
    raise InputError(
        "the demo data (data/synthea_r4_bulk_10patients) was not found; run the demo from a "
        "clone of the cardiobox repository",
        rule="missing-input",
    )

"""Where the demo's data lives: in the source tree, or in the installed package's share."""

from __future__ import annotations

from pathlib import Path

from cardiobox.errors import InputError


def _in_repository(*parts: str) -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.joinpath(*parts)
        if candidate.is_dir():
            return candidate
    raise InputError(
        f"the demo data ({'/'.join(parts)}) was not found; run the demo from a clone of the "
        "cardiobox repository",
        rule="missing-input",
    )


def synthea_dir() -> Path:
    """The Synthea FHIR R4 bulk export shipped in the repository's ``data/`` folder."""
    return _in_repository("data", "synthea_r4_bulk_10patients")


def examples_dir() -> Path:
    """The repository's ``examples/`` folder (mappings of real datasets)."""
    return _in_repository("examples")

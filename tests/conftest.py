"""Shared fixtures: paths to the data shipped with the project, and a Synthea site store."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiobox.store import SiteStore

ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = ROOT / "data" / "synthea_r4_bulk_10patients"


@pytest.fixture(scope="session")
def synthea_dir() -> Path:
    return SYNTHEA


@pytest.fixture(scope="session")
def synthea_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site store holding the Synthea bulk export (built once per test session)."""
    path = tmp_path_factory.mktemp("synthea") / "site.duckdb"
    with SiteStore(path) as store:
        store.import_fhir(SYNTHEA)
    return path

"""Fixtures: a store with planted problems, its quality result (built once per module)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from tests.quality.builders import planted, write_store

from cardiobox.quality import QualityResult, run_quality

#: Reference day of the tests ("in the future" means after it).
TODAY = date(2025, 6, 1)


@pytest.fixture(scope="session")
def planted_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    resources, rejected = planted()
    return write_store(
        tmp_path_factory.mktemp("planted") / "hospital_a.duckdb", resources, rejected
    )


@pytest.fixture(scope="session")
def planted_result(planted_store: Path) -> QualityResult:
    return run_quality([planted_store], today=TODAY)

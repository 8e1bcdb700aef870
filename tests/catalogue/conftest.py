"""Stores and descriptions shared by the catalogue tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.catalogue.stores import (
    CLEVELAND_PROFILE,
    demo_profile,
    make_cleveland_store,
    make_demo_store,
    sample_description,
)

from cardiobox.catalogue.build import build_description
from cardiobox.catalogue.model import DatasetDescription


@pytest.fixture(scope="session")
def cleveland_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cleveland_store(tmp_path_factory.mktemp("cleveland"))


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_store(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def cleveland_description(cleveland_store: Path) -> DatasetDescription:
    return build_description(cleveland_store, CLEVELAND_PROFILE)


@pytest.fixture(scope="session")
def demo_description(demo_store: Path) -> DatasetDescription:
    return build_description(demo_store, demo_profile("hospital_es"))


@pytest.fixture
def sample() -> DatasetDescription:
    return sample_description()

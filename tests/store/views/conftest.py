"""Fixtures for the SQL-on-FHIR view tests: a DuckDB table of hand-written resources."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import pytest

from cardiobox.store.views.conformance import load_resources


@pytest.fixture
def load() -> Callable[[list[dict[str, Any]]], duckdb.DuckDBPyConnection]:
    """Return a function that puts resources in a fresh in-memory ``resources`` table."""

    def make(resources: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        load_resources(con, resources)
        return con

    return make

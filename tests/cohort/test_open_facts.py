"""Extraction reads the store's fact tables: rebuilt when missing, in memory when unwritable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pytest

from cardiobox.cohort import CohortDefinition, extract
from cardiobox.errors import InputError
from cardiobox.store import SiteStore
from cardiobox.store.facts import FACT_TABLES, STATE_KEY, facts_status

if TYPE_CHECKING:
    from tests.cohort.conftest import Site, Store

FEATURES: tuple[dict[str, Any], ...] = (
    {"name": "sbp_first", "variable": "systolic_bp", "agg": "first", "window": "stay"},
    {"name": "sbp_last", "variable": "systolic_bp", "agg": "last"},
    {"name": "hf", "variable": "heart_failure", "agg": "count"},
    {"name": "bb", "variable": "beta_blocker", "agg": "any", "window": "before"},
)


@pytest.fixture
def small(site: Site) -> Store:
    return (
        site.patient("p1", born="1950-01-01")
        .patient("p2", "male", born="1940-06-01", died="2021-01-01")
        .stay("e1", "p1", "2020-06-01T10:00", "2020-06-05T10:00")
        .stay("e2", "p2", "2020-03-01T10:00", "2020-03-02T10:00")
        .obs("p1", "systolic_bp", 120.0, "2020-06-01T12:00", encounter="e1")
        .obs("p1", "systolic_bp", 130.0, "2020-06-02T12:00", encounter="e1")
        .obs("p2", "systolic_bp", 140.0, "2020-03-01T12:00")
        .condition("p1", "I50.9", "2020-06-01T11:00", encounter="e1", primary=True)
        .med("p2", "C07AB07", "2020-01-01")
        .build()
    )


def _drop_fact_tables(path: Path) -> None:
    """Make the store look written by a cardiobox without fact tables."""
    con = duckdb.connect(str(path))
    for table in FACT_TABLES:
        con.execute(f"DROP TABLE {table}")
    con.execute("DELETE FROM store_info WHERE key = ?", [STATE_KEY])
    con.close()


def _status(path: Path) -> str | None:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return facts_status(con)
    finally:
        con.close()


def _tables(path: Path) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()


def test_an_older_store_gets_its_fact_tables_at_the_first_extraction(small: Store) -> None:
    expected = small.extract(*FEATURES)
    assert expected.table is not None and expected.table.num_rows == 2
    _drop_fact_tables(small.path)
    assert _status(small.path) is not None
    again = small.extract(*FEATURES)
    assert again.table is not None and again.table.equals(expected.table)
    assert again.warnings == expected.warnings
    assert _status(small.path) is None


def test_an_unwritable_store_is_read_in_memory_with_a_warning(
    small: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = small.extract(*FEATURES)
    _drop_fact_tables(small.path)

    def locked(self: SiteStore) -> None:
        raise duckdb.IOException("Could not set lock on file")

    monkeypatch.setattr(SiteStore, "reindex", locked)
    got = small.extract(*FEATURES)
    assert got.table is not None and expected.table is not None
    assert got.table.equals(expected.table)
    (note,) = [w for w in got.warnings if "in memory" in w]
    assert "no fact tables" in note and "Could not set lock" in note and "reindex()" in note
    assert _status(small.path) is not None  # nothing was written


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    cohort = CohortDefinition.model_validate(
        {"cardiobox_cohort": 1, "name": "all", "entry": {"event": "patient"}}
    )
    with pytest.raises(InputError, match="not a cardiobox site store") as err:
        extract(cohort, other)
    assert err.value.rule == "store-open"
    assert _tables(other) == set()  # and it was left alone


def test_first_and_last_break_ties_in_time_by_resource_id(site: Site) -> None:
    store = (
        site.patient("p1")
        .stay("e1", "p1", "2020-06-01T10:00", "2020-06-05T10:00")
        .obs("p1", "body_weight", 81.0, "2020-06-02T08:00", oid="ob")
        .obs("p1", "body_weight", 80.0, "2020-06-02T08:00", oid="oa")
        .obs("p1", "body_weight", 82.0, "2020-06-02T08:00", oid="oc")
        .obs("p1", "body_height", 170.0, oid="hb")  # undated only
        .obs("p1", "body_height", 171.0, oid="ha")
        .build()
    )
    row = store.rows(
        {"name": "w_first", "variable": "body_weight", "agg": "first"},
        {"name": "w_last", "variable": "body_weight", "agg": "last"},
        {"name": "h_first", "variable": "body_height", "agg": "first"},
        {"name": "h_last", "variable": "body_height", "agg": "last"},
    )[0]
    assert (row["w_first"], row["w_last"]) == (80.0, 82.0)
    assert (row["h_first"], row["h_last"]) == (171.0, 170.0)

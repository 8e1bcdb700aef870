"""q_after: FHIR dates compared at their common precision, instants with their zones."""

from __future__ import annotations

import duckdb
import pytest

from cardiobox.quality.tables import MACROS


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute(MACROS)
    return c


@pytest.mark.parametrize(
    ("a", "b", "after"),
    [
        ("2020-05-18", "2020-05-17", True),
        ("2020-05-17", "2020-05-17", False),
        ("2020-05", "2020-05-17", False),  # same month: not known to be after
        ("2020-06", "2020-05-17", True),
        ("2021", "2020-12-31", True),
        ("2020", "2020-12-31", False),
        # a dateTime against a date: by the date written in the dateTime
        ("2020-05-18T01:00:00+02:00", "2020-05-17", True),
        ("2020-05-17T23:00:00Z", "2020-05-17", False),
        # two dateTimes: as instants
        ("2020-05-17T10:00:00+02:00", "2020-05-17T09:00:00Z", False),
        ("2020-05-17T10:00:00-02:00", "2020-05-17T09:00:00Z", True),
        ("2020-05-17T10:00:00.5Z", "2020-05-17T10:00:00Z", True),
    ],
)
def test_after(con: duckdb.DuckDBPyConnection, a: str, b: str, after: bool) -> None:
    row = con.execute("SELECT q_after(?, ?)", [a, b]).fetchone()
    assert row is not None and row[0] is after


def test_missing_is_null(con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute("SELECT q_after(NULL, '2020'), q_after('2020', NULL)").fetchone()
    assert row == (None, None)

"""The site table's cached checks and derived values."""

from __future__ import annotations

import pyarrow as pa
import pytest

from cardiobox.federated.site_table import ColumnError, SiteTable


def _table() -> SiteTable:
    return SiteTable(pa.table({"age": [50, 60, 70], "sex": ["f", "m", "f"]}), source="t")


def test_derived_values_are_made_once_per_key_and_failures_not_kept() -> None:
    table = _table()
    calls: list[str] = []

    def make(tag: str) -> int:
        calls.append(tag)
        return len(calls)

    assert table.derived(("a",), lambda: make("a")) == 1
    assert table.derived(("a",), lambda: make("a")) == 1  # kept
    assert table.derived(("b",), lambda: make("b")) == 2
    assert calls == ["a", "b"]

    def fail() -> int:
        raise ValueError("bad rows")

    for _ in range(2):  # an error is raised every time, never kept as a value
        with pytest.raises(ValueError, match="bad rows"):
            table.derived(("c",), fail)


def test_checks_passed_are_remembered_but_failures_always_raise() -> None:
    table = _table()
    table.check(["age"], "number")
    table.check(["age"], "number")  # remembered: no second look
    for _ in range(2):
        with pytest.raises(ColumnError, match="not a number"):
            table.check(["sex"], "number")
        with pytest.raises(ColumnError, match="did you mean 'age'"):
            table.check(["agee"])
    table.check(["sex"], "string")

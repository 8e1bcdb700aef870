"""The metadata JSON: every column described, small cells suppressed, dates by month only."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cardiobox.cohort.compile import Column
from cardiobox.cohort.metadata import describe_table

if TYPE_CHECKING:
    from tests.cohort.conftest import Site, Store


@pytest.fixture(scope="module")
def thirteen(new_site: Callable[[], Site]) -> Store:
    """13 patients: p01-p10 women admitted 2020-01-01..10, p11-p13 men admitted 2020-02-01..03;
    creatinine 60, 65, ..., 120 (one each); diabetes for p01-p10; LVEF for p01-p04 only."""
    s = new_site()
    for k in range(1, 14):
        pid = f"p{k:02d}"
        woman = k <= 10
        day = f"2020-01-{k:02d}" if woman else f"2020-02-{k - 10:02d}"
        s.patient(pid, "female" if woman else "male", born="1950-01-01")
        s.stay(f"e{k:02d}", pid, f"{day}T10:00", f"{day}T20:00")
        s.obs(pid, "creatinine", 60 + 5 * (k - 1), f"{day}T11:00")
        if woman:
            s.condition(pid, "E11.9", "2010-01-01")
        if k <= 4:
            s.obs(pid, "lvef", 25 + 5 * k, f"{day}T12:00")
    return s.build()


FEATURES: list[dict[str, Any]] = [
    {"name": "sex", "demographic": "sex"},
    {"name": "admitted", "demographic": "index_time"},
    {"name": "crea", "variable": "creatinine", "description": "creatinine on admission"},
    {"name": "dm", "variable": "diabetes", "agg": "any"},
    {"name": "lvef", "variable": "lvef"},
    {"name": "k", "variable": "potassium"},
]


def columns(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in metadata["columns"]}


@pytest.fixture(scope="module")
def metadata(thirteen: Store) -> dict[str, Any]:
    return thirteen.extract(*FEATURES).metadata


def test_top_level(metadata: dict[str, Any]) -> None:
    assert metadata["rows"] == 13
    assert metadata["min_cell"] == 10
    assert metadata["cohort"] == "test"
    assert metadata["feature_set"] == "test"
    assert metadata["site"] == "site.duckdb"
    assert [c["name"] for c in metadata["columns"]] == [
        "row_id", "patient_id", "encounter_id", "index_time",
        "sex", "admitted", "crea", "dm", "lvef", "k",
    ]  # fmt: skip
    # no potassium for anybody: an empty column, and a warning about it
    assert any("column k: no record of potassium" in w for w in metadata["warnings"])


def test_keys_are_described_not_summarised(metadata: dict[str, Any]) -> None:
    cols = columns(metadata)
    for key in ("row_id", "patient_id", "encounter_id", "index_time"):
        assert cols[key]["kind"] == "key"
        assert "summary" not in cols[key]
    assert cols["patient_id"]["description"] == "pseudonymised patient id of the site"


def test_numeric_summary(metadata: dict[str, Any]) -> None:
    crea = columns(metadata)["crea"]
    assert (crea["type"], crea["unit"], crea["variable"]) == ("double", "umol/L", "creatinine")
    assert crea["description"] == "creatinine on admission"
    assert (crea["missing"], crea["missing_share"]) == (0, 0.0)
    # 60, 65, ..., 120 (13 values): mean 90; deviations 5 x (-6..6), sum of squares
    # 25 x 182 = 4550, sd sqrt(4550 / 12) = 19.4722; quartiles at positions 3, 6, 9 of 0..12
    # (linear interpolation): 75, 90, 105
    assert crea["summary"] == {
        "n": 13,
        "mean": 90.0,
        "sd": 19.4722,
        "p25": 75.0,
        "median": 90.0,
        "p75": 105.0,
    }


def test_small_cells_are_suppressed(metadata: dict[str, Any]) -> None:
    cols = columns(metadata)
    # 10 women, 3 men: 3 is below 10
    assert cols["sex"]["summary"] == {"n": 13, "counts": {"female": 10, "male": "<10"}}
    # diabetes: 10 true, 3 false
    assert cols["dm"]["type"] == "bool"
    assert cols["dm"]["summary"] == {"n": 13, "counts": {"False": "<10", "True": 10}}


def test_numeric_summary_left_out_below_min_cell(metadata: dict[str, Any]) -> None:
    lvef = columns(metadata)["lvef"]
    # 4 values (30, 35, 40, 45): neither the count nor the summary is published; 9 missing is
    # below 10 too, and so is its share (9 / 13 would give it back)
    assert lvef["summary"] == {"n": "<10", "suppressed": True}
    assert lvef["missing"] == "<10"
    assert lvef["missing_share"] is None
    k = columns(metadata)["k"]
    # 13 missing of 13
    assert (k["missing"], k["missing_share"], k["summary"]) == (
        13,
        1.0,
        {"n": 0, "suppressed": True},
    )


def test_dates_only_by_month(metadata: dict[str, Any]) -> None:
    admitted = columns(metadata)["admitted"]
    assert admitted["type"] == "timestamp[us]"
    # ten admissions in January 2020, three in February
    assert admitted["summary"] == {"n": 13, "months": {"2020-01": 10, "2020-02": "<10"}}
    # no day of any date anywhere in the metadata
    text = json.dumps(metadata)
    assert "2020-01-0" not in text and "2020-02-0" not in text


def test_min_cell_is_a_parameter(thirteen: Store) -> None:
    cols = columns(thirteen.extract(*FEATURES, min_cell=3).metadata)
    assert cols["sex"]["summary"]["counts"] == {"female": 10, "male": 3}
    assert cols["admitted"]["summary"]["months"] == {"2020-01": 10, "2020-02": 3}
    # 4 LVEF values with 4 distinct values: counts per value, each 1 (below 3)
    assert cols["lvef"]["summary"] == {
        "n": 4,
        "counts": {"30": "<3", "35": "<3", "40": "<3", "45": "<3"},
    }
    assert (cols["lvef"]["missing"], cols["lvef"]["missing_share"]) == (9, 0.6923)  # 9 / 13


def test_written_beside_the_table(thirteen: Store, tmp_path: Path) -> None:
    out = tmp_path / "out" / "table.parquet"
    result = thirteen.extract(*FEATURES, out=out)
    assert result.out == str(out)
    table = pq.read_table(out)
    assert table.num_rows == 13
    assert table.column_names[:4] == ["row_id", "patient_id", "encounter_id", "index_time"]
    written = json.loads((tmp_path / "out" / "table.parquet.metadata.json").read_text())
    assert written == json.loads(json.dumps(result.metadata))
    assert written["attrition"] == [
        {"step": 0, "kind": "entry", "label": "encounters", "rows": 13, "patients": 13},
        {
            "step": 1,
            "kind": "selection",
            "label": "first qualifying index per patient",
            "rows": 13,
            "patients": 13,
        },
    ]


def test_describe_table_directly() -> None:
    # a date column, a string column with a missing value, a constant number
    table = pa.table(
        {
            "d": pa.array([datetime.date(2020, 1, 5)] * 10 + [datetime.date(2020, 2, 1), None]),
            "s": pa.array(["a"] * 11 + [None]),
            "x": pa.array([1.5] * 12),
        }
    )
    meta = describe_table(table, [Column("d", "a date"), Column("s", "text"), Column("x", "x")])
    cols = columns(meta)
    # one missing value is a small cell: n (11 of 12 rows) would give it back, so n is a bound
    assert cols["d"]["summary"] == {"n": ">2", "months": {"2020-01": 10, "2020-02": "<10"}}
    assert (cols["d"]["missing"], cols["d"]["missing_share"]) == ("<10", None)
    assert cols["s"]["summary"] == {"n": ">2", "counts": {"a": 11}}
    # a number with one value is summarised as counts
    assert cols["x"]["summary"] == {"n": 12, "counts": {"1.5": 12}}
    # an empty table: nothing to count
    empty = describe_table(table.slice(0, 0), [Column("x", "x")])
    assert empty["rows"] == 0
    assert columns(empty)["x"]["missing_share"] is None
    assert columns(empty)["x"]["summary"] == {"n": 0, "suppressed": True}

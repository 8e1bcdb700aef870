"""Drafting a domain from a table: nice bounds, observed categories, loudly not private."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pytest

from cardiobox.synth.domain import DerivedDomainWarning, Domain, DomainError
from cardiobox.synth.draft import draft_domain, nice_bounds
from cardiobox.synth.encode import decode, encode

ROOT = Path(__file__).resolve().parents[2]
HF = ROOT / "data" / "heart_failure_clinical_records" / "heart_failure_clinical_records_dataset.csv"


@pytest.mark.parametrize(
    ("low", "high", "whole", "want"),
    [
        (29, 77, False, (20, 80)),
        (126, 564, False, (100, 600)),
        (-2.6, 6.2, False, (-3, 7)),
        (0.5, 9.4, False, (0, 10)),
        (25100, 850000, False, (0, 900000)),
        (0.012, 0.087, False, (0.01, 0.09)),
        (4, 7, True, (4, 7)),
        (5, 5, True, (5, 6)),
    ],
)
def test_nice_bounds(low: float, high: float, whole: bool, want: tuple[float, float]) -> None:
    lo, hi = nice_bounds(low, high, whole)
    assert (lo, hi) == pytest.approx(want)
    assert lo <= low and high <= hi


def test_draft_of_the_heart_failure_records(tmp_path: Path) -> None:
    t = pv.read_csv(HF)
    with pytest.warns(DerivedDomainWarning, match="NOT private"):
        d = draft_domain(t)
    assert d.derived_from_data and d.note and "NOT private" in d.note
    assert d.names == t.column_names
    assert d.column("sex").kind == "categorical" and d.column("sex").categories == [0, 1]
    assert d.column("DEATH_EVENT").categories == [0, 1]
    age = d.column("age")  # float64 with 47 values
    assert age.kind == "numeric" and age.bounds == (40, 100)
    time = d.column("time")  # int64: 4..285
    assert time.kind == "integer" and time.bounds == (0, 300)
    assert d.column("ejection_fraction").bounds == (10, 80)
    # the draft encodes its own table with nothing out of range, and decodes the same types
    with pytest.warns(DerivedDomainWarning, match="encoding with domain 'draft'"):
        e = encode(t, d)
    assert sum(e.out_of_range.values()) == 0
    out = decode(e.codes, d, np.random.default_rng(0))
    assert out.schema == t.schema
    # the saved YAML starts with the warning
    with pytest.warns(DerivedDomainWarning):
        text = d.save(tmp_path / "draft.yaml").read_text()
        assert text.startswith("# DRAFTED FROM THE DATA")
        assert Domain.load(tmp_path / "draft.yaml") == d


def test_draft_kinds_by_arrow_type() -> None:
    t = pa.table(
        {
            "flag": [True, False, None, True],
            "code": pa.array([1.0, 3.0, 3.0, None]),  # coded numbers keep their float type
            "ward": pa.array(["a", "b", "b", None]).dictionary_encode(),
            "admitted": pa.array([dt.date(2019, 3, 2), dt.date(2021, 7, 1), None, None]),
            "seen": pa.array([dt.datetime(2020, 1, 1, 8), None, None, None], pa.timestamp("ms")),
            "lab": pa.array([0.12, 3.3, 2.5, 1.0], pa.float32()),
        }
    )
    with pytest.warns(DerivedDomainWarning):
        d = draft_domain(t, bins=10)
        assert d.column("flag").kind == "boolean"
        code = d.column("code")
        assert (code.kind, code.categories, code.dtype) == ("categorical", [1, 3], "float64")
        assert d.column("ward").categories == ["a", "b"]
        admitted = d.column("admitted")
        assert admitted.kind == "date" and admitted.origin == dt.date(2019, 1, 1)
        assert admitted.bounds == (0, (dt.date(2021, 12, 31) - dt.date(2019, 1, 1)).days)
        assert d.column("seen").dtype == "timestamp[ms]"
        assert d.column("lab").dtype == "float32" and d.column("lab").bounds == (0, 4)
        e = encode(t, d)
        assert sum(e.out_of_range.values()) == 0
        assert decode(e.codes, d, np.random.default_rng(0)).schema.field("seen").type == (
            pa.timestamp("ms")
        )


def test_draft_refuses_what_it_cannot_describe() -> None:
    ids = pa.table({"id": [f"p{i}" for i in range(60)]})
    with pytest.raises(DomainError, match="'id' has more than 50 distinct strings"):
        draft_domain(ids)
    with pytest.raises(DomainError, match="'x' holds no values"):
        draft_domain(pa.table({"x": pa.array([None, None], pa.float64())}))
    with pytest.raises(DomainError, match="empty"):
        draft_domain(pa.table({"x": pa.array([], pa.float64())}))
    with pytest.raises(DomainError, match="'l' is list"):
        draft_domain(pa.table({"l": [[1], [2]]}))

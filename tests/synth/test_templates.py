"""Domains from public metadata: the data dictionary, feature sets and the built-in templates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pytest

from cardiobox.cdm import load_dictionary
from cardiobox.cohort import extract
from cardiobox.ingest.units import conversion
from cardiobox.store import SiteStore
from cardiobox.synth.domain import ColumnDomain, Domain, DomainError
from cardiobox.synth.encode import OutOfRangeWarning, decode, encode
from cardiobox.synth.templates import (
    AGE_BOUNDS,
    CLINICAL_EDGES,
    LOG_START,
    domain_for_feature_set,
    domain_for_variables,
    horizon_days,
    log_edges,
    template,
    template_names,
)

ROOT = Path(__file__).resolve().parents[2]
UCI = ROOT / "data" / "uci_heart_disease"
UCI_COLUMNS = "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,num"
HF = ROOT / "data" / "heart_failure_clinical_records" / "heart_failure_clinical_records_dataset.csv"
LIBRARY = ROOT / "src" / "cardiobox" / "cohort" / "library"
KEYS = ["row_id", "patient_id", "encounter_id", "index_time"]


def ends(col: ColumnDomain) -> tuple[float, float]:
    e = col.bin_edges()
    return (float(col.bounds[0]), float(col.bounds[1])) if col.bounds else (e[0], e[-1])


def read_uci(path: Path) -> pa.Table:
    return pv.read_csv(
        path,
        read_options=pv.ReadOptions(column_names=UCI_COLUMNS.split(",")),
        convert_options=pv.ConvertOptions(null_values=["?"]),
    )


# -- the data dictionary ----------------------------------------------------------------------


def buildable() -> list[str]:
    out = []
    for v in load_dictionary():
        if v.value_type in ("date", "dateTime", "period", "string"):
            continue
        if v.value_type == "code" and not v.answers:
            continue
        out.append(v.id)
    return out


def test_every_variable_column_takes_its_bounds_from_the_dictionary() -> None:
    ids = buildable()
    d = domain_for_variables(ids)
    dictionary = load_dictionary()
    assert d.names == ids
    for col in d.columns:
        v = dictionary[col.variable or ""]
        if v.value_type in ("quantity", "integer", "decimal"):
            assert v.range is not None
            assert ends(col) == (v.range[0], v.range[1]), col.name
            assert col.unit == v.unit
        elif v.value_type in ("boolean", "presence"):
            assert col.kind == "boolean"
        else:
            assert col.kind == "categorical" and col.categories
    assert d.column("nyha_class").categories == [1, 2, 3, 4]
    assert d.column("sex").categories == ["male", "female", "other", "unknown"]
    assert d.column("lvef").levels == 20  # no heavy tail: equal-width bins


def test_heavy_tailed_labs_get_log_like_edges() -> None:
    d = domain_for_variables(["nt_probnp", "hs_troponin_t", "ferritin", "crp", "creatinine"])
    nt = d.column("nt_probnp").edges
    assert nt == CLINICAL_EDGES["nt_probnp"] and {125, 300, 450, 900, 1800} <= set(nt)
    trop = d.column("hs_troponin_t").edges
    assert trop is not None and trop[:5] == [0, 1, 2, 5, 10] and trop[-1] == 1_000_000
    assert {90, 110, 130, 150, 170, 210, 250} <= set(d.column("creatinine").edges or [])
    for name in ("hs_troponin_t", "ferritin", "crp"):
        e = np.asarray(d.column(name).edges)
        ratios = e[2:] / e[1:-1]
        assert (ratios <= 2.5 + 1e-9).all() and (ratios > 1).all()  # 1-2-5 steps
        assert name in LOG_START


def test_log_edges() -> None:
    assert log_edges(0, 1000, 1) == [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    assert log_edges(5, 4000, 20) == [5, 20, 50, 100, 200, 500, 1000, 2000, 4000]
    assert log_edges(0, 150, 3) == [0, 3, 5, 10, 20, 50, 100, 150]


def test_variables_without_public_domain_are_refused() -> None:
    with pytest.raises(DomainError, match=r"'birth_date' .* no public domain"):
        domain_for_variables(["birth_date"])
    with pytest.raises(DomainError, match="'cause_of_death' is coded without a list"):
        domain_for_variables(["cause_of_death"])
    with pytest.raises(DomainError, match="'nt_pro_bnp' is not a variable"):
        domain_for_variables(["nt_pro_bnp"])


# -- feature sets -----------------------------------------------------------------------------


def test_feature_set_domain_from_its_items() -> None:
    d = domain_for_feature_set("hf_features")
    dictionary = load_dictionary()
    assert d.column("age").bounds == AGE_BOUNDS and d.column("age").kind == "integer"
    assert d.column("sex").categories == ["male", "female", "other", "unknown"]
    checked = 0
    for col in d.columns:
        v = dictionary[col.variable] if col.variable else None
        if v is not None and v.value_type == "quantity" and col.kind == "numeric":
            assert v.range is not None
            assert ends(col) == (v.range[0], v.range[1]), col.name
            checked += 1
    assert checked >= 15
    assert d.column("nyha_admission").categories == [1, 2, 3, 4]
    assert d.column("hx_diabetes").kind == "boolean"
    assert d.column("previous_hf_records").kind == "integer"
    for name, horizon in [("death_30d", 30), ("death_1y", 366), ("hf_readmission_1y", 366)]:
        flag, days = d.column(name), d.column(f"{name}_days")
        assert flag.kind == "boolean"
        assert days.event == name and days.bounds == (0, horizon)
    assert horizon_days("1 year") == 366 and horizon_days("6 months") == 186


def test_feature_set_domain_decodes_to_the_extracted_types(tmp_path: Path) -> None:
    """The domain's Arrow types are those of the analysis table cohort.extract writes."""
    store = tmp_path / "empty.duckdb"
    with SiteStore(store):
        pass
    result = extract(LIBRARY / "hf_admissions.yaml", store, features=LIBRARY / "hf_features.yaml")
    assert result.table is not None
    table = result.table.drop_columns(KEYS)
    d = domain_for_feature_set(LIBRARY / "hf_features.yaml")
    assert encode(table, d).codes.shape == (0, len(d.columns))
    synthetic = decode(np.zeros((3, len(d.columns)), dtype=np.int64), d, np.random.default_rng())
    assert synthetic.schema == table.schema


def test_feature_set_units_and_unbuildable_columns() -> None:
    fs = {
        "cardiobox_features": 1,
        "name": "t",
        "features": [
            {"name": "crea_mg", "variable": "creatinine", "unit": "mg/dL", "round": 2},
            {"name": "k_sd", "variable": "potassium", "agg": "sd"},
            {
                "name": "first_hf",
                "variable": "heart_failure",
                "agg": "days_since_first",
                "window": "before",
            },
        ],
    }
    from cardiobox.cohort.definition import FeatureSet

    d = domain_for_feature_set(FeatureSet.model_validate(fs))
    crea = d.column("crea_mg")
    lo, hi = ends(crea)
    factor = float(conversion("creatinine", "umol/L", "mg/dL").factor)
    assert lo == pytest.approx(5 * factor, rel=1e-3) and hi == pytest.approx(
        4000 * factor, rel=1e-3
    )
    assert crea.decimals == 2 and crea.unit == "mg/dL"
    assert d.column("k_sd").bounds == (0, 9)
    assert ends(d.column("first_hf")) == (0, 36500)
    fs["features"] = [{"name": "when", "demographic": "index_time"}]
    with pytest.raises(DomainError, match="'when' is the index time"):
        domain_for_feature_set(FeatureSet.model_validate(fs))
    fs["features"] = [{"name": "x", "variable": "no_such_variable"}]
    with pytest.raises(DomainError, match="not a variable of the data model"):
        domain_for_feature_set(FeatureSet.model_validate(fs))
    with pytest.raises(DomainError, match="not a feature set"):
        domain_for_feature_set("hf_admissions")


# -- built-in templates -----------------------------------------------------------------------


def test_builtin_templates_load_by_name() -> None:
    assert template_names() == ["heart_failure_records", "uci_heart_disease"]
    assert template("uci-heart-disease").name == "uci_heart_disease"
    with pytest.raises(DomainError, match="no built-in domain template 'cleveland'"):
        template("cleveland")


@pytest.mark.parametrize("name", ["uci_heart_disease", "heart_failure_records"])
def test_template_bounds_lie_inside_the_dictionary_ranges(name: str) -> None:
    """Bounds are public: the data dictionary's plausible ranges, in the file's units."""
    dictionary = load_dictionary()
    d = template(name)
    assert not d.derived_from_data
    for col in d.columns:
        if col.kind not in ("numeric", "integer") or col.variable is None:
            continue
        v = dictionary[col.variable]
        assert v.range is not None
        lo, hi = ends(col)
        if v.unit is not None and col.unit is not None:
            conv = conversion(v.id, col.unit, v.unit)  # file unit -> canonical unit
            lo, hi = (x * float(conv.factor) + float(conv.offset) for x in (lo, hi))
        assert v.range[0] <= lo and hi <= v.range[1], col.name


#: Out-of-range values of each UCI file, and why: the Switzerland and VA files write 0 for a
#: cholesterol that was not measured, and one VA row has a resting blood pressure of 0.
UCI_OUT_OF_RANGE = {
    "cleveland": {},
    "hungarian": {},
    "switzerland": {"chol": 123},
    "va": {"chol": 49, "trestbps": 1},
}


@pytest.mark.parametrize("site", list(UCI_OUT_OF_RANGE))
def test_uci_template_encodes_every_file(site: str) -> None:
    d = template("uci_heart_disease")
    t = read_uci(UCI / f"processed.{site}.data")
    expected = UCI_OUT_OF_RANGE[site]
    if expected:
        with pytest.warns(OutOfRangeWarning, match="chol"):
            e = encode(t, d)
    else:
        e = encode(t, d)
    assert {k: n for k, n in e.out_of_range.items() if n} == expected
    # the explanation holds value by value: exactly the zeros are out of range
    for col, n in expected.items():
        zeros = np.asarray(t[col].fill_null(-1).to_numpy()) == 0
        assert int(zeros.sum()) == n
        assert (e.codes[zeros, d.position(col)] == d.column(col).out_of_range_code).all()
    assert e.missing == {c: t[c].null_count for c in t.column_names}
    # decoding gives values in the same bins and categories; out of range comes back NULL
    out = decode(e.codes, d, np.random.default_rng(0))
    again = encode(out, d).codes
    for j, col in enumerate(d.columns):
        want = np.where(e.codes[:, j] == col.out_of_range_code, col.missing_code, e.codes[:, j])
        np.testing.assert_array_equal(again[:, j], want, err_msg=col.name)


def test_heart_failure_template_encodes_the_records() -> None:
    d = template("heart_failure_records")
    t = pv.read_csv(HF)
    e = encode(t, d)
    assert sum(e.out_of_range.values()) == 0 and sum(e.missing.values()) == 0
    out = decode(e.codes, d, np.random.default_rng(1))
    assert out.schema.field("DEATH_EVENT").type == pa.int64()
    assert out["DEATH_EVENT"].to_pylist() == t["DEATH_EVENT"].to_pylist()
    time = np.asarray(out["time"].to_numpy())
    assert time.min() >= 0 and time.max() <= 365


def test_templates_round_trip_through_yaml(tmp_path: Path) -> None:
    for name in template_names():
        d = template(name)
        assert Domain.load(d.save(tmp_path / f"{name}.yaml")) == d

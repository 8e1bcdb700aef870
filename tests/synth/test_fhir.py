"""Synthetic admissions exported as FHIR resources load cleanly and read back through cohorts."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from cardiobox.cdm.dictionary import load_dictionary
from cardiobox.cohort import count, extract
from cardiobox.cohort.library import resolve
from cardiobox.synth.domain import Domain
from cardiobox.synth.encode import decode
from cardiobox.synth.fhir import (
    SYNTHETIC_TAG_SYSTEM,
    ExportError,
    build_resources,
    specific_code,
    to_store,
)
from cardiobox.synth.templates import domain_for_feature_set

N = 60


@pytest.fixture(scope="module")
def domain() -> Domain:
    return domain_for_feature_set("hf_features")


def synthetic_table(domain: Domain, n: int = N, seed: int = 3) -> pa.Table:
    """Random valid codes of every column (no missing values), decoded; adults only."""
    rng = np.random.default_rng(seed)
    codes = np.column_stack([rng.integers(0, c.levels, size=n) for c in domain.columns])
    table = decode(codes, domain, rng)
    ages = pa.array(rng.integers(18, 100, size=n), pa.int64())
    return table.set_column(table.column_names.index("age"), "age", ages)


@pytest.fixture(scope="module")
def loaded(domain: Domain, tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, Path]:
    table = synthetic_table(domain)
    store = tmp_path_factory.mktemp("synth") / "synthetic.duckdb"
    report = to_store(table, domain, store, seed=1)
    assert report.quarantined == 0, report.examples
    assert report.read == report.stored > 4 * N
    return table, store


def test_every_resource_is_tagged_synthetic(loaded: tuple[pa.Table, Path]) -> None:
    _, store = loaded
    con = duckdb.connect(str(store), read_only=True)
    total, tagged, patients = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE resource->>'$.meta.tag[0].system' = ?), "
        "count(*) FILTER (WHERE resource_type = 'Patient') FROM resources",
        [SYNTHETIC_TAG_SYSTEM],
    ).fetchone()  # type: ignore[misc]
    con.close()
    assert total == tagged and patients == N


def test_the_cohort_selects_every_row(loaded: tuple[pa.Table, Path]) -> None:
    _, store = loaded
    assert count(resolve("hf_admissions"), store).rows == N


def test_features_read_back_equal_the_synthetic_values(loaded: tuple[pa.Table, Path]) -> None:
    table, store = loaded
    result = extract(resolve("hf_admissions"), store, features=resolve("hf_features"))
    assert result.table is not None
    back = result.table.to_pydict()
    order = np.argsort([int(p.split("-")[1]) for p in back["patient_id"]])
    got = {k: [v[i] for i in order] for k, v in back.items()}
    want = table.to_pydict()
    assert got["patient_id"] == [f"synth-{i + 1}" for i in range(N)]
    assert np.all(np.abs(np.array(got["age"]) - np.array(want["age"])) <= 1)
    assert got["sex"] == want["sex"]
    for col in ("sbp_admission", "heart_rate_admission", "nt_probnp_admission", "lvef_stay"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-9, err_msg=col)
    np.testing.assert_allclose(got["length_of_stay"], want["length_of_stay"], atol=1 / 86400)
    assert got["nyha_admission"] == want["nyha_admission"]
    # flags whose code set no other column's code falls in
    for col in ("hx_diabetes", "hx_copd", "med_before_statin", "med_stay_loop_diuretic"):
        assert [bool(x) for x in got[col]] == [bool(x) for x in want[col]], col
    # a death within the year is a death within the year, whatever the follow-up end
    died = [
        e == 1 and d <= 365 for e, d in zip(want["death_1y"], want["death_1y_days"], strict=True)
    ]
    assert all(g == 1 for g, w in zip(got["death_1y"], died, strict=True) if w)


def test_specific_codes_avoid_other_groups() -> None:
    d = load_dictionary()
    groups = [d[v] for v in ("ras_inhibitor", "ace_inhibitor", "angiotensin_receptor_blocker")]
    code = specific_code(d["ras_inhibitor"], groups, "http://www.whocc.no/atc")
    assert not d["ace_inhibitor"].matches("http://www.whocc.no/atc", code)
    assert not d["angiotensin_receptor_blocker"].matches("http://www.whocc.no/atc", code)
    phenotypes = [d["ischemic_heart_disease"], d["angina_pectoris"], d["myocardial_infarction"]]
    code = specific_code(d["ischemic_heart_disease"], phenotypes, "http://hl7.org/fhir/sid/icd-10")
    assert code not in ("I20", "I21", "I22")
    with pytest.raises(ExportError, match=r"no http://loinc\.org code"):
        specific_code(d["diabetes"], [], "http://loinc.org")


def test_a_table_without_age_is_refused(domain: Domain) -> None:
    table = synthetic_table(domain, n=3).drop(["age"])
    with pytest.raises(ExportError, match="'age'"):
        build_resources(table, domain)

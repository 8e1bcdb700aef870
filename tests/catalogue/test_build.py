"""Building descriptions from real stores: a demo hospital and UCI Cleveland.

Aggregates are checked against the raw Cleveland lines (counts, mean, percentiles computed
with numpy), and every count of every description is checked against the minimum cell count.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pytest
from tests.catalogue.stores import CLEVELAND_PROFILE, UCI, cleveland_lines

from cardiobox.catalogue.build import (
    CatalogueError,
    build_description,
    documents_from_description,
)
from cardiobox.catalogue.model import DatasetDescription
from cardiobox.catalogue.profile import ProfileError
from cardiobox.catalogue.rdf import to_graph
from cardiobox.catalogue.validate import validate
from cardiobox.cohort import extract
from cardiobox.errors import InputError
from cardiobox.privacy.policy import SitePolicy
from cardiobox.store import SiteStore

ROWS = 40  # patients of the Cleveland test store (stores.make_cleveland_store)
CHEST_PAIN = {
    "1": "429559004", "2": "371807002", "3": "non-anginal-chest-pain",
    "4": "asymptomatic-no-chest-pain",
}  # fmt: skip


def all_counts(d: DatasetDescription) -> list[tuple[str, int]]:
    """Every published count of a description, named."""
    out = [("individuals", d.number_of_unique_individuals or 0)]
    for v in d.variables:
        out.append((f"{v.id}.patients", v.patients or 0))
        if v.summary:
            out.append((f"{v.id}.n", v.summary.n))
        out += [(f"{v.id}.bin", b.count or 0) for b in v.histogram]
        out += [(f"{v.id}.{c.code}", c.count or 0) for c in v.categories]
    for dist in d.distributions:
        out.append((f"{dist.iri}.rows", dist.rows or 0))
    return out


def test_demo_hospital_builds_and_validates(
    demo_store: Path, demo_description: DatasetDescription
) -> None:
    d = demo_description
    report = validate(to_graph(d))
    assert report.conforms, report.summary()
    assert d.site == "hospital_es" and d.number_of_unique_individuals == 12
    con = duckdb.connect(str(demo_store), read_only=True)
    try:
        _, first, last = con.execute(
            "SELECT count(*), min(left(json_extract_string(resource, '$.actualPeriod.start'), 7)),"
            " max(left(json_extract_string(resource, '$.actualPeriod.start'), 7)) "
            "FROM resources WHERE resource_type = 'Encounter'"
        ).fetchone() or (0, None, None)
        total = (con.execute("SELECT count(*) FROM resources").fetchone() or (0,))[0]
    finally:
        con.close()
    assert d.number_of_records == total
    # activity starts with the first admission; lab results may come later, never earlier
    assert d.temporal is not None and d.temporal.start == first
    assert d.temporal.end is not None and d.temporal.end >= last
    assert "http://www.wikidata.org/entity/P4338" in d.coding_systems  # LOINC
    assert d.languages == ("http://publications.europa.eu/resource/authority/language/SPA",)
    ids = {v.id for v in d.variables}
    assert {"sex", "birth_date", "potassium", "lvef", "heart_failure"} - ids == {"heart_failure"}
    assert d.variable("sex").patients == 12 and d.variable("sex").completeness == 100.0
    assert all(not (0 < n < 10) for _, n in all_counts(d))
    assert d.min_typical_age is not None and d.max_typical_age is not None
    assert d.min_typical_age % 5 == 0 and d.max_typical_age % 5 == 0


def test_uci_cleveland_builds_and_validates(cleveland_description: DatasetDescription) -> None:
    d = cleveland_description
    report = validate(to_graph(d))
    assert report.conforms, report.summary()
    assert d.site == "cleveland" and d.number_of_unique_individuals == ROWS
    assert d.temporal is None  # the UCI data have no dates
    ages = np.array([float(r[0]) for r in cleveland_lines(ROWS)])
    low, high = np.quantile(ages, [0.05, 0.95])
    assert (d.min_typical_age, d.max_typical_age) == (5 * int(low // 5), 5 * int(-(-high // 5)))
    assert d.variable("recorded_age").completeness == 100.0
    assert all(not (0 < n < 10) for _, n in all_counts(d))


def test_aggregates_match_the_raw_file(cleveland_store: Path) -> None:
    d = build_description(cleveland_store, CLEVELAND_PROFILE, SitePolicy(min_cell_count=1))
    raw = cleveland_lines(ROWS)
    sex = Counter("male" if r[1] == "1.0" else "female" for r in raw)
    assert {c.code: c.count for c in d.variable("sex").categories} == dict(sex)
    cp = Counter(CHEST_PAIN[r[2].removesuffix(".0")] for r in raw)
    assert {c.code: c.count for c in d.variable("chest_pain_type").categories} == dict(cp)
    ages = np.array([float(r[0]) for r in raw])
    age = d.variable("recorded_age")
    assert age.summary is not None and age.summary.n == ROWS
    assert age.summary.mean == pytest.approx(ages.mean(), abs=1e-6)
    assert age.summary.sd == pytest.approx(ages.std(ddof=1), abs=1e-6)
    expected = np.quantile(ages, [0.05, 0.25, 0.5, 0.75, 0.95])
    got = [age.summary.p05, age.summary.p25, age.summary.median, age.summary.p75, age.summary.p95]
    assert got == pytest.approx(expected, abs=1e-6)
    # public bins of ten years (ten of the quality report's one-year bins), counts exact
    assert sum(b.count or 0 for b in age.histogram) == ROWS
    for b in age.histogram:
        assert b.lower is not None and b.upper is not None and b.lower % 10 == 0
        assert b.count == int(((ages >= b.lower) & (ages < b.upper)).sum())
    assert d.variable("exercise_induced_angina").categories[0].code in ("false", "true")


def test_small_cells_are_withheld_everywhere(cleveland_store: Path) -> None:
    d = build_description(cleveland_store, CLEVELAND_PROFILE, SitePolicy(min_cell_count=30))
    counts = all_counts(d)
    assert [(name, n) for name, n in counts if 0 < n < 30] == []
    # 40 patients have a sex, but fewer than 30 women: the men (their complement) are
    # withheld too, so no answer count is left and the variable shows no categories
    sex = d.variable("sex")
    women = sum(r[1] == "0.0" for r in cleveland_lines(ROWS))
    assert sex.patients == ROWS and 0 < women < 30 and sex.categories == ()


def test_feature_table_becomes_a_distribution(cleveland_store: Path, tmp_path: Path) -> None:
    table = tmp_path / "uci.parquet"
    extract(UCI / "cohort.yaml", cleveland_store, UCI / "features.yaml", out=table)
    d = build_description(cleveland_store, CLEVELAND_PROFILE, features=table)
    dist = next(x for x in d.distributions if "features" in x.iri)
    assert dist.rows == ROWS and dist.format is not None and dist.format.endswith("PARQUET")
    cols = {c.name: c for c in dist.columns}
    assert cols["age"].variable == "recorded_age" and cols["age"].unit == "a"
    assert cols["age"].missing_share == 0.0
    assert [c.name for c in dist.columns][:2] == ["row_id", "patient_id"]
    assert validate(to_graph(d)).conforms


def test_unknown_variables_in_features_are_refused(cleveland_store: Path, tmp_path: Path) -> None:
    table = tmp_path / "uci.parquet"
    extract(UCI / "cohort.yaml", cleveland_store, UCI / "features.yaml", out=table)
    side = tmp_path / "uci.parquet.metadata.json"
    meta: dict[str, Any] = orjson.loads(side.read_bytes())
    meta["columns"][4]["variable"] = "age_in_moons"
    side.write_bytes(orjson.dumps(meta))
    with pytest.raises(CatalogueError, match="age_in_moons") as info:
        build_description(cleveland_store, CLEVELAND_PROFILE, features=table)
    assert info.value.rule == "unknown-variable"
    bare = tmp_path / "bare.csv"
    bare.write_text("patient_id,potassium,shoe_size\np1,4.1,42\n", "utf-8")
    with pytest.raises(CatalogueError, match="shoe_size"):
        build_description(cleveland_store, CLEVELAND_PROFILE, features=bare)
    good = tmp_path / "good.csv"
    good.write_text("patient_id,potassium\np1,4.1\n", "utf-8")
    d = build_description(cleveland_store, CLEVELAND_PROFILE, features=good)
    dist = next(x for x in d.distributions if "features" in x.iri)
    assert dist.rows is None  # one row: a small cell
    assert [c.variable for c in dist.columns] == [None, "potassium"]


def test_a_store_with_no_data_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    SiteStore(empty).close()
    with pytest.raises(CatalogueError, match="no patients") as info:
        build_description(empty, CLEVELAND_PROFILE)
    assert info.value.rule == "empty-store"
    with pytest.raises(InputError, match="no site store"):
        build_description(tmp_path / "missing.duckdb", CLEVELAND_PROFILE)


def test_a_profile_missing_a_required_field_is_refused(
    cleveland_store: Path, tmp_path: Path
) -> None:
    text = CLEVELAND_PROFILE.read_text("utf-8")
    profile = tmp_path / "p.yaml"
    profile.write_text(text.replace('legal_basis: ["eu-gdpr:A9-2-j"]', ""), "utf-8")
    with pytest.raises(ProfileError, match="missing required field 'legal_basis'"):
        build_description(cleveland_store, profile)


def test_quality_report_becomes_an_annotation(cleveland_store: Path, tmp_path: Path) -> None:
    report = tmp_path / "quality.json"
    summary = {"by_status": {"pass": 1, "fail": 1, "not-applicable": 1}}
    by_site = {"cleveland": {"by_status": {"pass": 200, "fail": 2, "not-applicable": 50}}}
    report.write_bytes(
        orjson.dumps(
            {
                "generated_at": "2024-05-30T10:00:00+00:00",
                "summary": {**summary, "by_site": by_site},
            }
        )
    )
    d = build_description(
        cleveland_store, CLEVELAND_PROFILE, quality_report=report, today=date(2024, 6, 1)
    )
    (qa,) = d.quality_annotations
    assert qa.checks == {"pass": 200, "fail": 2, "not-applicable": 50}
    assert qa.generated == date(2024, 5, 30) and "200 checks passed" in qa.text
    assert d.modified == date(2024, 6, 1)
    two_sites = {**by_site, "hungarian": by_site["cleveland"], "va": by_site["cleveland"]}
    del two_sites["cleveland"]
    report.write_bytes(orjson.dumps({"summary": {**summary, "by_site": two_sites}}))
    with pytest.raises(InputError, match="covers sites hungarian, va, not 'cleveland'"):
        build_description(cleveland_store, CLEVELAND_PROFILE, quality_report=report)
    report.write_text("{}", "utf-8")
    with pytest.raises(InputError, match="quality report"):
        build_description(cleveland_store, CLEVELAND_PROFILE, quality_report=report)


def test_an_inconsistent_profile_is_a_clear_error(cleveland_store: Path, tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(CLEVELAND_PROFILE.read_text("utf-8") + "issued: 2999-01-01\n", "utf-8")
    with pytest.raises(CatalogueError, match="issued 2999-01-01 is after modified") as info:
        build_description(cleveland_store, profile)
    assert info.value.rule == "invalid-description"


def test_search_documents(cleveland_description: DatasetDescription) -> None:
    docs = documents_from_description(cleveland_description)
    assert docs[0].id == "dataset:cleveland" and docs[0].kind == "dataset"
    assert docs[0].site == "cleveland" and "coronary" in docs[0].texts["en"]
    variables = {doc.variable_id: doc for doc in docs[1:]}
    assert set(variables) == {v.id for v in cleveland_description.variables}
    bp = variables["systolic_bp"]
    assert bp.id == "variable:cleveland:systolic_bp" and bp.kind == "variable"
    assert bp.labels["es"] and bp.texts["sv"]  # the dictionary's names, every language
    assert bp.facets["site"] == ("cleveland",) and bp.facets["coding_system"] == ("LOINC",)
    assert bp.facets["variable"] == ("systolic_bp",)

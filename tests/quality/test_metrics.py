"""Completeness per variable and over time, distributions, several sites."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.quality.conftest import TODAY

from cardiobox.cdm import load_dictionary
from cardiobox.quality import QualityResult, run_quality
from cardiobox.quality.distributions import bins_for, nice_step
from cardiobox.quality.report import report_json, validate_report
from cardiobox.store import SiteStore


def test_completeness_per_variable(planted_result: QualityResult) -> None:
    c = planted_result.sites[0].completeness
    assert c.patients == 10
    # potassium for 4 of the 10 patients (the `ghost` patient is not stored: not counted)
    assert c.with_value["potassium"] == 4 and c.pct("potassium") == pytest.approx(40.0)
    assert c.pct("body_weight") == pytest.approx(30.0)  # p1, p2, p9
    assert c.pct("sex") == 100.0 and c.pct("death_date") == pytest.approx(10.0)
    assert c.with_value["heart_failure"] == 2  # I50.9 matches I50 by prefix
    assert c.with_value["ace_inhibitor"] == 1  # ATC C09AA05
    assert c.pct("nt_probnp") == 0.0


def test_completeness_over_time(planted_result: QualityResult) -> None:
    c = planted_result.sites[0].completeness
    assert c.by_year["potassium"] == {2020: 4}
    assert c.active[2020] == 9  # p0..p8 have a dated record in 2020
    assert c.active[2022] == 1  # p9's observation
    # Patient-level variables have no year.
    assert "sex" not in c.by_year


def test_distribution_of_potassium(planted_result: QualityResult) -> None:
    (k,) = [d for d in planted_result.sites[0].distributions if d["variable"] == "potassium"]
    assert k["n"] == 20 and k["unit"] == "mmol/L"
    assert k["mean"] == pytest.approx(4.55) and k["min"] == 1.5 and k["max"] == 9.0
    h = k["histogram"]
    assert h["scale"] == "linear" and sum(h["counts"]) == 20
    assert h["below"] == 0 and h["above"] == 0
    assert len(h["edges"]) == len(h["counts"]) + 1
    assert h["edges"][0] <= 1.5 and h["edges"][-1] >= 9.0


def test_bins_come_from_the_dictionary_range() -> None:
    d = load_dictionary()
    b = bins_for(d["potassium"], log=False)
    assert b is not None and b.scale == "linear" and b.step == pytest.approx(0.1)
    assert b.edges[0] == pytest.approx(1.0) and b.edges[-1] == pytest.approx(10.0)
    lg = bins_for(d["nt_probnp"], log=True)
    assert lg is not None and lg.scale == "log" and lg.edges[0] == 0.0
    assert lg.edges[-1] >= 100000 and lg.n == 61  # [0, 0.1) and 6 decades of 10 bins
    assert nice_step(9.0) == pytest.approx(0.1) and nice_step(650) == pytest.approx(10)


def test_several_sites(planted_store: Path, synthea_store: Path) -> None:
    r = run_quality({"A": planted_store, "B": synthea_store}, today=TODAY)
    assert [s.site for s in r.sites] == ["A", "B"]
    a, b = (s.completeness for s in r.sites)
    assert a.pct("potassium") == pytest.approx(40.0) and b.pct("potassium") == 0.0
    assert b.pct("sex") == 100.0 and b.patients == 13
    summary = r.summary()
    assert set(summary["by_site"]) == {"A", "B"}
    assert summary["checks"] == 2 * len(r.sites[0].checks)
    failed_b = {f["id"] for f in summary["failed"] if f["site"] == "B"}
    # Synthea's three "Death Certification" encounters are dated after the death: an
    # impossibility in time, which fails at any rate.
    assert failed_b == {
        "binding.MedicationRequest.medication.concept",
        "after-death.encounter-start",
        "after-death.encounter-end",
    }


def test_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    SiteStore(path).close()
    r = run_quality([path], today=TODAY)
    assert r.summary()["by_status"]["not-applicable"] == len(r.checks)
    assert r.sites[0].completeness.patients == 0 and r.sites[0].distributions == []
    assert validate_report(report_json(r)) == []

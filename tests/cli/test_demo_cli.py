"""`cardiobox demo` runs the whole tour and reports what it did."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cardiobox.cli.main import app


def test_demo_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--dir", str(tmp_path / "demo"), "--patients", "100", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["data_model"]["variables"] >= 250
    store = summary["site_store"]
    assert store["read"] == store["stored"] + store["quarantined"] == 7164
    assert store["second_import_unchanged"] == store["stored"]
    assert summary["views"] == {"conditions": 555, "encounters": 1215, "medications": 1745}
    assert summary["bad_input"] == {
        "potassium 42 mmol/L": "range",
        "potassium in mg/dL": "unit",
        "date 2024-13-45": "structure",
    }
    assert (tmp_path / "demo" / "synthea_site.duckdb").exists()
    for name, h in summary["hospitals"].items():
        assert h["rows_read"] == h["rows_loaded"] + h["rows_quarantined"], name
        assert h["rows_quarantined"] == h["planted_quarantinable"], name
        assert Path(h["report"]).exists()
    assert summary["uci"]["cleveland"] == {
        "rows_read": 303,
        "rows_loaded": 303,
        "rows_quarantined": 0,
    }
    cohorts = summary["cohorts"]
    for name in ("hospital_es", "hospital_nl", "hospital_se"):
        assert cohorts[name]["rows"] > 0, name
        assert Path(cohorts[name]["out"]).exists()
    assert cohorts["uci_cleveland"]["rows"] == 303
    assert "thal" in cohorts["uci_cleveland"]["columns"]
    fed = summary["federated"]
    assert set(fed["count"]["per_site"]) == {"es", "nl", "se"}
    assert "coefficients" in fed["logreg"] or "refused" in fed["logreg"]
    assert fed["audit_entries"] >= 4
    synth = summary["synth"]
    assert synth["rows"] == cohorts["hospital_es"]["rows"]
    if "refused" not in synth:  # 100 patients may be too few to split and model
        assert synth["quarantined"] == 0 and synth["resources"] > synth["synthetic_rows"]
        assert 0 < synth["cohort_rows"] <= synth["synthetic_rows"] == synth["rows"]
        assert synth["guarantee"]["epsilon"] == 1.0 and synth["guarantee"]["delta"] == 1e-5
        assert {"fit_seconds", "two_way_tvd", "utility", "mia_auroc", "gate_passed"} <= set(synth)
        assert Path(synth["report"]).exists() and Path(synth["store"]).exists()
    notes = summary["notes"]
    assert set(notes) == {"hospital_es", "hospital_nl", "hospital_se"}
    for name, n in notes.items():
        assert n["notes"] > 0, name
        assert n["store"]["quarantined"] == 0, name
        assert n["store"]["stored"] == n["resources"], name
        assert 0 < n["absent_symptoms"] <= n["entities"]["SYMPTOM"], name
    transformer = summary["transformer_option"]
    assert set(transformer) == {"hospital_nl", "hospital_se"}
    for name, t in transformer.items():
        assert t["notes"] > 0 and t["transformer"] > 0 and t["both"] <= t["lexicon"], name
    catalogue = summary["catalogue"]
    assert all(site["accepted"] and site["variables"] > 0 for site in catalogue["sites"].values())
    for query, found in catalogue["searches"].items():
        assert found[0] == "lvef", query


def test_demo_prints_the_tour(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path / "demo"), "--patients", "30"])
    assert result.exit_code == 0, result.output
    for step in (
        "The cardiology data model",
        "site store",
        "SQL-on-FHIR views",
        "Bad input",
        "quality-checked",
        "UCI Heart Disease",
        "Cohorts and feature sets",
        "Federated analysis",
        "CardioSynth: a synthetic copy of a demo hospital",
        "Clinical notes in Spanish, Dutch and Swedish",
        "A catalogue of the federation",
    ):
        assert step in result.output

"""`cardiobox demo` runs the whole tour and reports what it did."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cardiobox.cli.main import app


def test_demo_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path / "demo"), "--json"])
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


def test_demo_prints_the_tour(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    for step in ("The cardiology data model", "site store", "SQL-on-FHIR views", "Bad input"):
        assert step in result.output

"""`cardiobox store` and `cardiobox cdm` commands, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cardiobox.cli.main import app

runner = CliRunner()


def test_import_json_accounting(tmp_path: Path, synthea_dir: Path) -> None:
    db = tmp_path / "site.duckdb"
    result = runner.invoke(app, ["store", "import", str(synthea_dir), "--site", str(db), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["read"] == report["stored"] + report["quarantined"] == 7164
    assert report["quarantined"] == 4

    stats = json.loads(runner.invoke(app, ["store", "stats", "--site", str(db), "--json"]).stdout)
    assert stats["by_type"]["Encounter"]["resources"] == 1215
    assert stats["quarantined"] == 4 and stats["patients"] == 13

    q = json.loads(runner.invoke(app, ["store", "quarantine", "--site", str(db), "--json"]).stdout)
    assert {item["rule"] for item in q["items"]} == {"missing-resourceType"}


def test_import_human_output(tmp_path: Path, synthea_dir: Path) -> None:
    result = runner.invoke(
        app,
        [
            "store",
            "import",
            str(synthea_dir / "Patient.000.ndjson.gz"),
            "--site",
            str(tmp_path / "s.duckdb"),
            "--fhir-version",
            "R4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "read 13 = stored 13" in result.stdout


def test_import_error_is_clear_json(tmp_path: Path) -> None:
    src = tmp_path / "p.ndjson"
    src.write_text('{"resourceType": "Patient", "id": "p"}\n', encoding="utf-8")
    result = runner.invoke(
        app, ["store", "import", str(src), "--site", str(tmp_path / "s.duckdb"), "--json"]
    )
    assert result.exit_code == 2
    err = json.loads(result.stdout)
    assert err["rule"] == "fhir-version" and err["location"]["file"] == str(src)


def test_stats_on_missing_store(tmp_path: Path) -> None:
    result = runner.invoke(app, ["store", "stats", "--site", str(tmp_path / "no.duckdb")])
    assert result.exit_code == 2
    assert "no site store" in result.output


def test_export(tmp_path: Path, synthea_store: Path) -> None:
    result = runner.invoke(
        app, ["store", "export", str(tmp_path / "out"), "--site", str(synthea_store), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resources"] == 7160
    assert (tmp_path / "out" / "manifest.json").exists()


def test_cdm_lookup_and_variables() -> None:
    result = runner.invoke(app, ["cdm", "lookup", "icd-10", "I50.9", "--json"])
    assert "heart_failure" in json.loads(result.stdout)["variables"]
    result = runner.invoke(app, ["cdm", "variables", "--category", "lab", "--json"])
    ids = {v["id"] for v in json.loads(result.stdout)["variables"]}
    assert "nt_probnp" in ids


def test_cdm_validate(tmp_path: Path) -> None:
    obs = {
        "resourceType": "Observation",
        "id": "k",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": "2024-01-01",
        "valueQuantity": {"value": 40, "unit": "mmol/L", "code": "mmol/L"},
    }
    path = tmp_path / "o.json"
    path.write_text(json.dumps(obs), encoding="utf-8")
    result = runner.invoke(app, ["cdm", "validate", str(path), "--json"])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["invalid"] == 1 and out["results"][0]["findings"][0]["rule"] == "range"


def test_version_flag() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "cardiobox" in result.stdout


def test_reindex_rebuilds_fact_tables(tmp_path: Path) -> None:
    from cardiobox.store.site_store import SiteStore

    site = tmp_path / "site.duckdb"
    SiteStore(site).close()
    result = CliRunner().invoke(app, ["store", "reindex", "--site", str(site), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mode"] == "full"

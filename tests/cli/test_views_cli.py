"""`cardiobox views` commands, through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import orjson
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cardiobox.cli.main import app

runner = CliRunner()
SUITE = Path(__file__).resolve().parents[1] / "store" / "views" / "sql_on_fhir_v2"

RESOURCES = [
    {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950",
     "name": [{"given": ["Ann", "Jo"]}]},
    {"resourceType": "Patient", "id": "p2", "gender": "male"},
    {"resourceType": "Observation", "id": "o1", "status": "final",
     "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
     "subject": {"reference": "Patient/p1"}, "valueQuantity": {"value": 61}},
]  # fmt: skip


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE resources (resource_type VARCHAR, id VARCHAR, resource JSON)")
    con.executemany(
        "INSERT INTO resources VALUES (?, ?, ?)",
        [(r["resourceType"], r["id"], orjson.dumps(r).decode()) for r in RESOURCES],
    )
    con.close()
    return path


@pytest.fixture
def names_view(tmp_path: Path) -> Path:
    path = tmp_path / "names.json"
    path.write_text(
        json.dumps(
            {
                "resource": "Patient",
                "select": [
                    {"column": [{"name": "id", "path": "id", "type": "id"}]},
                    {"column": [{"name": "given", "path": "name.given", "type": "string",
                                 "collection": True}]},
                ],
            }
        )
    )  # fmt: skip
    return path


def test_run_standard_view_json(site: Path) -> None:
    result = runner.invoke(app, ["views", "run", "patient", "--site", str(site), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"] == 2 and report["out"] is None
    assert report["columns"][:3] == ["id", "gender", "birth_date"]
    assert report["seconds"] >= 0


def test_run_prints_rows(site: Path, names_view: Path) -> None:
    result = runner.invoke(app, ["views", "run", str(names_view), "--site", str(site)])
    assert result.exit_code == 0, result.output
    assert "Ann" in result.stdout and "p2" in result.stdout
    assert "2 rows" in result.stderr


def test_run_writes_parquet_and_csv(tmp_path: Path, site: Path, names_view: Path) -> None:
    parquet = tmp_path / "out.parquet"
    result = runner.invoke(
        app, ["views", "run", "observation", "--site", str(site), "--out", str(parquet), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["out"] == str(parquet)
    table = pq.read_table(parquet)
    assert table.column("value").to_pylist() == [61.0]
    assert table.column("patient_id").to_pylist() == ["p1"]

    csv = tmp_path / "out.csv"
    result = runner.invoke(
        app, ["views", "run", str(names_view), "--site", str(site), "--out", str(csv)]
    )
    assert result.exit_code == 0, result.output
    rows = pacsv.read_csv(csv).to_pylist()
    assert {r["id"]: r["given"] for r in rows} == {"p1": '["Ann","Jo"]', "p2": "[]"}


def test_run_limit(site: Path) -> None:
    result = runner.invoke(
        app, ["views", "run", "patient", "--site", str(site), "--limit", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 1


def test_run_errors(tmp_path: Path, site: Path, names_view: Path) -> None:
    bad_ext = runner.invoke(
        app, ["views", "run", "patient", "--site", str(site), "--out", str(tmp_path / "x.txt")]
    )
    assert bad_ext.exit_code == 2 and ".parquet or .csv" in bad_ext.stderr
    no_site = runner.invoke(
        app, ["views", "run", "patient", "--site", str(tmp_path / "none.duckdb"), "--json"]
    )
    assert no_site.exit_code == 2
    assert json.loads(no_site.stdout)["rule"] == "not-found"
    unknown = runner.invoke(app, ["views", "run", "nosuchview", "--site", str(site)])
    assert unknown.exit_code == 2 and "standard view" in unknown.stderr
    invalid = tmp_path / "invalid.json"
    invalid.write_text(
        '{"resource": "Patient", "select": [{"column": [{"name": "a b", "path": "id"}]}]}'
    )
    bad_view = runner.invoke(app, ["views", "run", str(invalid), "--site", str(site), "--json"])
    assert bad_view.exit_code == 2
    err = json.loads(bad_view.stdout)
    assert err["rule"] == "sql-name" and err["location"]["element"] == "select[0].column[0].name"


def test_site_is_opened_read_only(site: Path, names_view: Path) -> None:
    site.chmod(0o444)
    try:
        result = runner.invoke(
            app, ["views", "run", str(names_view), "--site", str(site), "--json"]
        )
        assert result.exit_code == 0, result.output
    finally:
        site.chmod(0o644)


def test_list() -> None:
    result = runner.invoke(app, ["views", "list", "--json"])
    assert result.exit_code == 0, result.output
    names = {v["name"] for v in json.loads(result.stdout)["views"]}
    assert {"patient", "encounter", "condition", "observation", "medication", "procedure"} <= names
    human = runner.invoke(app, ["views", "list"])
    assert human.exit_code == 0 and "observation" in human.stdout


def test_sql(names_view: Path) -> None:
    result = runner.invoke(app, ["views", "sql", str(names_view)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("WITH _src AS") and "json_extract_string" in result.stdout
    group = runner.invoke(app, ["views", "sql", "medication"])
    assert group.exit_code == 0 and "UNION ALL" in group.stdout


def test_conformance_suite_passes() -> None:
    result = runner.invoke(app, ["views", "conformance", str(SUITE), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["total"] == 134 and report["failed"] == 0 and report["failures"] == []
    assert report["by_tag"]["shareable"]["passed"] == 123
    human = runner.invoke(app, ["views", "conformance", str(SUITE)])
    assert human.exit_code == 0 and "passed 134/134" in human.stdout


def test_conformance_exit_status_on_failure(tmp_path: Path) -> None:
    shutil.copy(SUITE / "basic.json", tmp_path / "basic.json")
    data = json.loads((tmp_path / "basic.json").read_text())
    data["tests"][0]["expect"] = [{"id": "nobody"}]
    (tmp_path / "basic.json").write_text(json.dumps(data))
    result = runner.invoke(app, ["views", "conformance", str(tmp_path), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["failures"] == ["basic.json: basic attribute"]
    empty = runner.invoke(app, ["views", "conformance", str(tmp_path / "nothing")])
    assert empty.exit_code == 2

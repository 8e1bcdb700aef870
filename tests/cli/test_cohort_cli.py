"""`cardiobox cohort count|explain|extract|library` through the CLI, on a UCI hospital."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cardiobox.cli.main import app
from cardiobox.ingest.engine import run_mapping

runner = CliRunner()
UCI = Path(__file__).resolve().parents[2] / "examples" / "uci_heart_disease"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("uci")
    path = folder / "switzerland.duckdb"
    run_mapping(UCI / "switzerland.yaml", path, key_file=folder / "site.key")
    return path


def test_count_json(store: Path) -> None:
    result = runner.invoke(
        app, ["cohort", "count", str(UCI / "cohort.yaml"), "--site", str(store), "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["rows"] == out["patients"] == 123
    assert [a["kind"] for a in out["attrition"]] == ["entry"]


def test_explain_shows_sql(store: Path) -> None:
    result = runner.invoke(
        app,
        [
            "cohort",
            "explain",
            str(UCI / "cohort.yaml"),
            "--site",
            str(store),
            "--features",
            str(UCI / "features.yaml"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    sql = json.loads(result.stdout)["sql"]
    assert "cohort_0" in sql and "c_facts" in sql and "thallium_stress_result" in sql


def test_extract_writes_parquet_and_metadata(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    result = runner.invoke(
        app,
        [
            "cohort",
            "extract",
            str(UCI / "cohort.yaml"),
            "--site",
            str(store),
            "--features",
            str(UCI / "features.yaml"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "123 rows" in result.stdout
    table = pq.read_table(out)
    assert table.num_rows == 123
    meta = json.loads((tmp_path / "t.parquet.metadata.json").read_text())
    chol = next(c for c in meta["columns"] if c["name"] == "chol")
    # Every Swiss cholesterol is 0 in the file, which the mapping reads as missing.
    assert chol["missing"] == 123 and chol["unit"] == "mg/dL"
    assert any("total_cholesterol" in w for w in meta["warnings"])


def test_builtin_by_name_and_library() -> None:
    result = runner.invoke(app, ["cohort", "library", "--json"])
    assert result.exit_code == 0, result.output
    names = {d["name"]: d["kind"] for d in json.loads(result.stdout)["definitions"]}
    assert names["hf_admissions"] == "cohort" and names["hf_features"] == "feature set"


def test_bad_definition_exits_2(store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "cardiobox_cohort: 1\nname: x\nentry: {event: patient}\n"
        "inclusion: [{variable: no_such_thing}]\n"
    )
    result = runner.invoke(app, ["cohort", "count", str(bad), "--site", str(store)])
    assert result.exit_code == 2
    assert "no_such_thing" in result.output and "not a variable" in result.output
    missing = runner.invoke(app, ["cohort", "count", "nope", "--site", str(store)])
    assert missing.exit_code == 2 and "built-in" in missing.output

"""`cardiobox quality report` and `cardiobox quality checks`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cardiobox.cli.main import app
from cardiobox.quality.report import validate_report

runner = CliRunner()


def test_report_writes_both_files_and_exits_0_with_failures(
    planted_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "q"
    res = runner.invoke(app, ["quality", "report", "--site", str(planted_store), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "quality.html").is_file() and (out / "quality.json").is_file()
    assert validate_report(json.loads((out / "quality.json").read_text())) == []
    assert "Failing checks" in res.stdout and "clinical-range.potassium" in res.stdout


def test_report_json_prints_one_summary_object(planted_store: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        ["quality", "report", "-s", str(planted_store), "-s", str(planted_store),
         "-o", str(tmp_path), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0
    summary = json.loads(res.stdout)
    assert summary["sites"] == ["hospital_a", "hospital_a-2"]
    assert summary["by_status"]["fail"] > 0
    assert summary["json"].endswith("quality.json") and summary["html"].endswith("quality.html")
    assert {f["id"] for f in summary["failed"]} >= {"after-death.observation", "unit.potassium"}


def test_thresholds_file(planted_store: Path, tmp_path: Path) -> None:
    limits = tmp_path / "t.yaml"
    limits.write_text("categories: {conformance: 100, completeness: 100, plausibility: 100}\n")
    res = runner.invoke(
        app,
        ["quality", "report", "-s", str(planted_store), "-o", str(tmp_path), "--thresholds",
         str(limits), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0
    assert json.loads(res.stdout)["by_status"]["fail"] == 0


def test_errors_exit_2(tmp_path: Path, planted_store: Path) -> None:
    res = runner.invoke(
        app, ["quality", "report", "-s", str(tmp_path / "none.duckdb"), "-o", str(tmp_path),
              "--json"],
    )  # fmt: skip
    assert res.exit_code == 2
    assert json.loads(res.stdout)["rule"] == "missing-store"
    bad = tmp_path / "t.yaml"
    bad.write_text("checks: {no-such-check: 1}\n")
    res = runner.invoke(
        app, ["quality", "report", "-s", str(planted_store), "-o", str(tmp_path),
              "--thresholds", str(bad), "--json"],
    )  # fmt: skip
    assert res.exit_code == 2 and json.loads(res.stdout)["rule"] == "thresholds"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = runner.invoke(
        app, ["quality", "report", "-s", str(planted_store), "-o", str(blocker), "--json"]
    )
    assert res.exit_code == 2 and json.loads(res.stdout)["rule"] == "output"


def test_checks_listing() -> None:
    res = runner.invoke(app, ["quality", "checks", "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    ids = {c["id"] for c in doc["checks"]}
    assert doc["total"] == len(ids) and "encounter-start-before-end" in ids
    res = runner.invoke(app, ["quality", "checks"])
    assert res.exit_code == 0
    assert "range.{variable}" in res.stdout and "encounter-start-before-end" in res.stdout

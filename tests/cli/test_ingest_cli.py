"""`cardiobox ingest run|check` through the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from cardiobox.cli.main import app

runner = CliRunner()


def test_run_json_accounting(extract: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["ingest", "run", str(extract), "--site", str(tmp_path / "s.duckdb"), "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["rows_read"] == out["rows_loaded"] + out["rows_quarantined"] == 5
    assert out["resources_created"] == 9


def test_dry_run_human(extract: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["ingest", "run", str(extract), "--site", str(tmp_path / "s.duckdb"), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "DRY RUN" in result.stdout and "nothing was written" in result.stdout


def test_check(extract: Path) -> None:
    ok = runner.invoke(app, ["ingest", "check", str(extract), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    src = extract.parent / "labs.csv"
    src.write_bytes(src.read_bytes() + b"000501;0;01/02/2024 10:00;XYZ;4;mmol/L\n")
    bad = runner.invoke(app, ["ingest", "check", str(extract)])
    assert bad.exit_code == 1 and "XYZ" in bad.stdout


def test_mapping_error_exit_code(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text("cardiobox_mapping: 1\nname: [\n")
    result = runner.invoke(app, ["ingest", "check", str(m), "--json"])
    assert result.exit_code == 2
    err = json.loads(result.stdout)
    assert err["rule"] == "mapping-syntax" and err["location"]["line"] == 3


def test_progress_rate_is_the_whole_load(extract: Path, tmp_path: Path) -> None:
    """The bar ends on the rate over the whole load, the one the summary prints."""
    result = runner.invoke(app, ["ingest", "run", str(extract), "--site", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output
    summary = re.search(r"s, ([\d,]+) rows/s", result.stdout)
    bar = re.findall(r"([\d,]+) rows/s", result.stderr)
    assert summary and bar and bar[-1] == summary.group(1), (result.stdout, result.stderr)

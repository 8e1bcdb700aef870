"""`cardiobox fed run|tasks|audit` through the CLI: CSV sites and UCI site stores."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from cardiobox.cli.main import app
from cardiobox.ingest.engine import run_mapping

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
HF = ROOT / "data" / "heart_failure_clinical_records" / "heart_failure_clinical_records_dataset.csv"
UCI = ROOT / "examples" / "uci_heart_disease"


@pytest.fixture(scope="module")
def csv_sites(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("hf")
    con = duckdb.connect()
    args = []
    for i, name in enumerate(["a", "b", "c"]):
        out = folder / f"{name}.csv"
        con.execute(
            "COPY (SELECT * EXCLUDE rn FROM (SELECT *, row_number() OVER () AS rn "
            f"FROM read_csv('{HF}')) WHERE rn % 3 = {i}) TO '{out}' (HEADER)"
        )
        args += ["--site", f"{name}={out}"]
    con.close()
    return args


def test_count_json(csv_sites: list[str]) -> None:
    result = runner.invoke(
        app, ["fed", "run", "count", *csv_sites, "--params", '{"where": "age >= 60"}', "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["result"]["per_site"]) == {"a", "b", "c"}
    assert out["result"]["total"] == sum(out["result"]["per_site"].values())


def test_logreg_table_and_json(csv_sites: list[str], tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text(
        json.dumps({"outcome": "DEATH_EVENT", "covariates": ["age", "ejection_fraction"]})
    )
    result = runner.invoke(app, ["fed", "run", "logreg", *csv_sites, "--params", f"@{params}"])
    assert result.exit_code == 0, result.output
    assert "logreg: 299 rows at 3 sites" in result.stdout  # the coefficient table's title
    result = runner.invoke(
        app, ["fed", "run", "logreg", *csv_sites, "--params", f"@{params}", "--json"]
    )
    out = json.loads(result.stdout)
    assert set(out["result"]["coefficients"]) == {"(intercept)", "age", "ejection_fraction"}
    assert set(out["result"]["std_errors"]) == set(out["result"]["coefficients"])


def test_policy_refusal_exits_1_with_reasons(csv_sites: list[str], tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("cardiobox_policy: 1\ndenied_variables: [smoking]\n")
    result = runner.invoke(
        app,
        ["fed", "run", "count", *csv_sites, "--params", '{"where": "smoking = 1"}',
         "--policy", str(policy), "--json"],
    )  # fmt: skip
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["rule"] == "too-few-sites"
    assert all("smoking" in why for why in out["refused"].values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "nopath"], "NAME=PATH"),
        (["--site", "a=x.csv", "--params", "{not json"], "not valid JSON"),
        (["--site", "a=x.csv", "--params", "[1]"], "JSON object"),
        (["--site", "a=x.csv", "--site", "a=y.csv"], "twice"),
    ],
)
def test_bad_options(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["fed", "run", "count", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_tasks_lists_every_task() -> None:
    result = runner.invoke(app, ["fed", "tasks", "--json"])
    assert result.exit_code == 0
    names = {t["task"] for t in json.loads(result.stdout)}
    assert {"count", "describe", "crosstab", "km", "logreg", "linreg", "cox", "gbt"} <= names


def test_store_sites_and_audit(tmp_path: Path) -> None:
    sites = []
    for name in ("cleveland", "hungarian", "va"):
        store = tmp_path / f"{name}.duckdb"
        run_mapping(UCI / f"{name}.yaml", store, key_file=tmp_path / "site.key")
        sites += ["--site", f"{name}={store}"]
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"cardiobox_policy: 1\ndefinitions:\n  uci: {UCI / 'cohort.yaml'}\n"
        f"  uci_features: {UCI / 'features.yaml'}\n"
    )
    params = {"cohort": "uci", "features": "uci_features", "where": "age >= 50"}
    result = runner.invoke(
        app,
        ["fed", "run", "count", *sites, "--params", json.dumps(params), "--policy", str(policy),
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert all(isinstance(n, int) and n > 10 for n in out["result"]["per_site"].values())
    # A path sent by the hub is never read.
    bad = {**params, "cohort": str(UCI / "cohort.yaml")}
    result = runner.invoke(
        app,
        ["fed", "run", "count", *sites, "--params", json.dumps(bad), "--policy", str(policy),
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "never reads a path" in result.stdout
    result = runner.invoke(app, ["fed", "audit", str(tmp_path / "va.duckdb"), "--json"])
    assert result.exit_code == 0, result.output
    audit = json.loads(result.stdout)
    assert audit["chain_intact"] and audit["entries"] == 3 and audit["rho_spent"] == 0
    assert [e["outcome"] for e in audit["last"]] == ["accepted", "released", "error"]
    table = runner.invoke(app, ["fed", "audit", str(tmp_path / "va.duckdb")])
    assert "hash chain intact" in table.stdout

"""`cardiobox synth domain|templates|fit|sample` through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cardiobox.cli.main import app

runner = CliRunner()
HF = (
    Path(__file__).resolve().parents[2]
    / "data/heart_failure_clinical_records/heart_failure_clinical_records_dataset.csv"
)


def test_fit_then_sample(tmp_path: Path) -> None:
    model = tmp_path / "model.json"
    result = runner.invoke(
        app,
        ["synth", "fit", str(HF), "--domain", "heart_failure_records", "--mechanism", "mst",
         "--epsilon", "2", "--delta", "1e-6", "--out", str(model), "--seed", "1", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["guarantee"]["epsilon"] == 2 and out["guarantee"]["delta"] == 1e-6
    assert out["rows"] == 299 and model.exists()
    result = runner.invoke(
        app, ["synth", "sample", str(model), "-n", "50", "--out", str(tmp_path / "s.csv")]
    )
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 51
    assert (tmp_path / "s.csv.synth.json").exists()


def test_domain_draft_and_templates(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "domain", str(HF), "--out", str(tmp_path / "d.yaml")])
    assert result.exit_code == 0, result.output
    assert "DRAFTED FROM THE DATA" in (tmp_path / "d.yaml").read_text()
    result = runner.invoke(app, ["synth", "templates", "--json"])
    names = {t["name"] for t in json.loads(result.stdout)}
    assert {"heart_failure_records", "uci_heart_disease"} <= names


def test_errors(tmp_path: Path) -> None:
    base = ["synth", "fit", str(HF), "--out", str(tmp_path / "m.json")]
    result = runner.invoke(app, [*base, "--domain", "nonsense"])
    assert result.exit_code == 2 and "no built-in template" in result.output
    result = runner.invoke(app, [*base, "--domain", "heart_failure_records", "--epsilon", "0"])
    assert result.exit_code == 2 and "epsilon must be > 0" in result.output
    result = runner.invoke(app, [*base, "--domain", "heart_failure_records", "-m", "gan"])
    assert result.exit_code == 2 and "mst or aim" in result.output
    policy = tmp_path / "policy.yaml"
    policy.write_text("cardiobox_policy: 1\nbudget: {rho: 0.01}\n")
    table = tmp_path / "hf.csv"
    table.write_bytes(HF.read_bytes())
    result = runner.invoke(
        app,
        ["synth", "fit", str(table), "--domain", "heart_failure_records", "--out",
         str(tmp_path / "m.json"), "--policy", str(policy)],
    )  # fmt: skip
    assert result.exit_code == 2 and "budget" in result.output


def test_export_into_a_site_store(tmp_path: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cardiobox.synth.encode import decode
    from cardiobox.synth.templates import domain_for_feature_set

    domain = domain_for_feature_set("hf_features")
    rng = np.random.default_rng(0)
    codes = np.column_stack([rng.integers(0, c.levels, size=12) for c in domain.columns])
    rows = decode(codes, domain, rng)
    rows = rows.set_column(0, "age", pa.array(rng.integers(18, 100, size=12)))
    table = tmp_path / "synthetic.parquet"
    pq.write_table(rows, table)
    store = tmp_path / "synthetic.duckdb"
    result = runner.invoke(
        app,
        ["synth", "export", str(table), "--domain", "hf_features", "--site", str(store), "--json"],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["rows"] == 12 and out["quarantined"] == 0
    assert out["read"] == out["stored"] > 12
    result = runner.invoke(app, ["synth", "export", str(table), "--site", str(store)])
    assert result.exit_code == 2 and "no --domain" in result.output


def test_a_drafted_domain_is_noted_once(tmp_path: Path) -> None:
    """Loading a drafted domain and encoding with it both warn; each command says it once."""
    domain = tmp_path / "d.yaml"
    assert runner.invoke(app, ["synth", "domain", str(HF), "--out", str(domain)]).exit_code == 0

    def cardiobox(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cardiobox", *args], capture_output=True, text=True, timeout=300
        )
        assert done.returncode in (0, 1), done.stderr
        return done.stdout + done.stderr

    model, sample = tmp_path / "m.json", tmp_path / "s.csv"
    fitted = cardiobox("synth", "fit", str(HF), "--domain", str(domain), "--out", str(model))
    assert fitted.count("DRAFTED") == 1 and "note: encoding with domain" in fitted, fitted
    cardiobox("synth", "sample", str(model), "-n", "100", "--out", str(sample))
    args = ["--real", str(HF), "--synthetic", str(sample), "--out", str(tmp_path / "r")]
    reported = cardiobox("synth", "report", *args)
    assert reported.count("DRAFTED") == 1 and "warning: domain" in reported, reported


def test_once_per_command_is_per_domain() -> None:
    from cardiobox.cli.main import _format_warning
    from cardiobox.synth.domain import DerivedDomainWarning

    shown: set[tuple[type[Warning], object]] = set()

    def show(text: str, domain: str) -> str:
        return _format_warning(DerivedDomainWarning(text, domain), DerivedDomainWarning, "f", 1,
                               shown=shown)  # fmt: skip

    assert show("domain 'a': note", "a") == "warning: domain 'a': note\n"
    assert show("encoding with domain 'a': note", "a") == ""
    assert show("domain 'b': note", "b") == "warning: domain 'b': note\n"

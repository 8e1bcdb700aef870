"""fit → save → load → sample, the guarantee recorded, and the site's policy and ledger."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from cardiobox import tableio
from cardiobox.errors import InputError
from cardiobox.privacy.audit import AuditLog
from cardiobox.privacy.policy import PolicyRefusal, SitePolicy
from cardiobox.synth.api import SynthError, SynthModel, budget_rho, fit, write_sample
from cardiobox.synth.domain import DomainError
from cardiobox.synth.templates import template

ROOT = Path(__file__).resolve().parents[2]
HF = ROOT / "data" / "heart_failure_clinical_records" / "heart_failure_clinical_records_dataset.csv"


@pytest.fixture
def hf_copy(tmp_path: Path) -> Path:
    path = tmp_path / "hf.csv"
    shutil.copy(HF, path)
    return path


@pytest.mark.parametrize("mechanism", ["mst", "aim"])
def test_fit_sample_round_trip(mechanism: str, tmp_path: Path) -> None:
    domain = template("heart_failure_records")
    model = fit(HF, domain, mechanism, epsilon=5.0, seed=1)  # type: ignore[arg-type]
    g = model.guarantee
    assert (g.mechanism, g.epsilon, g.delta, g.domain_public) == (mechanism, 5.0, 1e-5, True)
    assert g.rho == pytest.approx(budget_rho(5.0, 1e-5))
    assert model.model.rho == pytest.approx(g.rho, rel=1e-9)  # the whole budget, no more
    assert model.fitted["rows"] == 299 and model.fitted["epsilon_spent"] == pytest.approx(5.0)
    table = model.sample(500, seed=2)
    assert table.num_rows == 500 and table.column_names == domain.names
    # Same seed, same sample; the saved model samples the same rows.
    path = model.save(tmp_path / "model.json")
    again = SynthModel.load(path)
    assert again.sample(500, seed=2).equals(table)
    assert again.guarantee == model.guarantee
    out = write_sample(again, 100, tmp_path / "synthetic.parquet", seed=3)
    side = orjson.loads((tmp_path / "synthetic.parquet.synth.json").read_bytes())
    assert side["synthetic"] and side["rows"] == 100 and side["guarantee"]["epsilon"] == 5.0
    assert tableio.read_table(out).num_rows == 100


def test_sample_is_close_to_the_real_table_at_large_epsilon() -> None:
    real = tableio.read_table(HF)
    model = fit(real, template("heart_failure_records"), "mst", epsilon=50.0, seed=4)
    synthetic = model.sample(20_000, seed=5)
    for col in ("DEATH_EVENT", "sex", "anaemia"):
        r = pa.compute.mean(real[col].cast(pa.float64())).as_py()
        s = pa.compute.mean(synthetic[col].cast(pa.float64())).as_py()
        assert abs(r - s) < 0.06, col


@pytest.mark.parametrize(
    ("epsilon", "delta", "message"),
    [(0, 1e-5, "epsilon must be > 0"), (-1, 1e-5, "epsilon"), (1, 0, "delta"), (1, 1, "delta")],
)
def test_bad_budgets(epsilon: float, delta: float, message: str) -> None:
    with pytest.raises(SynthError, match=message):
        fit(HF, template("heart_failure_records"), epsilon=epsilon, delta=delta)


def test_bad_tables_and_models(tmp_path: Path) -> None:
    domain = template("heart_failure_records")
    empty = tableio.read_table(HF).slice(0, 0)
    with pytest.raises(SynthError, match="no rows"):
        fit(empty, domain)
    with pytest.raises(DomainError, match="DEATH_EVENT"):
        fit(tableio.read_table(HF).drop_columns(["DEATH_EVENT"]), domain)
    with pytest.raises(SynthError, match="unknown mechanism"):
        fit(HF, domain, "gan")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no such file"):
        SynthModel.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"cardiobox_synth_model": 1}')
    with pytest.raises(InputError, match="incomplete"):
        SynthModel.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not a cardiobox"):
        SynthModel.load(tmp_path / "other.json")


def test_site_policy_and_ledger(hf_copy: Path) -> None:
    domain = template("heart_failure_records")
    policy = SitePolicy(budget={"rho": 0.05, "max_rho_per_release": 0.04})
    model = fit(hf_copy, domain, epsilon=1.0, seed=1, policy=policy)  # rho ≈ 0.031
    ledger = AuditLog(hf_copy.with_name("hf.csv.cardiobox-audit.duckdb"))
    assert ledger.spent() == pytest.approx(model.guarantee.rho)
    assert ledger.entries()[-1].task == "synth" and ledger.verify() is None
    with pytest.raises(PolicyRefusal, match="budget"):  # 0.031 more does not fit in 0.05
        fit(hf_copy, domain, epsilon=1.0, policy=policy)
    with pytest.raises(PolicyRefusal, match=r"at most 0\.04 per release"):
        fit(hf_copy, domain, epsilon=5.0, policy=policy)
    with pytest.raises(PolicyRefusal, match="not allowed"):
        fit(hf_copy, domain, epsilon=1.0, policy=SitePolicy(allowed_tasks=["count"]))
    assert ledger.spent() == pytest.approx(model.guarantee.rho)  # refusals charge nothing

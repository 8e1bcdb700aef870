from pathlib import Path

import pytest

from cardiobox.errors import InputError
from cardiobox.privacy.policy import PolicyRefusal, SitePolicy, load_policy


def test_defaults_are_strict_and_identifiers_never_allowed() -> None:
    p = SitePolicy()
    assert p.min_cell_count == 10 and p.min_sites == 3 and p.budget.rho == 0
    assert p.variable_allowed("age")
    for ident in ("patient_id", "row_id", "encounter_id"):
        assert not p.variable_allowed(ident)


def test_glob_patterns_and_denials() -> None:
    p = SitePolicy(allowed_variables=["lab_*", "age"], denied_variables=["lab_hiv*"])
    assert p.variable_allowed("lab_creatinine") and p.variable_allowed("age")
    assert not p.variable_allowed("lab_hiv_status") and not p.variable_allowed("sex")
    with pytest.raises(PolicyRefusal, match="sex") as exc:
        p.check_variables({"age", "sex"})
    assert exc.value.rule == "variable-not-allowed"


def test_task_sites_cells_and_rho_checks() -> None:
    p = SitePolicy(allowed_tasks=["count"], budget={"rho": 1, "max_rho_per_release": 0.2})
    p.check_task("count")
    with pytest.raises(PolicyRefusal, match="logreg"):
        p.check_task("logreg")
    with pytest.raises(PolicyRefusal, match="at least 3"):
        p.check_sites(2)
    with pytest.raises(PolicyRefusal, match="minimum cell count of 10"):
        p.check_cell(9, "the count")
    p.check_cell(10, "the count")
    assert p.release_rho(None) == 0 and p.release_rho(0.1) == 0.1
    with pytest.raises(PolicyRefusal, match=r"at most rho=0\.2"):
        p.release_rho(0.5)


def test_require_noise() -> None:
    p = SitePolicy(budget={"rho": 1, "default_rho": 0.05, "require_noise": True})
    assert p.release_rho(None) == 0.05
    with pytest.raises(PolicyRefusal) as exc:
        p.release_rho(0)
    assert exc.value.rule == "noise-required"


def test_load_policy_file_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "policy.yaml"
    f.write_text(
        "cardiobox_policy: 1\nmin_cell_count: 5\ndefinitions:\n  mine: defs/c.yaml\n",
        encoding="utf-8",
    )
    p = load_policy(f)
    assert p.min_cell_count == 5
    assert p.definitions["mine"] == str((tmp_path / "defs" / "c.yaml").resolve())
    assert load_policy(None) == SitePolicy()
    f.write_text("cardiobox_policy: 1\nallowed_tasks: [count, teleport]\n", encoding="utf-8")
    with pytest.raises(InputError, match="teleport"):
        load_policy(f)
    f.write_text("cardiobox_policy: 1\nmin_cell_count: 0\n", encoding="utf-8")
    with pytest.raises(InputError, match="min_cell_count"):
        load_policy(f)
    f.write_text("cardiobox_policy: 1\nbudgit: {}\n", encoding="utf-8")
    with pytest.raises(InputError, match="budgit"):
        load_policy(f)
    f.write_text("just: [a, list", encoding="utf-8")
    with pytest.raises(InputError, match="not valid YAML"):
        load_policy(f)
    with pytest.raises(InputError, match="no such file"):
        load_policy(tmp_path / "missing.yaml")

"""The release gate: thresholds on the quality report, and refusal to publish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest

from cardiobox.synth.domain import Domain
from cardiobox.synth.evaluate import evaluate
from cardiobox.synth.gate import (
    DEFAULT_THRESHOLDS,
    GateConfigError,
    ReleaseRefused,
    Thresholds,
    check_release,
    load_thresholds,
)


def report(
    *,
    tvd2: float = 0.1,
    mia: float = 0.52,
    copies: float = 0.0,
    ratios: tuple[float | None, ...] | None = (0.95, 0.97),
) -> dict[str, Any]:
    """The parts of a report.json the gate reads."""
    doc: dict[str, Any] = {
        "fidelity": {
            "one_way_mean": {"synthetic": 0.03, "noise_floor": 0.05, "independent": 0.03},
            "two_way_mean": {"synthetic": tvd2, "noise_floor": 0.12, "independent": 0.2},
            "two_way_max": {"synthetic": 0.4, "noise_floor": 0.3, "independent": 0.5},
            "association_mean": {"synthetic": 0.05, "noise_floor": 0.06, "independent": 0.1},
        },
        "privacy": {
            "mia_auroc": mia,
            "exact_copy_share": copies,
            "exact_copy_share_holdout": 0.0,
            "closer_than_holdout_median": 0.4,
        },
        "utility": None,
    }
    if ratios is not None:
        doc["utility"] = {
            "models": [
                {"model": name, "ratio": r, "tstr": None if r is None else 0.8 * r}
                for name, r in zip(
                    ("logistic_regression", "gradient_boosting"), ratios, strict=False
                )
            ]
        }
    return doc


LIMITS = {
    "max_mean_2way_tvd": 0.2,
    "max_mia_auroc": 0.6,
    "max_exact_copy_share": 0.05,
    "min_tstr_trtr_ratio": 0.9,
}


def test_a_report_within_every_threshold_passes() -> None:
    g = check_release(report(), LIMITS)
    assert g.passed and g.failures == []
    assert [c.threshold for c in g.checks] == [
        "max_mean_2way_tvd",
        "min_tstr_trtr_ratio",
        "min_tstr_trtr_ratio",
        "max_mia_auroc",
        "max_exact_copy_share",
    ]
    assert g.thresholds == LIMITS
    g.raise_if_failed()  # nothing to refuse
    assert check_release(report(), LIMITS, refuse=True).passed


def test_limits_are_inclusive() -> None:
    assert check_release(report(mia=0.6, ratios=(0.9, 0.9)), LIMITS).passed


def test_failures_name_the_thresholds_and_the_release_is_refused() -> None:
    g = check_release(report(mia=0.93, copies=0.4, ratios=(0.95, 0.7)), LIMITS)
    assert not g.passed
    assert [f.threshold for f in g.failures] == [
        "min_tstr_trtr_ratio",
        "max_mia_auroc",
        "max_exact_copy_share",
    ]
    assert str(g.failures[0]) == (
        "min_tstr_trtr_ratio: TSTR/TRTR AUROC ratio of gradient_boosting is 0.7, "
        "breaks the limit ≥ 0.9"
    )
    with pytest.raises(ReleaseRefused) as info:
        g.raise_if_failed()
    msg = str(info.value)
    assert msg.startswith("[release-gate] release refused: the synthetic data fail 3 release")
    for name in ("min_tstr_trtr_ratio", "max_mia_auroc", "max_exact_copy_share"):
        assert name in msg
    assert "max_mean_2way_tvd" not in msg  # passed thresholds are not blamed
    assert "membership-inference AUROC is 0.93, breaks the limit ≤ 0.6" in msg
    assert info.value.result is g and info.value.rule == "release-gate"
    with pytest.raises(ReleaseRefused, match="max_mia_auroc"):
        check_release(report(mia=0.93), LIMITS, refuse=True)


def test_a_threshold_without_its_measure_fails() -> None:
    g = check_release(report(ratios=None), LIMITS)
    assert not g.passed
    (failure,) = g.failures
    assert failure.threshold == "min_tstr_trtr_ratio" and failure.value is None
    assert "no outcome column" in str(failure) and "not measured" in str(failure)
    g = check_release(report(ratios=(None, 0.95)), {"min_tstr_trtr_ratio": 0.9})
    assert [str(f) for f in g.failures] == [
        "min_tstr_trtr_ratio: TSTR/TRTR AUROC ratio of logistic_regression was not measured "
        "(limit 0.9)"
    ]
    one_column = report()
    one_column["fidelity"]["two_way_mean"]["synthetic"] = None
    assert not check_release(one_column, {"max_mean_2way_tvd": 0.2}).passed


def test_exact_copies_beyond_chance() -> None:
    # few coarse columns: 60 % of holdout rows repeat a training row's codes by chance
    doc = report(copies=0.63)
    doc["privacy"]["exact_copy_share_holdout"] = 0.6
    g = check_release(doc, {"max_exact_copy_excess": 0.05, "max_exact_copy_share": 0.05})
    assert [c.passed for c in g.checks] == [False, True]
    assert g.checks[1].value == pytest.approx(0.03)
    assert "max_exact_copy_excess: share of exact copies above the holdout's is 0.03" in str(
        g.checks[1]
    )
    del doc["privacy"]["exact_copy_share_holdout"]
    assert not check_release(doc, {"max_exact_copy_excess": 0.05}).passed  # not measured


def test_no_thresholds_check_nothing_and_defaults_hold_no_utility_limit() -> None:
    g = check_release(report(), {})
    assert g.passed and g.checks == []
    assert check_release(report(ratios=None)).passed  # DEFAULT_THRESHOLDS
    assert "min_tstr_trtr_ratio" not in DEFAULT_THRESHOLDS.active()


def test_thresholds_are_validated() -> None:
    with pytest.raises(GateConfigError, match="unknown threshold 'max_mia_aurc'"):
        load_thresholds({"max_mia_aurc": 0.6})
    with pytest.raises(
        GateConfigError, match=r"threshold 'max_mia_auroc'.*less than or equal to 1"
    ):
        load_thresholds({"max_mia_auroc": 1.5})
    with pytest.raises(GateConfigError, match="threshold 'min_tstr_trtr_ratio'"):
        load_thresholds({"min_tstr_trtr_ratio": -1})
    with pytest.raises(GateConfigError, match="mapping of threshold names"):
        load_thresholds([0.6])  # type: ignore[arg-type]
    t = Thresholds(max_mia_auroc=0.55)
    assert load_thresholds(t) is t and t.active() == {"max_mia_auroc": 0.55}


def test_thresholds_from_files(tmp_path: Path) -> None:
    yml = tmp_path / "gate.yaml"
    yml.write_text("max_mia_auroc: 0.6\nmax_exact_copy_share: 0.01\n", encoding="utf-8")
    assert load_thresholds(yml).active() == {"max_mia_auroc": 0.6, "max_exact_copy_share": 0.01}
    js = tmp_path / "gate.json"
    js.write_text('{"max_mean_1way_tvd": 0.1}', encoding="utf-8")
    assert check_release(report(), js).passed
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_mia_auroc: [\n", encoding="utf-8")
    with pytest.raises(GateConfigError, match=r"bad.yaml.*not valid YAML"):
        load_thresholds(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("max_copies: 0.1\n", encoding="utf-8")
    with pytest.raises(GateConfigError, match=r"typo.yaml, max_copies: \[gate-schema\] unknown"):
        load_thresholds(typo)
    with pytest.raises(GateConfigError, match=r"missing.yaml.*cannot read"):
        load_thresholds(tmp_path / "missing.yaml")


def test_gate_on_an_evaluation_and_on_its_json() -> None:
    d = Domain.model_validate(
        {
            "name": "t",
            "columns": [
                {"name": f"c{j}", "kind": "categorical", "categories": [0, 1, 2, 3]}
                for j in range(6)
            ],
        }
    )
    rng = np.random.default_rng(0)

    def table(n: int) -> pa.Table:
        return pa.table({f"c{j}": rng.integers(4, size=n) for j in range(6)})

    train, holdout = table(400), table(400)
    limits = {"max_mia_auroc": 0.6, "max_exact_copy_share": 0.2}
    fresh = evaluate(train, table(400), holdout, d)
    assert check_release(fresh, limits).passed
    copy = evaluate(train, train, holdout, d)
    g = check_release(copy, limits)
    assert [f.threshold for f in g.failures] == ["max_mia_auroc", "max_exact_copy_share"]
    doc = orjson.loads(orjson.dumps(copy.to_dict()))
    assert check_release(doc, limits).to_dict() == g.to_dict()

"""The synthetic-data quality report: report.json and a self-contained, escaped report.html."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pytest

from cardiobox.synth.domain import Domain
from cardiobox.synth.evaluate import Evaluation, evaluate
from cardiobox.synth.report import SCHEMA_VERSION, write_report

HOSTILE = '<script>alert("x")</script>'
HOSTILE_CATEGORY = "<img src=x onerror=alert(1)>"
GUARANTEE = {"mechanism": "mst", "epsilon": 1.0, "delta": 1e-5, "rho": 0.0135}


def hostile_domain() -> Domain:
    return Domain.model_validate(
        {
            "name": "<b>ward</b>",
            "columns": [
                {"name": HOSTILE, "kind": "categorical", "categories": ["a", HOSTILE_CATEGORY]},
                {"name": "age & <years>", "kind": "numeric", "bounds": [0, 100], "bins": 5},
                {"name": "died'\"", "kind": "boolean"},
            ],
        }
    )


def tables(rng: np.random.Generator, n: int) -> pa.Table:
    cat = rng.integers(2, size=n)
    age = rng.uniform(0, 100, size=n)
    died = rng.random(n) < 0.2 + 0.4 * cat
    return pa.table(
        {
            HOSTILE: pa.array(np.array(["a", HOSTILE_CATEGORY])[cat]),
            "age & <years>": age,
            "died'\"": died,
        }
    )


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    rng = np.random.default_rng(0)
    train, holdout, synthetic = tables(rng, 400), tables(rng, 300), tables(rng, 400)
    return evaluate(
        train, synthetic, holdout, hostile_domain(), outcome="died'\"", guarantee=GUARANTEE
    )


def test_report_files_hold_every_measure(evaluation: Evaluation, tmp_path: Path) -> None:
    html_path = write_report(evaluation, tmp_path / "out", thresholds={"max_mia_auroc": 0.7})
    assert html_path == tmp_path / "out" / "report.html"
    doc = orjson.loads((tmp_path / "out" / "report.json").read_bytes())
    assert doc["schema"] == SCHEMA_VERSION
    assert doc["guarantee"] == GUARANTEE
    assert doc["gate"]["passed"] is True
    assert doc["gate"]["thresholds"] == {"max_mia_auroc": 0.7}
    assert doc["gate"]["checks"][0]["value"] == pytest.approx(evaluation.privacy.mia_auroc)
    measures = orjson.loads(orjson.dumps(evaluation.to_dict()))
    assert {k: doc[k] for k in measures} == measures
    assert set(doc["fidelity"]["one_way"]) == set(hostile_domain().names)
    assert len(doc["fidelity"]["pairs"]) == 3
    assert [m["model"] for m in doc["utility"]["models"]] == [
        "logistic_regression",
        "gradient_boosting",
    ]


def test_html_is_self_contained_and_shows_verdict_and_plots(
    evaluation: Evaluation, tmp_path: Path
) -> None:
    html = write_report(evaluation, tmp_path).read_text(encoding="utf-8")
    assert "Release gate: passed" in html
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert html.count("<svg") >= 7  # 1-way, worst pairs, heat map, marginals, ROC, DCR, attack
    for section in ("summary", "fidelity", "utility", "privacy"):
        assert f'id="{section}"' in html
    assert "ROC curves on the real holdout" in html
    assert "Distance to the closest training record" in html
    assert "is never released" in html  # the independent baseline
    assert "not covered by the synthesizer" in html  # the report itself is not private
    assert "ρ (zCDP)" in html and "0.0135" in html


def test_html_escapes_hostile_names(evaluation: Evaluation, tmp_path: Path) -> None:
    html = write_report(evaluation, tmp_path).read_text(encoding="utf-8")
    for raw in (HOSTILE, HOSTILE_CATEGORY, "<b>ward</b>", "<years>"):
        assert raw not in html
    assert escape(HOSTILE) in html
    assert escape(HOSTILE_CATEGORY) in html  # a category label in a marginal plot
    assert escape("<b>ward</b>") in html
    assert escape("died'\"") in html  # the outcome column named in the utility section
    assert "died'\"" not in html


def test_refused_release_is_shown_with_its_failed_thresholds(
    evaluation: Evaluation, tmp_path: Path
) -> None:
    limits = {"max_mia_auroc": 0.01, "max_mean_1way_tvd": 0.9}
    html = write_report(evaluation, tmp_path, thresholds=limits).read_text(encoding="utf-8")
    assert "Release gate: REFUSED — 1 threshold failed" in html
    assert "<code>max_mia_auroc</code>" in html
    doc = orjson.loads((tmp_path / "report.json").read_bytes())
    assert doc["gate"]["passed"] is False
    assert doc["gate"]["failures"][0].startswith("max_mia_auroc: membership-inference AUROC")


def test_report_without_utility_or_guarantee(tmp_path: Path) -> None:
    d = Domain.model_validate(
        {"name": "one", "columns": [{"name": "x", "kind": "categorical", "categories": [0, 1]}]}
    )
    t = pa.table({"x": [0, 1, 1, 0, 1]})
    e = evaluate(t, t, t, d)
    html = write_report(e, tmp_path, thresholds={}).read_text(encoding="utf-8")
    assert "utility was not measured" in html
    assert "No privacy guarantee was recorded" in html
    assert "the gate checked nothing" in html
    doc = orjson.loads((tmp_path / "report.json").read_bytes())
    assert doc["utility"] is None and doc["guarantee"] is None
    assert doc["fidelity"]["pairs"] == [] and doc["fidelity"]["two_way_mean"]["synthetic"] is None


class DraftedGuarantee:
    def to_dict(self) -> dict[str, object]:
        return {**GUARANTEE, "domain_public": False, "note": "a <note>"}


def test_guarantee_object_and_drafted_domain_warning(tmp_path: Path) -> None:
    d = Domain.model_validate(
        {"name": "one", "columns": [{"name": "x", "kind": "categorical", "categories": [0, 1]}]}
    )
    t = pa.table({"x": [0, 1, 1, 0, 1]})
    e = evaluate(t, t, t, d, guarantee=DraftedGuarantee())
    assert e.guarantee == {**GUARANTEE, "domain_public": False, "note": "a <note>"}
    html = write_report(e, tmp_path).read_text(encoding="utf-8")
    assert "The domain was drafted from the data" in html
    assert "note: a &lt;note&gt;" in html

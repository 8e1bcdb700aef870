"""The JSON report (documented shape) and the self-contained HTML page."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from pathlib import Path

from cardiobox.quality import QualityResult
from cardiobox.quality.report import SCHEMA_VERSION, render_html, report_json, validate_report
from cardiobox.quality.report import write_report as write


def test_json_follows_the_documented_shape(planted_result: QualityResult, tmp_path: Path) -> None:
    _, json_path = write(planted_result, tmp_path)
    doc = json.loads(json_path.read_text(encoding="utf-8"))
    assert validate_report(doc) == []
    assert doc["schema"] == SCHEMA_VERSION and doc["reference_date"] == "2025-06-01"
    assert doc["summary"]["by_status"]["fail"] == len(doc["summary"]["failed"])
    assert sum(doc["summary"]["by_status"].values()) == len(doc["checks"])
    k = next(v for v in doc["completeness"]["variables"] if v["variable"] == "potassium")
    assert k["sites"]["hospital_a"] == {"patients_with_value": 4, "pct": 40.0}
    over = doc["completeness"]["over_time"]["hospital_a"]
    assert over["variables"]["potassium"]["2020"] == {"patients_with_value": 4, "pct": 44.4444}
    assert doc["thresholds"]["categories"]["plausibility"] == 1


def test_validation_reports_problems(planted_result: QualityResult) -> None:
    doc = report_json(planted_result)
    doc["checks"][0]["status"] = "maybe"
    doc["checks"][1]["examples"] = [{"id": "x", "resource_type": "P", "element": None,
                                     "value": None, "patient_name": "Jane"}]  # fmt: skip
    del doc["summary"]
    problems = validate_report(doc)
    assert "$: missing 'summary'" in problems
    assert any(p.startswith("$.checks[0].status") for p in problems)
    assert "$.checks[1].examples[0]: unexpected 'patient_name'" in problems


def test_html_is_self_contained_with_every_section(planted_result: QualityResult) -> None:
    html = render_html(planted_result)
    for section in ("summary", "failing-checks", "completeness", "completeness-over-time",
                    "distributions", "store", "checks", "thresholds"):  # fmt: skip
        assert f'<section id="{section}">' in html
    # No script, no stylesheet or image from elsewhere, no link outside the page.
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "url(" not in html and "src=" not in html
    assert re.findall(r'href="([^"]*)"', html) == [
        "#summary", "#failing-checks", "#completeness", "#completeness-over-time",
        "#distributions", "#store", "#checks", "#thresholds",
    ]  # fmt: skip
    assert html.count("<svg") >= 4  # completeness bars, active years, heatmap, histograms
    # failing checks with their examples
    assert "clinical-range.potassium" in html and "k3" in html and "8.5 mmol/L" in html
    assert "Quarantine by rule" in html and "binding" in html


def test_html_escapes_values(planted_result: QualityResult) -> None:
    site = copy.copy(planted_result.sites[0])
    evil = {
        "resource_type": "Observation",
        "id": "x",
        "element": "e",
        "value": "<script>1</script>",
    }
    site.checks = [replace(site.checks[0], numerator=1, denominator=1, examples=[evil])]
    result = copy.copy(planted_result)
    result.sites = [site]
    html = render_html(result)
    assert "<script" not in html and "&lt;script&gt;1&lt;/script&gt;" in html

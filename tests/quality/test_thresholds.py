"""Thresholds: defaults per category, overrides per category, check id or pattern."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.quality.conftest import TODAY

from cardiobox.errors import InputError
from cardiobox.quality import QualityResult, load_checks, load_thresholds, run_quality


def test_defaults() -> None:
    checks = load_checks()
    t = load_thresholds(None, checks)
    assert t.resolve(checks.get("unit.potassium")) == (0.0, "checks.yaml:category")
    assert t.resolve(checks.get("encounter-end-present")) == (5.0, "checks.yaml:category")
    assert t.to_dict()["categories"] == {"conformance": 0, "completeness": 5, "plausibility": 1}


def test_file_overrides_in_order(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "categories:\n  plausibility: 10\n"
        "checks:\n  clinical-range.potassium: 20\n  'clinical-range.*': 2\n  '*range.*': 3\n",
        encoding="utf-8",
    )
    checks = load_checks()
    t = load_thresholds(path, checks)
    assert t.resolve(checks.get("clinical-range.potassium")) == (20.0, "file:check")
    # the longest matching pattern wins
    assert t.resolve(checks.get("clinical-range.sodium")) == (2.0, "file:pattern")
    assert t.resolve(checks.get("range.sodium")) == (3.0, "file:pattern")
    assert t.resolve(checks.get("after-death.observation")) == (10.0, "file:category")
    assert t.resolve(checks.get("unit.sodium")) == (0.0, "checks.yaml:category")


def test_threshold_changes_the_status(tmp_path: Path, planted_store: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("checks:\n  clinical-range.potassium: 15\n", encoding="utf-8")
    r: QualityResult = run_quality([planted_store], thresholds=path, today=TODAY)
    (k,) = [c for c in r.checks if c.id == "clinical-range.potassium"]
    assert k.pct_failing == pytest.approx(15.0) and k.status == "pass"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("categories:\n  quality: 3\n", "unknown category"),
        ("checks:\n  no-such-check: 3\n", "matches no check"),
        ("checks:\n  'nothing.*': 3\n", "matches no check"),
        ("categories:\n  completeness: 300\n", "between 0 and 100"),
        ("limits: {}\n", "expected a mapping"),
        ("categories: [", "not valid YAML"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        load_thresholds(path, load_checks())
    assert info.value.rule == "thresholds"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such thresholds file"):
        load_thresholds(tmp_path / "missing.yaml", load_checks())

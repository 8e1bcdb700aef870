"""Each kind of check on a store with problems planted at known counts (see builders.py)."""

from __future__ import annotations

import pytest

from cardiobox.quality import QualityResult
from cardiobox.quality.engine import CheckResult


def result(r: QualityResult, check_id: str) -> CheckResult:
    (hit,) = [c for c in r.checks if c.id == check_id]
    return hit


@pytest.mark.parametrize(
    ("check_id", "numerator", "denominator", "failing_ids"),
    [
        # conformance
        ("unit.potassium", 2, 20, {"k10", "k11"}),
        ("answer.encounter_class", 1, 12, {"e10"}),
        ("answer.sex", 0, 10, set()),
        ("binding.MedicationRequest.medication.concept", 1, 2, {"m1"}),
        ("patient-reference-resolves", 1, 46, {"w2"}),
        ("encounter-reference-resolves", 1, 2, {"w3"}),
        ("encounter-same-patient", 1, 1, {"c2"}),
        ("bmi-consistent", 1, 2, {"bmi2"}),
        # completeness
        ("encounter-end-present", 1, 12, {"e11"}),
        ("required.Patient.gender", 0, 10, set()),
        ("patient-has-clinical-data", 0, 10, set()),
        # plausibility
        ("range.potassium", 0, 20, set()),
        ("clinical-range.potassium", 3, 20, {"k3", "k5", "k7"}),
        ("range.length_of_stay", 1, 11, {"e8"}),
        ("range.age_at_index", 2, 12, {"e5", "e9"}),
        ("duplicate.condition", 1, 3, {"c1"}),
        ("encounter-start-before-end", 1, 11, {"e8"}),
        ("before-birth.encounter-start", 2, 12, {"e5", "e9"}),
        ("after-death.observation", 1, 1, {"w1"}),
        ("future.procedure", 1, 2, {"pr1"}),
        ("patient-birth-before-death", 0, 1, set()),
    ],
)
def test_planted_problem_counts(
    planted_result: QualityResult,
    check_id: str,
    numerator: int,
    denominator: int,
    failing_ids: set[str],
) -> None:
    c = result(planted_result, check_id)
    assert (c.numerator, c.denominator) == (numerator, denominator)
    assert {e["id"] for e in c.examples} == failing_ids
    assert c.pct_failing == pytest.approx(100 * numerator / denominator)


def test_status_threshold_and_not_applicable(planted_result: QualityResult) -> None:
    k = result(planted_result, "clinical-range.potassium")
    assert k.threshold == 1.0 and k.threshold_source == "checks.yaml:category"
    assert k.status == "fail"  # 15 % > 1 %
    assert result(planted_result, "range.potassium").status == "pass"
    na = result(planted_result, "range.nt_probnp")
    assert (na.denominator, na.status, na.pct_failing) == (0, "not-applicable", None)


def test_examples_hold_ids_and_values_only(planted_result: QualityResult) -> None:
    for c in planted_result.checks:
        assert len(c.examples) <= 5
        for e in c.examples:
            assert set(e) == {"resource_type", "id", "element", "value"}
    after = result(planted_result, "after-death.observation").examples[0]
    assert after == {
        "resource_type": "Observation",
        "id": "w1",
        "element": "Observation.effective[x]",
        "value": "2022-02-01T09:00:00Z > death 2022-01-01T00:00:00Z",
    }
    dup = result(planted_result, "duplicate.condition").examples[0]
    assert dup["value"] == "same content as Condition/c0"


def test_store_summaries(planted_result: QualityResult) -> None:
    site = planted_result.sites[0]
    assert site.site == "hospital_a"
    assert site.quarantine == [{"rule": "range", "resource_type": "Observation", "items": 1}]
    assert {(f["rule"], f["resource_type"], f["resources"]) for f in site.findings} == {
        ("binding", "MedicationRequest", 1)
    }
    assert site.stats["patients"] == 10

"""The quality report on the Synthea sample (13 patients, R4 converted to R5)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from cardiobox.quality import run_quality
from cardiobox.quality.report import report_json, validate_report


def test_synthea_store(synthea_store: Path) -> None:
    r = run_quality([synthea_store], today=date(2025, 6, 1))
    by_id = {c.id: c for c in r.checks}
    # Synthea codes medications in RxNorm, not ATC: every MedicationRequest fails the binding.
    b = by_id["binding.MedicationRequest.medication.concept"]
    assert (b.numerator, b.denominator, b.status) == (1745, 1745, "fail")
    # "Death Certification" encounters after death, and three duplicated MedicationRequests.
    assert by_id["after-death.encounter-start"].numerator == 3
    assert by_id["duplicate.medication-request"].numerator == 3
    assert by_id["patient-reference-resolves"].numerator == 0
    assert by_id["encounter-start-before-end"].denominator == 1215
    assert by_id["range.potassium"].status == "not-applicable"  # no Observations
    c = r.sites[0].completeness
    assert c.patients == 13 and c.pct("sex") == 100.0 and c.with_value["death_date"] == 3
    assert validate_report(report_json(r)) == []

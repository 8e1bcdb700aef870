"""The description model: its rules (languages, months, ages, small cells) and its order."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tests.catalogue.stores import sample_description

from cardiobox.catalogue.model import (
    CategoryCount,
    DatasetDescription,
    HistogramBin,
    MonthPeriod,
    QuantitySummary,
    VariableEntry,
)


def _variable(**changes: object) -> VariableEntry:
    fields: dict[str, object] = {
        "id": "potassium", "labels": {"en": "Potassium"}, "category": "lab",
        "value_type": "quantity", "resource": "Observation", "patients": 40,
    }  # fmt: skip
    fields.update(changes)
    return VariableEntry.model_validate(fields)


def test_the_sample_is_valid_and_gives_variables_by_id(sample: DatasetDescription) -> None:
    assert sample.variable("lvef").label("es") == "Fracción de eyección"
    assert sample.variable("nyha_class").label("sv") == "NYHA class"  # English fallback
    with pytest.raises(KeyError, match="not present"):
        sample.variable("sodium")


def test_english_title_is_required() -> None:
    with pytest.raises(ValidationError, match="English"):
        sample_description(title={"es": "Solo en español"})
    with pytest.raises(ValidationError, match="invalid language"):
        sample_description(description={"en": "x", "English": "y"})


@pytest.mark.parametrize("month", ["2020-13", "2020-01-15", "2020", "20-01"])
def test_periods_are_months_at_the_finest(month: str) -> None:
    with pytest.raises(ValidationError):
        MonthPeriod(start=month)


def test_period_start_after_end_is_refused() -> None:
    with pytest.raises(ValidationError, match="after its end"):
        MonthPeriod(start="2021-02", end="2020-12")


def test_min_age_above_max_age_is_refused() -> None:
    with pytest.raises(ValidationError, match="above max_typical_age"):
        sample_description(min_typical_age=80, max_typical_age=60)


def test_small_counts_must_be_withheld() -> None:
    with pytest.raises(ValidationError, match="number_of_unique_individuals"):
        sample_description(number_of_unique_individuals=4)
    with pytest.raises(ValidationError, match=r"potassium\.patients"):
        sample_description(variables=(_variable(patients=3),))
    with pytest.raises(ValidationError, match=r"potassium\.histogram"):
        sample_description(
            variables=(_variable(histogram=(HistogramBin(lower=1, upper=2, count=2),)),)
        )
    summary = QuantitySummary(n=5, mean=4, p05=3, p25=3.5, median=4, p75=4.5, p95=5)
    with pytest.raises(ValidationError, match=r"potassium\.summary\.n"):
        sample_description(variables=(_variable(summary=summary),))
    # zero and withheld (None) counts are fine, and so is a count at the minimum
    sample_description(variables=(_variable(patients=10, categories=(
        CategoryCount(code="a", count=0), CategoryCount(code="b", count=None)
    )),))  # fmt: skip


def test_lists_are_kept_in_canonical_order() -> None:
    a = sample_description()
    b = sample_description(
        themes=tuple(reversed(a.themes)),
        coding_systems=tuple(reversed(a.coding_systems)),
        variables=tuple(reversed(a.variables)),
        distributions=tuple(reversed(a.distributions)),
        keywords={
            "en": ("cardiology", "heart failure", "cardiology"),
            "es": ("insuficiencia cardiaca",),
        },
    )
    assert a == b
    assert [v.id for v in a.variables] == sorted(v.id for v in a.variables)
    lvef = a.variable("lvef")
    assert [bin_.lower for bin_ in lvef.histogram] == [None, 10.0, 20.0, 30.0]


def test_duplicate_variables_and_bad_ids_are_refused() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        sample_description(variables=(_variable(), _variable()))
    with pytest.raises(ValidationError):
        _variable(id="Potassium K")


def test_iri_fields_refuse_text() -> None:
    with pytest.raises(ValidationError, match="access_rights"):
        sample_description(access_rights="not public")

"""Semantics at the edges: undated records, date-only records in a stay, code prefixes,
derived inputs that share a name with internal columns, and messages for mistakes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from cardiobox.cohort.definition import CohortDefinition
from cardiobox.errors import InputError

if TYPE_CHECKING:
    from tests.cohort.conftest import Site


def test_last_and_first_prefer_dated_records(site: Site) -> None:
    store = (
        site.patient("p1")
        .stay("e1", "p1", "2020-06-01T10:00", "2020-06-05T10:00")
        .obs("p1", "body_height", 170.0, "2019-01-01T08:00")
        .obs("p1", "body_height", 160.0)  # undated
        .obs("p1", "body_height", 165.0, "2018-01-01T08:00")
        .build()
    )
    # last: the latest dated record (2019: 170), not the undated one
    assert store.values({"name": "h", "variable": "body_height", "agg": "last"}) == [170.0]
    # first: the earliest dated record (2018: 165)
    assert store.values({"name": "h", "variable": "body_height", "agg": "first"}) == [165.0]


def test_a_date_only_record_on_the_admission_day_is_in_the_stay(site: Site) -> None:
    store = (
        site.patient("p1")
        .stay("e1", "p1", "2020-06-01T10:00", "2020-06-05T10:00")
        .med("p1", "C07AB07", "2020-06-01")  # bisoprolol, dated by day only (midnight)
        .med("p1", "C03CA01", "2020-05-31")  # furosemide, the day before: not in the stay
        .build()
    )
    rows = store.rows(
        {"name": "bb", "variable": "beta_blocker", "agg": "any", "window": "stay"},
        {"name": "loop", "variable": "loop_diuretic", "agg": "any", "window": "stay"},
    )
    assert rows[0]["bb"] is True and rows[0]["loop"] is False


def test_code_criteria_cover_descendants_for_diagnoses(site: Site) -> None:
    store = (
        site.patient("p1")
        .patient("p2")
        .stay("e1", "p1", "2020-06-01T10:00", "2020-06-05T10:00")
        .stay("e2", "p2", "2020-06-01T10:00", "2020-06-05T10:00")
        .condition("p1", "I50.9", "2020-06-01T11:00", encounter="e1")
        .condition("p2", "I11.0", "2020-06-01T11:00", encounter="e2")
        .build()
    )
    result = store.count(inclusion=[{"variable": "heart_failure", "codes": ["I50"]}])
    assert result.patients == 1  # I50 covers I50.9; I11.0 is heart failure but not I50


def test_a_derived_input_named_like_an_internal_column_reads_the_feature(site: Site) -> None:
    store = (
        site.patient("p1", "female", born="1950-01-01")
        .stay("e1", "p1", "2020-06-01T10:00", "2020-06-05T10:00")
        .obs("p1", "creatinine", 88.42, "2020-06-01T12:00")
        .build()
    )
    rows = store.rows(
        {"name": "age", "demographic": "age"},
        # "sex" mapped to numbers: an eGFR reading it gets no sex it knows, hence no value
        {"name": "sex", "demographic": "sex", "map": {"male": 1, "female": 0}},
        {"name": "crea", "variable": "creatinine", "agg": "first"},
        {
            "name": "egfr",
            "derived": "egfr_ckd_epi_2021",
            "inputs": {"creatinine": "crea", "age": "age", "sex": "sex"},
        },
    )
    assert rows[0]["sex"] == 0 and rows[0]["egfr"] is None


def test_observation_window_lengths_are_positive() -> None:
    with pytest.raises(ValueError, match="lengths"):
        CohortDefinition.model_validate(
            {
                "cardiobox_cohort": 1,
                "name": "x",
                "entry": {"event": "encounter"},
                "observation_window": {"before": "-1 year"},
            }
        )


def test_unknown_variable_suggests_close_names(site: Site) -> None:
    store = site.patient("p1").stay("e1", "p1", "2020-06-01T10:00").build()
    with pytest.raises(InputError, match="similar: heart_failure"):
        store.count(inclusion=[{"variable": "heart_faillure"}])

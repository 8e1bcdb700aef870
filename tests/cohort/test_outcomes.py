"""Outcomes at a horizon: event flags (1, 0, NULL) and days to the event or to censoring."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from cardiobox.errors import InputError

if TYPE_CHECKING:
    from tests.cohort.conftest import Site, Store

IMP = {"event": "encounter", "classes": ["IMP"]}
INDEX = "2020-01-01T10:00"
DISCHARGE = "2020-01-05T10:00"
# 30 days after the index: 2020-01-31 10:00; one year: 2021-01-01 10:00 (366 days, 2020 is a
# leap year). The site's last record is on 2021-06-01, so everybody is followed that long
# unless the feature set says follow-up ends earlier.


@pytest.fixture(scope="module")
def deaths(new_site: Callable[[], Site]) -> Store:
    s = new_site()
    for pid, died in [
        ("alive", None),
        ("d10", "2020-01-11"),  # 10 days after the index, cardiovascular (I21.9)
        ("d30", "2020-01-31"),  # on the last day of 30 days, cancer (C34.9)
        ("d20", "2020-01-21"),  # 20 days, no cause recorded
        ("d45", "2020-02-15"),  # after 30 days: 31 + 14 = 45 days
    ]:
        s.patient(pid, died=died).stay(f"e-{pid}", pid, INDEX, DISCHARGE)
    s.cause_of_death("d10", "I21.9", "2020-01-11")
    s.cause_of_death("d30", "C34.9", "2020-01-31")
    s.obs("alive", "heart_rate", 70, "2021-06-01T10:00")  # the site's last record
    return s.build()


def outcome(store: Store, **o: Any) -> dict[str, tuple[Any, Any]]:
    """{patient: (event, days)} of one outcome named y."""
    rows = store.rows({"name": "y", **o}, cohort={"entry": IMP})
    return {r["patient_id"]: (r["y"], r["y_days"]) for r in rows}


def test_death_within_30_days(deaths: Store) -> None:
    assert outcome(deaths, outcome="death", horizon="30 days") == {
        "alive": (0, 30),  # followed to 2021-06-01, beyond 30 days: 0 and 30 days
        "d10": (1, 10),  # 2020-01-01 → 2020-01-11
        "d30": (1, 30),  # 2020-01-31 is the horizon's last day: included
        "d20": (1, 20),
        "d45": (0, 30),  # died after the horizon: alive at 30 days
    }


def test_death_within_one_year(deaths: Store) -> None:
    assert outcome(deaths, outcome="death", horizon="1 year") == {
        "alive": (0, 366),  # 2020-01-01 → 2021-01-01 (leap year)
        "d10": (1, 10),
        "d30": (1, 30),
        "d20": (1, 20),
        "d45": (1, 45),  # 31 days of January + 14 of February
    }


def test_follow_up_end_given(deaths: Store) -> None:
    got = outcome(deaths, outcome="death", horizon="30 days", follow_up_end="2020-01-16")
    # follow-up ends 2020-01-16, 15 days after the index, before the horizon:
    assert got["alive"] == (None, 15)  # censored: unknown, 15 days followed
    assert got["d10"] == (1, 10)  # the death came first
    # a death after the horizon says the patient was alive at the horizon
    assert got["d45"] == (0, 30)
    # follow-up beyond the horizon changes nothing
    late = outcome(deaths, outcome="death", horizon="30 days", follow_up_end="2020-03-01")
    assert late["alive"] == (0, 30)


def test_cv_death(deaths: Store) -> None:
    assert outcome(deaths, outcome="cv_death", horizon="30 days") == {
        "alive": (0, 30),
        "d10": (1, 10),  # I21.9: an I code
        "d30": (0, 30),  # C34.9: a competing death, 0 at the day of death
        "d20": (None, 20),  # no cause recorded: unknown
        "d45": (0, 30),  # died (of an unknown cause) after the horizon
    }


def test_cv_death_beside_a_cause_of_death_column(deaths: Store) -> None:
    # a column of the cause of death before the outcome must not hide the outcome's input
    rows = deaths.rows(
        {"name": "cause", "variable": "cause_of_death", "field": "code"},
        {"name": "y", "outcome": "cv_death", "horizon": "30 days"},
        {"name": "z", "outcome": "cv_death", "horizon": "1 year"},
        cohort={"entry": IMP},
    )
    got = {r["patient_id"]: (r["cause"], r["y"], r["z"]) for r in rows}
    assert got["d10"] == ("I21.9", 1, 1)
    assert got["d30"] == ("C34.9", 0, 0)
    assert got["d45"] == (None, 0, None)  # within a year of unknown cause


def test_censored_by_the_site_extent(site: Site) -> None:
    # the site's last record is 2020-01-20 10:00: follow-up ends 19 days after the index
    store = (
        site.patient("p1")
        .stay("e1", "p1", INDEX, DISCHARGE)
        .obs("p1", "heart_rate", 70, "2020-01-20T10:00")
        .patient("p2", died="2020-01-12")
        .stay("e2", "p2", INDEX, DISCHARGE)
        .build()
    )
    assert outcome(store, outcome="death", horizon="30 days") == {
        "p1": (None, 19),
        "p2": (1, 11),
    }


def test_outcome_columns_in_the_metadata(deaths: Store) -> None:
    result = deaths.extract(
        {"name": "death_30d", "outcome": "death", "horizon": "30 days"}, cohort={"entry": IMP}
    )
    cols = {c["name"]: c for c in result.metadata["columns"]}
    assert cols["death_30d"]["value_set"] == ["0", "1"]
    assert cols["death_30d"]["description"] == "death within 30 days of the index"
    assert cols["death_30d_days"]["unit"] == "d"
    assert cols["death_30d"]["kind"] == cols["death_30d_days"]["kind"] == "outcome"


# -- readmissions ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def readmissions(new_site: Callable[[], Site]) -> Store:
    s = new_site()
    # r1: readmitted 2020-01-20 10:00 with a primary heart-failure diagnosis
    s.patient("r1").stay("r1a", "r1", INDEX, DISCHARGE).stay("r1b", "r1", "2020-01-20T10:00")
    s.condition("r1", "I50.9", "2020-01-20", encounter="r1b", primary=True)
    # r2: readmitted 2020-01-20 10:00 for COPD; heart failure only a secondary diagnosis
    s.patient("r2").stay("r2a", "r2", INDEX, DISCHARGE).stay("r2b", "r2", "2020-01-20T10:00")
    s.condition("r2", "J44.1", "2020-01-20", encounter="r2b", primary=True)
    s.condition("r2", "I50.9", "2020-01-20", encounter="r2b", primary=False)
    # r3: an outpatient visit only
    s.patient("r3").stay("r3a", "r3", INDEX, DISCHARGE)
    s.stay("r3b", "r3", "2020-01-10T10:00", "2020-01-10T11:00", cls="AMB")
    # r4: a long stay to 2020-01-25 10:00, readmitted 2020-02-10 10:00 (HF, primary)
    s.patient("r4").stay("r4a", "r4", INDEX, "2020-01-25T10:00")
    s.stay("r4b", "r4", "2020-02-10T10:00", "2020-02-12T10:00")
    s.condition("r4", "I50.9", "2020-02-10", encounter="r4b", primary=True)
    # r5: died 2020-01-15 without a readmission
    s.patient("r5", died="2020-01-15").stay("r5a", "r5", INDEX, DISCHARGE)
    s.obs("r1", "heart_rate", 70, "2021-06-01T10:00")  # the site's last record
    return s.build()


def test_readmission_from_the_index(readmissions: Store) -> None:
    assert outcome(readmissions, outcome="readmission", horizon="30 days") == {
        "r1": (1, 19),  # 2020-01-01 → 2020-01-20
        "r2": (1, 19),  # any inpatient readmission
        "r3": (0, 30),  # an outpatient visit is no readmission
        "r4": (0, 30),  # readmitted 2020-02-10, after 2020-01-31 10:00
        "r5": (0, 14),  # died first (competing event): 0 at the day of death
    }


def test_readmission_with_a_diagnosis(readmissions: Store) -> None:
    got = outcome(readmissions, outcome="readmission", horizon="30 days", diagnosis="heart_failure")
    assert got["r1"] == (1, 19)
    assert got["r2"] == (0, 30)  # heart failure was not the primary diagnosis


def test_readmission_from_the_end_of_the_stay(readmissions: Store) -> None:
    got = outcome(readmissions, outcome="readmission", horizon="30 days", origin="stay_end")
    # from discharge 2020-01-05: r1 readmitted 2020-01-20 → 15 days
    assert got["r1"] == (1, 15)
    # r4: from 2020-01-25 10:00 the horizon is 2020-02-24 10:00: readmitted 2020-02-10 → 16
    assert got["r4"] == (1, 16)
    # r5 died 2020-01-15, 10 days after discharge
    assert got["r5"] == (0, 10)


def test_outcome_with_an_unknown_diagnosis(readmissions: Store) -> None:
    with pytest.raises(InputError, match=r"features\[0\]\.diagnosis: 'hf' is not a variable"):
        outcome(readmissions, outcome="readmission", horizon="30 days", diagnosis="hf")


def test_outcomes_need_an_index_time(readmissions: Store) -> None:
    with pytest.raises(InputError, match=r"features\[0\]: outcomes need an index time") as err:
        readmissions.extract(
            {"name": "y", "outcome": "death", "horizon": "1 year"},
            cohort={"entry": {"event": "patient"}},
        )
    assert err.value.rule == "impossible-window"

"""Cohorts: entry events, inclusion and exclusion criteria, attrition, selection, windows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from cardiobox.errors import InputError

if TYPE_CHECKING:
    from tests.cohort.conftest import Site, Store

IMP = {"event": "encounter", "classes": ["IMP"]}


@pytest.fixture(scope="module")
def hospital(new_site: Callable[[], Site]) -> Store:
    """Four patients.

    ========  ======  ==========  ===========================================================
    patient   sex     born        encounters and records
    ========  ======  ==========  ===========================================================
    p1        female  1950-06-15  e1 IMP 2020-01-10 (primary HF), e2 AMB 2020-03-01,
                                  e3 IMP 2020-06-01 (secondary HF); LVEF 35 (2019-12-01) and
                                  55 (2020-05-01); SBP 150 and 120; NYHA III
    p2        male    1940-02-01  e4 IMP 2020-02-01, e5 EMER 2020-04-01; LVEF 30 (2018);
                                  diabetes; NYHA II; an undated SBP
    p3        female  2005-03-01  e6 IMP 2021-01-01 (primary HF, I11.0)
    p4        other   1960-01-01  no encounter; SBP 135 (2020-05-05)
    ========  ======  ==========  ===========================================================
    """
    return (
        new_site()
        .patient("p1", "female", born="1950-06-15")
        .stay("e1", "p1", "2020-01-10T08:00", "2020-01-15T08:00")
        .condition("p1", "I50.9", "2020-01-10", encounter="e1", primary=True)
        .stay("e2", "p1", "2020-03-01T09:00", "2020-03-01T10:00", cls="AMB")
        .stay("e3", "p1", "2020-06-01T08:00", "2020-06-04T08:00")
        .condition("p1", "I50.1", "2020-06-01", encounter="e3", primary=False)
        .obs("p1", "lvef", 35, "2019-12-01")
        .obs("p1", "lvef", 55, "2020-05-01")
        .obs("p1", "systolic_bp", 150, "2020-01-10T09:00", encounter="e1")
        .obs("p1", "systolic_bp", 120, "2020-06-01T09:00", encounter="e3")
        .obs("p1", "nyha_class", "LA28406-9", "2020-01-10T09:00")
        .patient("p2", "male", born="1940-02-01")
        .stay("e4", "p2", "2020-02-01T08:00", "2020-02-03T08:00")
        .stay("e5", "p2", "2020-04-01T08:00", "2020-04-01T12:00", cls="EMER")
        .obs("p2", "lvef", 30, "2018-01-01")
        .condition("p2", "E11.9", "2015-01-01")
        .obs("p2", "nyha_class", "LA28405-1", "2020-02-01T09:00")
        .obs("p2", "systolic_bp", 140)  # undated: never an index
        .patient("p3", "female", born="2005-03-01")
        .stay("e6", "p3", "2021-01-01T08:00", "2021-01-02T08:00")
        .condition("p3", "I11.0", "2021-01-01", encounter="e6", primary=True)
        .patient("p4", "other", born="1960-01-01")
        .obs("p4", "systolic_bp", 135, "2020-05-05T10:00")
        .build()
    )


def keys(result: Any) -> list[tuple[str, str | None]]:
    """(patient, index encounter) of each row."""
    return [(r["patient_id"], r["encounter_id"]) for r in result.table.to_pylist()]


def attrition(result: Any) -> list[tuple[str, int, int]]:
    """(kind, rows, patients) after each step."""
    return [(a.kind, a.rows, a.patients) for a in result.attrition]


# -- entry -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        # every encounter with a start: e1..e6
        ({"event": "encounter"}, ["e1", "e2", "e3", "e4", "e5", "e6"]),
        ({"event": "encounter", "classes": ["IMP"]}, ["e1", "e3", "e4", "e6"]),
        ({"event": "encounter", "classes": ["AMB", "EMER"]}, ["e2", "e5"]),
        # a heart-failure diagnosis of the encounter, primary or not (I50.9, I50.1, I11.0)
        ({**IMP, "diagnosis": "heart_failure"}, ["e1", "e3", "e6"]),
        # primary only: e3's diagnosis has primary-diagnosis false
        ({**IMP, "diagnosis": "heart_failure", "primary": True}, ["e1", "e6"]),
        # index dates, both days included: 2020-02-01 08:00 .. 2020-06-01 08:00
        ({**IMP, "start": "2020-02-01", "end": "2020-06-01"}, ["e4", "e3"]),
    ],
)
def test_entry_encounters(hospital: Store, entry: dict[str, Any], expected: list[str]) -> None:
    result = hospital.extract(cohort={"entry": entry, "select": "all"})
    assert sorted(e for _, e in keys(result)) == sorted(expected)
    assert result.rows == len(expected)


def test_entry_encounter_index_time_and_stay_end(hospital: Store) -> None:
    result = hospital.extract(
        {"name": "los", "demographic": "length_of_stay"},
        {"name": "t", "demographic": "index_time"},
        cohort={"entry": {**IMP, "diagnosis": "heart_failure", "primary": True}},
    )
    rows = result.table.to_pylist()  # type: ignore[union-attr]
    # e1: 2020-01-10 08:00 to 2020-01-15 08:00 = 5 days; e6: 2021-01-01 08:00 to 01-02 08:00
    assert [(r["patient_id"], str(r["index_time"]), r["los"]) for r in rows] == [
        ("p1", "2020-01-10 08:00:00", 5.0),
        ("p3", "2021-01-01 08:00:00", 1.0),
    ]
    assert [r["t"] for r in rows] == [r["index_time"] for r in rows]


def test_entry_variable(hospital: Store) -> None:
    entry = {"event": "variable", "variable": "systolic_bp"}
    every = hospital.extract(cohort={"entry": entry, "select": "all"})
    # the dated SBPs: p1 at 2020-01-10 09:00 (e1) and 2020-06-01 09:00 (e3), p4 at 2020-05-05
    # 10:00; p2's undated SBP is no index
    assert every.table is not None
    rows = every.table.to_pylist()
    assert [(r["patient_id"], r["encounter_id"], str(r["index_time"])) for r in rows] == [
        ("p1", "e1", "2020-01-10 09:00:00"),
        ("p1", "e3", "2020-06-01 09:00:00"),
        ("p4", None, "2020-05-05 10:00:00"),
    ]
    first = hospital.extract(cohort={"entry": entry})
    assert keys(first) == [("p1", "e1"), ("p4", None)]


def test_entry_patient(hospital: Store) -> None:
    result = hospital.extract(
        {"name": "sbp", "variable": "systolic_bp", "agg": "mean"},
        cohort={"entry": {"event": "patient"}},
    )
    rows = result.table.to_pylist()  # type: ignore[union-attr]
    # one row per patient, with or without encounters, no index time; window ever:
    # p1 (150 + 120) / 2 = 135, p2 the undated 140, p3 none, p4 135
    assert [(r["patient_id"], r["encounter_id"], r["index_time"], r["sbp"]) for r in rows] == [
        ("p1", None, None, 135.0),
        ("p2", None, None, 140.0),
        ("p3", None, None, None),
        ("p4", None, None, 135.0),
    ]
    assert attrition(result) == [("entry", 4, 4), ("selection", 4, 4)]


def test_select_first_vs_all(hospital: Store) -> None:
    every = hospital.extract(cohort={"entry": IMP, "select": "all"})
    first = hospital.extract(cohort={"entry": IMP, "select": "first"})
    assert keys(every) == [("p1", "e1"), ("p1", "e3"), ("p2", "e4"), ("p3", "e6")]
    assert keys(first) == [("p1", "e1"), ("p2", "e4"), ("p3", "e6")]
    # select all has no selection step
    assert attrition(every) == [("entry", 4, 3)]
    assert attrition(first) == [("entry", 4, 3), ("selection", 3, 3)]
    # row ids number the rows of the cohort in order (patient, index time)
    assert [r["row_id"] for r in every.table.to_pylist()] == [1, 2, 3, 4]  # type: ignore[union-attr]


# -- criteria ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        # age at the index in whole years: p1 69 at e1 and at e3 (birthday 15 June not
        # reached on 1 June), p2 80 on his 80th birthday, p3 15
        ({"age": {"min": 18}}, ["e1", "e3", "e4"]),
        ({"age": {"min": 80}}, ["e4"]),  # 80 on the day of the birthday
        ({"age": {"lt": 80}}, ["e1", "e3", "e6"]),
        ({"age": {"gt": 15, "max": 69}}, ["e1", "e3"]),
        ({"sex": ["male"]}, ["e4"]),
        ({"sex": ["female", "other"]}, ["e1", "e3", "e6"]),
        # LVEF below 40 in the year before the index (both ends included): e1 (35 on
        # 2019-12-01), e3 (35 still within 2019-06-01..2020-06-01); p2's 30 is from 2018
        (
            {"variable": "lvef", "value": {"lt": 40}, "window": {"start": "-1 year", "end": "0 d"}},
            ["e1", "e3"],
        ),
        # at least 40: only e3 has one (55 on 2020-05-01); ever: also e1 (the 55 is later)
        (
            {
                "variable": "lvef",
                "value": {"min": 40},
                "window": {"start": "-1 year", "end": "0 d"},
            },
            ["e3"],
        ),
        ({"variable": "lvef", "value": {"min": 40}}, ["e1", "e3"]),
        ({"variable": "lvef", "value": {"min": 30, "max": 30}}, ["e4"]),  # inclusive bounds
        ({"variable": "lvef", "value": {"gt": 30, "lt": 35}}, []),  # exclusive bounds
        # answer codes, plain or system|code
        ({"variable": "nyha_class", "codes": ["LA28406-9"]}, ["e1", "e3"]),
        ({"variable": "nyha_class", "codes": ["http://loinc.org|LA28405-1"]}, ["e4"]),
        # condition codes are the codes that identified the condition
        ({"variable": "heart_failure", "codes": ["I11.0"]}, ["e6"]),
        # count: two SBPs ever (p1 only); window before the index: e3 (one SBP before it)
        ({"variable": "systolic_bp", "count": 2}, ["e1", "e3"]),
        ({"variable": "systolic_bp", "window": "before"}, ["e3"]),
        ({"variable": "systolic_bp", "window": "stay", "value": {"max": 120}}, ["e3"]),
    ],
)
def test_inclusion(hospital: Store, criterion: dict[str, Any], expected: list[str]) -> None:
    result = hospital.extract(cohort={"entry": IMP, "inclusion": [criterion], "select": "all"})
    assert [e for _, e in keys(result)] == expected


def test_exclusion(hospital: Store) -> None:
    result = hospital.extract(
        cohort={
            "entry": IMP,
            "exclusion": [
                {"variable": "diabetes"},  # p2
                {"age": {"lt": 18}},  # p3
            ],
            "select": "all",
        }
    )
    assert keys(result) == [("p1", "e1"), ("p1", "e3")]
    assert attrition(result) == [("entry", 4, 3), ("exclusion", 3, 2), ("exclusion", 2, 1)]


def test_exclusion_of_an_unknown_value_keeps_the_row(hospital: Store) -> None:
    # p4's sex is "other": an exclusion of men keeps her; inclusion of men drops her
    entry = {"event": "patient"}
    kept = hospital.count(entry=entry, exclusion=[{"sex": ["male"]}])
    assert (kept.rows, kept.patients) == (3, 3)
    included = hospital.count(entry=entry, inclusion=[{"sex": ["male"]}])
    assert (included.rows, included.patients) == (1, 1)


def test_attrition_table(hospital: Store) -> None:
    result = hospital.count(
        entry=IMP,
        inclusion=[{"name": "adult", "age": {"min": 18}}],
        exclusion=[{"variable": "diabetes", "window": "before"}],
        select="first",
    )
    # entry: e1, e3 (p1), e4 (p2), e6 (p3) → 4 rows, 3 patients; adults: e1, e3, e4;
    # without diabetes before the index: e1, e3; first per patient: e1
    assert [(a.step, a.kind, a.label, a.rows, a.patients) for a in result.attrition] == [
        (0, "entry", "encounters of class IMP", 4, 3),
        (1, "inclusion", "adult", 3, 2),
        (2, "exclusion", "diabetes (before the index)", 2, 1),
        (3, "selection", "first qualifying index per patient", 1, 1),
    ]
    assert (result.rows, result.patients) == (1, 1)
    assert result.warnings == []


def test_explain_shows_the_sql(hospital: Store) -> None:
    from cardiobox.cohort import CohortDefinition, FeatureSet, explain

    cohort = {"cardiobox_cohort": 1, "name": "c", "entry": IMP, "inclusion": [{"age": {"min": 18}}]}
    features = {
        "cardiobox_features": 1,
        "name": "f",
        "features": [{"name": "x", "variable": "lvef"}],
    }
    result = explain(
        CohortDefinition.model_validate(cohort),
        hospital.path,
        FeatureSet.model_validate(features),
    )
    assert (result.rows, result.patients) == (2, 2)  # adults' first admissions: e1, e4
    assert "-- inclusion: age {'min': 18.0}" in result.sql
    assert "-- features" in result.sql
    assert "f.variable IN ('lvef')" in result.sql


def test_criterion_labels() -> None:
    from cardiobox.cohort.definition import Criterion

    assert Criterion(age={"min": 18}).label() == "age {'min': 18.0}"  # type: ignore[arg-type]
    assert Criterion(sex=["male"]).label() == "sex in ['male']"
    c = Criterion.model_validate(
        {
            "variable": "lvef",
            "value": {"lt": 40},
            "codes": ["x"],
            "window": {"start": "-1 year", "end": "0 days", "closed": "left"},
        }
    )
    assert c.label() == "lvef value {'lt': 40.0} code in ['x'] (-1 year to 0 days, closed left)"


# -- observation window ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def followed(new_site: Callable[[], Site]) -> Store:
    """Index 2020-06-01 08:00 for each; a year before is 2019-06-01 08:00, 30 days after
    2020-07-01 08:00."""
    s = new_site()
    for pid, first, last, died in [
        ("q1", "2019-05-01T08:00", "2020-07-15T08:00", None),  # spans both: kept
        ("q2", "2019-07-01T08:00", "2020-07-15T08:00", None),  # starts too late
        ("q3", "2019-01-01T08:00", "2020-06-10T08:00", None),  # not followed 30 days
        ("q4", "2019-01-01T08:00", "2020-06-10T08:00", "2020-06-20"),  # died: kept
        ("q5", "2019-06-01T08:00", "2020-07-01T08:00", None),  # exactly on both: kept
    ]:
        s.patient(pid, died=died).stay(f"s{pid}", pid, "2020-06-01T08:00", "2020-06-03T08:00")
        s.obs(pid, "heart_rate", 70, first).obs(pid, "heart_rate", 80, last)
    return s.build()


def test_observation_window(followed: Store) -> None:
    result = followed.extract(
        cohort={"entry": IMP, "observation_window": {"before": "1 year", "after": "30 days"}}
    )
    assert [p for p, _ in keys(result)] == ["q1", "q4", "q5"]
    assert attrition(result) == [("entry", 5, 5), ("observation", 3, 3), ("selection", 3, 3)]
    assert result.attrition[1].label == "records from 1 year to 30 days around the index"


def test_observation_window_defaults_to_the_index(followed: Store) -> None:
    # before 0 and after 0: every patient has records on both sides of the index
    result = followed.count(entry=IMP, observation_window={})
    assert result.rows == 5


# -- nobody ------------------------------------------------------------------------------------

FEATURES: list[dict[str, Any]] = [
    {"name": "age", "demographic": "age"},
    {"name": "sex", "demographic": "sex"},
    {"name": "t", "demographic": "index_time"},
    {"name": "los", "demographic": "length_of_stay"},
    {"name": "lvef", "variable": "lvef", "agg": "last"},
    {"name": "nyha", "variable": "nyha_class", "field": "code"},
    {"name": "n_sbp", "variable": "systolic_bp", "agg": "count"},
    {"name": "dm", "variable": "diabetes", "agg": "any"},
    {"pivot": ["copd", "heart_failure"], "prefix": "hx_"},
    {
        "name": "egfr",
        "derived": "egfr_ckd_epi_2021",
        "inputs": {"creatinine": "lvef", "age": "age", "sex": "sex"},
    },
    {"name": "death_1y", "outcome": "death", "horizon": "1 year"},
    {
        "name": "hf_readm",
        "outcome": "readmission",
        "horizon": "30 days",
        "diagnosis": "heart_failure",
    },
]


def test_a_cohort_of_nobody(hospital: Store) -> None:
    nobody = hospital.extract(*FEATURES, cohort={"entry": {**IMP, "start": "2030-01-01"}})
    somebody = hospital.extract(*FEATURES, cohort={"entry": IMP})
    assert nobody.table is not None and somebody.table is not None
    assert nobody.rows == 0 and nobody.table.num_rows == 0
    assert nobody.warnings == ["the cohort test selects nobody at this site"]
    # the same columns with the same types as a cohort of somebody
    assert nobody.table.schema == somebody.table.schema
    schema = nobody.table.schema
    assert schema.names == [
        "row_id", "patient_id", "encounter_id", "index_time", "age", "sex", "t", "los", "lvef",
        "nyha", "n_sbp", "dm", "hx_copd", "hx_heart_failure", "egfr", "death_1y",
        "death_1y_days", "hf_readm", "hf_readm_days",
    ]  # fmt: skip
    assert schema.field("lvef").type == pa.float64()
    assert schema.field("nyha").type == pa.string()
    assert schema.field("n_sbp").type == pa.int64()
    assert schema.field("dm").type == pa.bool_()
    assert schema.field("t").type == pa.timestamp("us")
    assert pa.types.is_integer(schema.field("death_1y").type)
    # the count warns too, and the metadata describes the empty columns
    assert hospital.count(entry={**IMP, "start": "2030-01-01"}).warnings == nobody.warnings
    assert nobody.metadata["rows"] == 0
    assert len(nobody.metadata["columns"]) == len(schema.names)


def test_a_column_without_records_warns(hospital: Store) -> None:
    result = hospital.extract({"name": "k", "variable": "potassium"}, cohort={"entry": IMP})
    assert result.warnings == [
        "column k: no record of potassium for this cohort at this site "
        "(the column is empty, not zero)"
    ]


# -- criteria that cannot be compiled ----------------------------------------------------------


@pytest.mark.parametrize(
    ("cohort", "message"),
    [
        (
            {"entry": IMP, "inclusion": [{"variable": "ejection_fraction"}]},
            r"inclusion\[0\]\.variable: 'ejection_fraction' is not a variable",
        ),
        (
            {"entry": IMP, "inclusion": [{"age": {"min": 18}}], "exclusion": [{"variable": "x"}]},
            r"exclusion\[0\]\.variable: 'x' is not a variable",
        ),
        (
            {"entry": {**IMP, "diagnosis": "heart_faillure"}},
            r"entry\.diagnosis: 'heart_faillure' is not a variable.*similar: .*heart_failure",
        ),
        (
            {"entry": {"event": "variable", "variable": "sbp"}},
            r"entry\.variable: 'sbp' is not a variable",
        ),
    ],
)
def test_unknown_variables(hospital: Store, cohort: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        hospital.count(**cohort)
    assert err.value.rule == "unknown-variable"


@pytest.mark.parametrize(
    ("cohort", "message"),
    [
        ({"inclusion": [{"age": {"min": 18}}]}, r"inclusion\[0\]: an age criterion needs an index"),
        (
            {"exclusion": [{"variable": "lvef", "window": "before"}]},
            r"exclusion\[0\]: the window 'before' needs an index time",
        ),
        (
            {"inclusion": [{"variable": "lvef", "window": {"start": "-1 year"}}]},
            r"inclusion\[0\]: the window .* needs an index time",
        ),
        ({"observation_window": {"before": "1 year"}}, r"observation_window needs an index time"),
    ],
)
def test_windows_need_an_index_time(hospital: Store, cohort: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        hospital.count(entry={"event": "patient"}, **cohort)
    assert err.value.rule == "impossible-window"

"""Aggregations of a variable's records (and their options), and windows around the index."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from cardiobox.errors import InputError

if TYPE_CHECKING:
    from tests.cohort.conftest import Site, Store

# One patient, one stay: index 2020-08-31 10:00, discharge 2020-09-05 10:00.
INDEX = "2020-08-31T10:00"


@pytest.fixture(scope="module")
def records(new_site: Callable[[], Site]) -> Store:
    """Creatinine 90, 100, 110 µmol/L (30 and 10 days before the index, 2 days after);
    NYHA class II then III; one heart-failure diagnosis; one undated creatinine of 500."""
    return (
        new_site()
        .patient("p1", "female", born="1950-01-01")
        .stay("e1", "p1", INDEX, "2020-09-05T10:00")
        .obs("p1", "creatinine", 90, "2020-08-01T10:00")
        .obs("p1", "creatinine", 100, "2020-08-21T10:00")
        .obs("p1", "creatinine", 110, "2020-09-02T10:00")
        .obs("p1", "creatinine", 500)  # undated: only in window "ever"
        .obs("p1", "nyha_class", "LA28405-1", "2020-08-21T10:00")  # class II
        .obs("p1", "nyha_class", "LA28406-9", "2020-09-01T10:00")  # class III
        .condition("p1", "I50.9", "2020-08-31")
        .build()
    )


DATED = {"start": "-1 year", "end": "1 year"}  # the three dated creatinine values


def one(store: Store, **feature: Any) -> Any:
    """The value of one feature (named x) for the only row."""
    (value,) = store.values({"name": "x", **feature})
    return value


def row(store: Store, **features: dict[str, Any]) -> dict[str, Any]:
    """The only row of several features at once (one extraction), keyed by name."""
    (r,) = store.rows(*({"name": name, **f} for name, f in features.items()))
    return {name: r[name] for name in features}


@pytest.mark.parametrize(
    ("agg", "expected"),
    [
        ("first", 90.0),  # 2020-08-01
        ("last", 110.0),  # 2020-09-02
        ("min", 90.0),
        ("max", 110.0),
        ("mean", 100.0),  # (90 + 100 + 110) / 3
        ("sd", 10.0),  # sqrt(((-10)² + 0² + 10²) / (3 - 1)) = sqrt(100)
        ("count", 3),
        ("any", True),
        ("days_since_first", 30.0),  # 2020-08-31 10:00 - 2020-08-01 10:00
        ("days_since_last", -2.0),  # 2020-08-31 10:00 - 2020-09-02 10:00
    ],
)
def test_each_aggregation_of_the_dated_values(records: Store, agg: str, expected: Any) -> None:
    value = one(records, variable="creatinine", agg=agg, window=DATED)
    assert value == pytest.approx(expected)
    assert type(value) is type(expected)


def test_ever_includes_the_undated_record(records: Store) -> None:
    got = row(
        records,
        n={"variable": "creatinine", "agg": "count"},
        mean={"variable": "creatinine", "agg": "mean"},
        max={"variable": "creatinine", "agg": "max"},
        since={"variable": "creatinine", "agg": "days_since_first"},
    )
    # 90, 100, 110 and the undated 500: count 4, mean (90 + 100 + 110 + 500) / 4 = 200;
    # days since the first dated record: an undated record has no time and does not count
    assert got == {"n": 4, "mean": 200.0, "max": 500.0, "since": 30.0}


def test_days_since_before_the_index(records: Store) -> None:
    got = row(
        records,
        first={"variable": "creatinine", "agg": "days_since_first", "window": "before"},
        last={"variable": "creatinine", "agg": "days_since_last", "window": "before"},
    )
    # before the index: 2020-08-01 10:00 and 2020-08-21 10:00 → 30 and 10 days
    assert got == {"first": 30.0, "last": 10.0}


def test_no_record_gives_null_values_and_zero_counts(records: Store) -> None:
    # no potassium at all: numbers are missing, counts are 0, flags are false
    aggs = ["first", "last", "min", "max", "mean", "sd", "count", "any"]
    got = row(
        records,
        **{a: {"variable": "potassium", "agg": a} for a in aggs},
        since={"variable": "potassium", "agg": "days_since_first"},
        until={"variable": "potassium", "agg": "days_since_last"},
    )
    assert got == {
        **dict.fromkeys(["first", "last", "min", "max", "mean", "sd"]),
        "count": 0,
        "any": False,
        "since": None,
        "until": None,
    }


def test_sd_of_one_value_is_null(records: Store) -> None:
    # during the stay only 110 (2020-09-02): the sample sd of one value is undefined
    got = row(
        records,
        sd={"variable": "creatinine", "agg": "sd", "window": "stay"},
        mean={"variable": "creatinine", "agg": "mean", "window": "stay"},
    )
    assert got == {"sd": None, "mean": 110.0}


def test_coded_answers_aggregate_as_ordinals(records: Store) -> None:
    got = row(
        records,
        last={"variable": "nyha_class", "agg": "last"},
        mean={"variable": "nyha_class", "agg": "mean"},
        first_before={"variable": "nyha_class", "agg": "first", "window": "before"},
    )
    # NYHA II (2) then III (3): last 3, mean (2 + 3) / 2 = 2.5, first before the index 2
    assert got == {"last": 3.0, "mean": 2.5, "first_before": 2.0}


def test_field_code_gives_the_answer_code(records: Store) -> None:
    got = row(
        records,
        last={"variable": "nyha_class", "field": "code"},
        first={"variable": "nyha_class", "field": "code", "agg": "first"},
        # a condition's code is the code that identified it
        hf={"variable": "heart_failure", "agg": "last"},
    )
    assert got == {"last": "LA28406-9", "first": "LA28405-1", "hf": "I50.9"}


def test_map_turns_codes_into_values(records: Store) -> None:
    labels = {"LA28405-1": "mild", "LA28406-9": "moderate"}
    by_system = {"http://loinc.org|LA28405-1": 10, "http://loinc.org|LA28406-9": 20}
    got = row(
        records,
        last={"variable": "nyha_class", "map": labels},
        first={"variable": "nyha_class", "map": labels, "agg": "first"},
        # keys may name the system; a numeric map allows numeric aggregations
        mean={"variable": "nyha_class", "map": by_system, "agg": "mean"},
        # an unmapped code is missing, not an error: only III is mapped
        only_iii={"variable": "nyha_class", "map": {"LA28406-9": 30}, "agg": "first"},
    )
    # mean (10 + 20) / 2 = 15; first of the mapped values is III → 30
    assert got == {"last": "moderate", "first": "mild", "mean": 15.0, "only_iii": 30}


def test_unit_conversion_and_round(records: Store) -> None:
    got = row(
        records,
        mg={"variable": "creatinine", "window": DATED, "unit": "mg/dL"},
        mg2={"variable": "creatinine", "window": DATED, "unit": "mg/dL", "round": 2},
        mean0={"variable": "creatinine", "agg": "mean", "window": "before", "round": 0},
        sd0={"variable": "creatinine", "agg": "sd", "window": DATED, "round": 0},
    )
    # creatinine 110 µmol/L x 0.011312 (mg/dL per µmol/L, M = 113.12 g/mol) = 1.24432 mg/dL,
    # 1.24 rounded to 2 digits; mean before the index (90 + 100) / 2 = 95; sd of 90, 100, 110
    # is 10
    assert got == {"mg": pytest.approx(1.24432), "mg2": 1.24, "mean0": 95.0, "sd0": 10.0}


def test_unit_reaches_the_metadata(records: Store) -> None:
    result = records.extract(
        {"name": "crea", "variable": "creatinine"},
        {"name": "crea_mg", "variable": "creatinine", "unit": "mg/dL"},
        {"name": "n_crea", "variable": "creatinine", "agg": "count"},
        {"name": "since", "variable": "creatinine", "agg": "days_since_first"},
    )
    units = {c["name"]: c["unit"] for c in result.metadata["columns"]}
    assert units == {
        "row_id": None,
        "patient_id": None,
        "encounter_id": None,
        "index_time": None,
        "crea": "umol/L",
        "crea_mg": "mg/dL",
        "n_crea": None,
        "since": "d",
    }


def test_unit_errors_name_the_feature(records: Store) -> None:
    with pytest.raises(InputError, match=r"feature x: unknown unit 'furlong'") as err:
        one(records, variable="creatinine", unit="furlong")
    assert err.value.rule == "unknown-unit"
    with pytest.raises(InputError, match=r"feature x: cannot convert creatinine .* to mm\[Hg\]"):
        one(records, variable="creatinine", unit="mm[Hg]")
    with pytest.raises(InputError, match=r"feature x: nyha_class has no unit to convert"):
        one(records, variable="nyha_class", unit="mg/dL")


@pytest.mark.parametrize("agg", ["mean", "sd", "min", "max"])
def test_numeric_aggregation_of_codes_is_an_input_error(records: Store, agg: str) -> None:
    with pytest.raises(InputError, match=rf"feature x: {agg} needs numbers.*heart_failure"):
        one(records, variable="heart_failure", agg=agg)
    with pytest.raises(InputError, match=r"gives codes") as err:
        one(records, variable="nyha_class", field="code", agg=agg)
    assert err.value.rule == "feature-type"
    with pytest.raises(InputError, match=r"needs numbers"):
        one(records, variable="nyha_class", map={"LA28405-1": "mild"}, agg=agg)


# -- windows -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edges(new_site: Callable[[], Site]) -> Store:
    """Sodium exactly on the edges of a window of ±10 days around the index, and inside."""
    return (
        new_site()
        .patient("p1")
        .stay("e1", "p1", INDEX, "2020-09-05T10:00")
        .obs("p1", "sodium", 131, "2020-08-21T10:00")  # index - 10 days: the start
        .obs("p1", "sodium", 132, "2020-08-21T09:59")  # one minute before the start
        .obs("p1", "sodium", 135, "2020-08-31T12:00")  # inside
        .obs("p1", "sodium", 139, "2020-09-10T10:00")  # index + 10 days: the end
        .obs("p1", "sodium", 138, "2020-09-10T10:01")  # one minute after the end
        .build()
    )


@pytest.mark.parametrize(
    ("closed", "expected"),
    [
        ("both", [131.0, 135.0, 139.0]),
        ("left", [131.0, 135.0]),
        ("right", [135.0, 139.0]),
        ("neither", [135.0]),
    ],
)
def test_records_on_the_edges(edges: Store, closed: str, expected: list[float]) -> None:
    window = {"start": "-10 days", "end": "10 days", "closed": closed}
    got = row(
        edges,
        n={"variable": "sodium", "agg": "count", "window": window},
        lo={"variable": "sodium", "agg": "min", "window": window},
        hi={"variable": "sodium", "agg": "max", "window": window},
    )
    assert got == {"n": len(expected), "lo": min(expected), "hi": max(expected)}


def test_open_ended_windows(edges: Store) -> None:
    got = row(
        edges,
        to_end={"variable": "sodium", "agg": "count", "window": {"end": "10 days"}},
        from_start={"variable": "sodium", "agg": "count", "window": {"start": "-10 days"}},
        to_end_open={
            "variable": "sodium",
            "agg": "count",
            "window": {"end": "10 days", "closed": "neither"},
        },
        weeks={"variable": "sodium", "agg": "last", "window": {"start": "-1 w", "end": "1 w"}},
    )
    # no start: everything up to index + 10 days (132, 131, 135, 139); no end: from index
    # - 10 days (131, 135, 139, 138); the end alone, closed neither: 132, 131, 135 (139 sits
    # on the end); -1 week to 1 week is 2020-08-24 10:00 .. 2020-09-07 10:00: only 135
    assert got == {"to_end": 4, "from_start": 4, "to_end_open": 3, "weeks": 135.0}


@pytest.fixture(scope="module")
def months(new_site: Callable[[], Site]) -> Store:
    """Index 2020-08-31 10:00 (leap year) and 2021-08-31 10:00: six months before them are
    2020-02-29 10:00 and 2021-02-28 10:00 by the calendar."""
    return (
        new_site()
        .patient("p20")
        .stay("e20", "p20", "2020-08-31T10:00", "2020-09-01T10:00")
        .obs("p20", "potassium", 4.0, "2020-02-29T10:00")  # on the start: in
        .obs("p20", "potassium", 5.0, "2020-02-29T09:59")  # a minute earlier: out
        .obs("p20", "potassium", 6.0, "2020-02-28T10:00")  # out
        .patient("p21")
        .stay("e21", "p21", "2021-08-31T10:00", "2021-09-01T10:00")
        .obs("p21", "potassium", 4.5, "2021-02-28T10:00")  # on the start: in
        .obs("p21", "potassium", 5.5, "2021-02-28T09:59")  # out
        .build()
    )


def test_calendar_months(months: Store) -> None:
    window = {"start": "-6 months", "end": "0 days"}
    rows = months.rows(
        {"name": "n", "variable": "potassium", "agg": "count", "window": window},
        {"name": "k", "variable": "potassium", "agg": "first", "window": window},
    )
    assert [(r["patient_id"], r["n"], r["k"]) for r in rows] == [
        ("p20", 1, 4.0),
        ("p21", 1, 4.5),
    ]
    # in days: 2020-02-29 + 184 days = 2020-08-31 (31+30+31+30+31+31), so -185 days is
    # 2020-02-28 10:00 (all three of p20); 2021-02-28 + 184 days = 2021-08-31, so -185 days
    # is 2021-02-27 10:00 (both of p21)
    assert months.values(
        {"name": "n", "variable": "potassium", "agg": "count", "window": {"start": "-185 days"}}
    ) == [3, 2]


@pytest.fixture(scope="module")
def named(new_site: Callable[[], Site]) -> Store:
    """Heart rate before, at, during, at the end of and after the stay, and undated."""
    return (
        new_site()
        .patient("p1")
        .stay("e1", "p1", INDEX, "2020-09-05T10:00")
        .obs("p1", "heart_rate", 61, "2020-08-31T09:59")  # just before the index
        .obs("p1", "heart_rate", 62, INDEX)  # at the index
        .obs("p1", "heart_rate", 63, "2020-09-02T10:00")  # during the stay
        .obs("p1", "heart_rate", 64, "2020-09-05T10:00")  # at discharge
        .obs("p1", "heart_rate", 65, "2020-09-05T10:01")  # a minute after discharge
        .obs("p1", "heart_rate", 66)  # undated
        .build()
    )


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("before", [61]),  # strictly before the index
        ("stay", [62, 63, 64]),  # index to discharge, both included
        ("ever", [61, 62, 63, 64, 65, 66]),  # every record, the undated one too
        ({"start": "-100 years"}, [61, 62, 63, 64, 65]),  # dated records only
        ({}, [61, 62, 63, 64, 65]),  # an open window: every dated record
        ({"start": "0 days", "end": "0 days"}, [62]),  # exactly the index time
    ],
)
def test_named_windows(named: Store, window: Any, expected: list[int]) -> None:
    got = row(
        named,
        n={"variable": "heart_rate", "agg": "count", "window": window},
        mean={"variable": "heart_rate", "agg": "mean", "window": window},
    )
    assert got == {"n": len(expected), "mean": pytest.approx(sum(expected) / len(expected))}


def test_window_offsets_in_every_unit() -> None:
    from cardiobox.cohort.definition import offset_days, parse_offset

    assert parse_offset("-6 months") == (-6, "MONTH")
    assert parse_offset("30 days") == (30, "DAY")
    assert parse_offset("+2 w") == (14, "DAY")
    assert parse_offset("1 year") == (1, "YEAR")
    assert parse_offset("3 mo") == (3, "MONTH")
    assert parse_offset(7) == (7, "DAY")
    assert math.isclose(offset_days("-1 y"), -365.25)
    with pytest.raises(ValueError, match="not a time offset"):
        parse_offset("six months")

"""Derived features: eGFR (CKD-EPI 2021), BMI and the MAGGIC score, checked by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from cardiobox.errors import InputError

if TYPE_CHECKING:
    from tests.cohort.conftest import Site, Store

INDEX = "2020-08-31T10:00"
STAY_END = "2020-09-05T10:00"
DURING = "2020-08-31T11:00"


@pytest.fixture(scope="module")
def kidneys(new_site: Callable[[], Site]) -> Store:
    """A woman of 70 with creatinine 88.42 µmol/L (1.0 mg/dL), a man of 50 with 70.736 µmol/L
    (0.8 mg/dL), a patient of other sex."""
    return (
        new_site()
        .patient("f70", "female", born="1950-01-01")
        .stay("e1", "f70", INDEX, STAY_END)
        .obs("f70", "creatinine", 88.42, DURING)
        .obs("f70", "body_weight", 80, DURING)
        .obs("f70", "body_height", 175, DURING)
        .patient("m50", "male", born="1970-03-01")
        .stay("e2", "m50", INDEX, STAY_END)
        .obs("m50", "creatinine", 70.736, DURING)
        .obs("m50", "body_weight", 58.32, DURING)
        .obs("m50", "body_height", 180, DURING)
        .patient("o60", "other", born="1960-01-01")
        .stay("e3", "o60", INDEX, STAY_END)
        .obs("o60", "creatinine", 88.42, DURING)
        .build()
    )


EGFR = [
    {"name": "age", "demographic": "age"},
    {"name": "sex", "demographic": "sex"},
    {"name": "crea", "variable": "creatinine", "agg": "first", "window": "stay"},
    {
        "name": "egfr",
        "derived": "egfr_ckd_epi_2021",
        "inputs": {"creatinine": "crea", "age": "age", "sex": "sex"},
    },
]


def test_egfr_ckd_epi_2021(kidneys: Store) -> None:
    rows = {r["patient_id"]: r for r in kidneys.rows(*EGFR)}
    # woman, 70 years, Scr 88.42 / 88.42 = 1.0 mg/dL, κ 0.7, α -0.241:
    #   Scr/κ = 1.428571; min(1.428571, 1)^-0.241 = 1; max(1.428571, 1)^-1.2 = 0.651805;
    #   0.9938^70 = 0.647038; 142 × 1 × 0.651805 × 0.647038 × 1.012 = 60.606 → 60.6
    assert (rows["f70"]["age"], rows["f70"]["egfr"]) == (70, 60.6)
    # man, 50 years (born 1970-03-01, index 2020-08-31), Scr 70.736 / 88.42 = 0.8 mg/dL,
    # κ 0.9, α -0.302: Scr/κ = 0.888889; 0.888889^-0.302 = 1.036211; max(...)^-1.2 = 1;
    #   0.9938^50 = 0.732740; 142 × 1.036211 × 1 × 0.732740 = 107.817 → 107.8
    assert (rows["m50"]["age"], rows["m50"]["egfr"]) == (50, 107.8)
    # the equation knows women and men only
    assert rows["o60"]["egfr"] is None


def test_egfr_reads_creatinine_in_umol_per_l(kidneys: Store) -> None:
    result = kidneys.extract(*EGFR)
    col = next(c for c in result.metadata["columns"] if c["name"] == "egfr")
    assert col["unit"] == "mL/min/{1.73_m2}"
    assert col["kind"] == "derived"
    assert "CKD-EPI 2021" in col["description"]


def test_egfr_of_missing_creatinine_is_missing(kidneys: Store) -> None:
    features = [
        *EGFR[:2],
        {"name": "crea", "variable": "creatinine", "window": "before"},  # none before
        EGFR[3],
    ]
    # (least() and greatest() skip NULLs: without a test of the creatinine the woman got
    # 142 x 1 x 1 x 0.9938^70 x 1.012 = 93.0 from no creatinine at all)
    assert [r["egfr"] for r in kidneys.rows(*features)] == [None, None, None]


def test_bmi(kidneys: Store) -> None:
    rows = kidneys.rows(
        {"name": "w", "variable": "body_weight"},
        {"name": "h", "variable": "body_height"},
        {"name": "bmi", "derived": "bmi", "inputs": {"weight": "w", "height": "h"}},
    )
    # 80 kg / 1.75² m² = 80 / 3.0625 = 26.1224 → 26.12; 58.32 / 1.80² = 58.32 / 3.24 = 18.0;
    # no weight, no height → missing
    assert [r["bmi"] for r in rows] == [26.12, 18.0, None]


# -- MAGGIC ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def maggic_site(new_site: Callable[[], Site]) -> Store:
    """Two heart-failure patients with every MAGGIC input, and one without NYHA class."""
    s = new_site()
    # A: woman, 70, LVEF 25, SBP 115, 80 kg / 175 cm, creatinine 120, NYHA III, current
    # smoker, diabetes, no COPD, heart failure since 2018, on a beta-blocker and an ACEI.
    (
        s.patient("a", "female", born="1950-01-01")
        .stay("ea", "a", INDEX, STAY_END)
        .condition("a", "I50.9", "2018-01-01")
        .condition("a", "E11.9", "2010-01-01")
        .med("a", "C07AB07", "2020-01-01")  # bisoprolol
        .med("a", "C09AA05", "2020-01-01")  # ramipril
        .obs("a", "lvef", 25, DURING)
        .obs("a", "systolic_bp", 115, DURING)
        .obs("a", "body_weight", 80, DURING)
        .obs("a", "body_height", 175, DURING)
        .obs("a", "creatinine", 120, DURING)
        .obs("a", "nyha_class", "LA28406-9", DURING)  # III
        .obs("a", "smoking_status", "449868002", DURING)  # current every-day smoker
    )
    # B: man, 50, LVEF 35, SBP 135, 58.32 kg / 180 cm, creatinine 250, NYHA II, never
    # smoked, no diabetes, COPD, heart failure new at the index, no beta-blocker, no ACEI/ARB.
    (
        s.patient("b", "male", born="1970-03-01")
        .stay("eb", "b", INDEX, STAY_END)
        .condition("b", "I50.9", "2020-08-31")
        .condition("b", "J44.9", "2015-01-01")
        .obs("b", "lvef", 35, DURING)
        .obs("b", "systolic_bp", 135, DURING)
        .obs("b", "body_weight", 58.32, DURING)
        .obs("b", "body_height", 180, DURING)
        .obs("b", "creatinine", 250, DURING)
        .obs("b", "nyha_class", "LA28405-1", DURING)  # II
        .obs("b", "smoking_status", "266919005", DURING)  # never
    )
    # C: like A without NYHA class
    (
        s.patient("c", "female", born="1950-01-01")
        .stay("ec", "c", INDEX, STAY_END)
        .obs("c", "lvef", 25, DURING)
        .obs("c", "systolic_bp", 115, DURING)
        .obs("c", "body_weight", 80, DURING)
        .obs("c", "body_height", 175, DURING)
        .obs("c", "creatinine", 120, DURING)
        .obs("c", "smoking_status", "266919005", DURING)
    )
    return s.build()


SMOKER = {"449868002": 1, "8517006": 0, "266919005": 0}  # current, former, never
MAGGIC: list[dict[str, Any]] = [
    {"name": "age", "demographic": "age"},
    {"name": "sex", "demographic": "sex"},
    {"name": "lvef", "variable": "lvef", "agg": "last", "window": "stay"},
    {"name": "sbp", "variable": "systolic_bp", "agg": "first", "window": "stay"},
    {"name": "weight", "variable": "body_weight", "agg": "first", "window": "stay"},
    {"name": "height", "variable": "body_height", "agg": "last"},
    {"name": "crea", "variable": "creatinine", "agg": "first", "window": "stay"},
    {"name": "nyha", "variable": "nyha_class", "agg": "first", "window": "stay"},
    {"name": "smoker", "variable": "smoking_status", "agg": "last", "map": SMOKER},
    {"name": "dm", "variable": "diabetes", "agg": "any", "window": {"end": "0 days"}},
    {"name": "copd", "variable": "copd", "agg": "any", "window": {"end": "0 days"}},
    {"name": "hf18", "variable": "heart_failure", "agg": "any", "window": {"end": "-18 months"}},
    {"name": "bb", "variable": "beta_blocker", "agg": "any", "window": "before"},
    {"name": "acei", "variable": "ras_inhibitor", "agg": "any", "window": "before"},
    {"name": "bmi", "derived": "bmi", "inputs": {"weight": "weight", "height": "height"}},
    {
        "name": "maggic",
        "derived": "maggic",
        "inputs": {
            "lvef": "lvef",
            "age": "age",
            "sbp": "sbp",
            "bmi": "bmi",
            "creatinine": "crea",
            "nyha": "nyha",
            "sex": "sex",
            "smoker": "smoker",
            "diabetes": "dm",
            "copd": "copd",
            "hf_18_months": "hf18",
            "beta_blocker": "bb",
            "acei_arb": "acei",
        },
    },
]


def test_maggic_score(maggic_site: Store) -> None:
    rows = {r["patient_id"]: r for r in maggic_site.rows(*MAGGIC)}
    a, b = rows["a"], rows["b"]
    assert (a["bmi"], a["hf18"], a["bb"], a["acei"], a["smoker"]) == (26.12, True, True, True, 1)
    # A (LVEF < 30 bands): LVEF 25 → 5; age 70-74 → 6; SBP 110-119 → 4; BMI 25-29 → 2;
    # creatinine 110-129 → 2; NYHA III → 6; female → 0; smoker → 1; diabetes → 3; COPD → 0;
    # HF ≥ 18 months → 2; beta-blocker → 0; ACEI/ARB → 0
    # 5 + 6 + 4 + 2 + 2 + 6 + 0 + 1 + 3 + 0 + 2 + 0 + 0 = 31
    assert a["maggic"] == 31
    assert (b["bmi"], b["hf18"], b["bb"], b["acei"], b["smoker"]) == (18.0, False, False, False, 0)
    # B (LVEF 30-39 bands): LVEF 35-39 → 2; age < 55 → 0; SBP 130-139 → 1; BMI 15-19 → 5;
    # creatinine ≥ 250 → 8; NYHA II → 2; male → 1; not a smoker → 0; no diabetes → 0;
    # COPD → 2; HF < 18 months → 0; no beta-blocker → 3; no ACEI/ARB → 1
    # 2 + 0 + 1 + 5 + 8 + 2 + 1 + 0 + 0 + 2 + 0 + 3 + 1 = 25
    assert b["maggic"] == 25
    # C misses NYHA class: no score
    assert rows["c"]["maggic"] is None


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        # (lvef, age, sbp) → EF points + age points + SBP points, by the Pocock 2013 table
        ((19, 54, 160), 7 + 0 + 0),
        ((20, 55, 109), 6 + 1 + 5),
        ((24, 80, 150), 6 + 10 + 0),
        ((29, 79, 149), 5 + 8 + 1),
        ((30, 60, 119), 3 + 4 + 2),
        ((34, 64, 120), 3 + 4 + 1),
        ((39, 65, 139), 2 + 6 + 1),
        ((40, 69, 100), 0 + 7 + 2),
        ((60, 70, 110), 0 + 9 + 1),
        ((60, 75, 129), 0 + 12 + 1),
        ((60, 85, 130), 0 + 15 + 0),
    ],
)
def test_maggic_point_table(x: tuple[float, float, float], expected: int) -> None:
    import duckdb

    from cardiobox.cohort.derived import derived_sql

    inputs = {k: k for k in ("lvef", "age", "sbp")}
    others = {
        "bmi": 30,  # 0
        "creatinine": 80,  # 0
        "nyha": 1,  # 0
        "sex": "'female'",  # 0
        "smoker": "false",
        "diabetes": "false",
        "copd": "false",
        "hf_18_months": "false",
        "beta_blocker": "true",  # 0
        "acei_arb": "true",  # 0
    }
    sql, _, _ = derived_sql("maggic", {**inputs, **{k: k for k in others}}, "test")
    values = ", ".join([*(f"{v} AS {k}" for k, v in zip(inputs, x, strict=True))] + [
        f"{v} AS {k}" for k, v in others.items()
    ])  # fmt: skip
    (score,) = duckdb.sql(f"SELECT {sql} FROM (SELECT {values}) d").fetchall()[0]
    assert score == expected


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        # (bmi, creatinine µmol/L, nyha) → BMI + creatinine + NYHA points
        ((14.9, 89, 1), 6 + 0 + 0),
        ((15, 90, 2), 5 + 1 + 2),
        ((20, 110, 3), 3 + 2 + 6),
        ((25, 130, 4), 2 + 3 + 8),
        ((30, 150, 1), 0 + 4 + 0),
        ((30, 170, 1), 0 + 5 + 0),
        ((30, 210, 1), 0 + 6 + 0),
        ((30, 249, 1), 0 + 6 + 0),
        ((30, 250, 1), 0 + 8 + 0),
    ],
)
def test_maggic_bmi_creatinine_nyha(x: tuple[float, float, int], expected: int) -> None:
    import duckdb

    from cardiobox.cohort.derived import derived_sql

    names = ("lvef", "age", "sbp", "bmi", "creatinine", "nyha", "sex", "smoker", "diabetes",
             "copd", "hf_18_months", "beta_blocker", "acei_arb")  # fmt: skip
    sql, _, _ = derived_sql("maggic", {k: k for k in names}, "test")
    # LVEF 50, age 40, SBP 160, female, no risk flags, on both drugs: 0 points
    bmi, crea, nyha = x
    row = (
        f"50 AS lvef, 40 AS age, 160 AS sbp, {bmi} AS bmi, {crea} AS creatinine, {nyha} AS nyha, "
        "'female' AS sex, false AS smoker, false AS diabetes, false AS copd, "
        "false AS hf_18_months, true AS beta_blocker, true AS acei_arb"
    )
    (score,) = duckdb.sql(f"SELECT {sql} FROM (SELECT {row}) d").fetchall()[0]
    assert score == expected


# -- inputs that are missing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (
            [{"name": "bmi", "derived": "bmi", "inputs": {"weight": "w", "height": "h"}}],
            r"features\[0\]: bmi reads columns that come later or do not exist: \['w', 'h'\]",
        ),
        (
            [
                {"name": "bmi", "derived": "bmi", "inputs": {"weight": "w", "height": "h"}},
                {"name": "w", "variable": "body_weight"},
                {"name": "h", "variable": "body_height"},
            ],
            r"features\[0\]: bmi reads columns that come later",
        ),
        (
            [
                {"name": "w", "variable": "body_weight"},
                {"name": "bmi", "derived": "bmi", "inputs": {"weight": "w"}},
            ],
            r"features\[1\]: bmi needs the inputs \['weight', 'height'\]; missing \['height'\]",
        ),
        (
            [
                {"name": "w", "variable": "body_weight"},
                {
                    "name": "bmi",
                    "derived": "bmi",
                    "inputs": {"weight": "w", "height": "w", "x": "w"},
                },
            ],
            r"features\[1\]: bmi needs the inputs .*; unknown \['x'\]",
        ),
        (
            [
                {"name": "age", "demographic": "age"},
                {"name": "egfr", "derived": "egfr_ckd_epi_2021", "inputs": {"age": "age"}},
            ],
            r"egfr_ckd_epi_2021 needs the inputs \['creatinine', 'age', 'sex'\]; "
            r"missing \['creatinine', 'sex'\]",
        ),
    ],
)
def test_derived_inputs_missing(
    kidneys: Store, features: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(InputError, match=message) as err:
        kidneys.extract(*features)
    assert err.value.rule == "derived-inputs"

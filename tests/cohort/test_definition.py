"""Cohort definitions and feature sets: loading, validation, and errors that name the place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cardiobox.cdm import load_dictionary
from cardiobox.cohort import CohortDefinition, FeatureSet, count, load_definition
from cardiobox.cohort.compile import compile_cohort, compile_features
from cardiobox.cohort.definition import Criterion, ValueRange, Window
from cardiobox.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "src" / "cardiobox" / "cohort" / "library"
UCI = ROOT / "examples" / "uci_heart_disease"

COHORT_HEAD = "cardiobox_cohort: 1\nname: test\n"
FEATURES_HEAD = "cardiobox_features: 1\nname: test\nfeatures:\n"


def write(tmp_path: Path, text: str, name: str = "definition.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> InputError:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_definition(path)
    assert err.value.location.file == str(path)
    assert str(path) in str(err.value)
    return err.value


# -- the shipped definitions -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [UCI / "cohort.yaml", UCI / "features.yaml", *sorted(LIBRARY.glob("*.yaml"))],
    ids=lambda p: p.name,
)
def test_shipped_definitions_load_and_compile(path: Path) -> None:
    d = load_definition(path)
    dictionary = load_dictionary()
    if isinstance(d, CohortDefinition):
        compiled = compile_cohort(d, dictionary)
        assert compiled.steps[0].kind == "entry"
        assert f"SELECT * FROM {compiled.final}" in compiled.script()
    else:
        assert isinstance(d, FeatureSet)
        # the UCI columns are undated; the Study-1 features need an index time
        compiled_fs = compile_features(d, dictionary, dated=path.parent != UCI)
        assert compiled_fs.columns


def test_uci_definitions(tmp_path: Path) -> None:
    cohort = load_definition(UCI / "cohort.yaml")
    assert isinstance(cohort, CohortDefinition)
    assert (cohort.entry.event, cohort.select) == ("patient", "all")
    features = load_definition(UCI / "features.yaml")
    assert isinstance(features, FeatureSet)
    names = [getattr(f, "name", None) for f in features.features]
    assert names == ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach",
                     "exang", "oldpeak", "slope", "ca", "thal", "num"]  # fmt: skip


def test_json_is_yaml_too(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"cardiobox_cohort": 1, "name": "j", "entry": {"event": "patient"}}',
        "cohort.json",
    )
    d = load_definition(path)
    assert isinstance(d, CohortDefinition) and d.name == "j"


# -- syntax and schema errors ------------------------------------------------------------------


def test_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    err = load_error(tmp_path, COHORT_HEAD + "entry: {event: patient\n")
    assert err.rule == "definition-syntax"
    assert err.message.startswith("not valid YAML")
    assert "line 3" in err.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file") as err:
        load_definition(tmp_path / "nowhere.yaml")
    assert err.value.rule == "missing-input"


def test_neither_cohort_nor_feature_set(tmp_path: Path) -> None:
    err = load_error(tmp_path, "name: x\nentry: {event: patient}\n")
    assert err.rule == "definition-schema"
    assert "expected a cohort definition (cardiobox_cohort: 1)" in err.message
    assert load_error(tmp_path, "- 1\n- 2\n").rule == "definition-schema"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # cohorts
        (COHORT_HEAD, "entry: Field required"),
        (COHORT_HEAD + "entry: {event: visit}", "entry.event: Input should be 'encounter'"),
        (COHORT_HEAD + "entry: {event: patient, foo: 1}", "entry.foo: Extra inputs are not"),
        (COHORT_HEAD + "entry: {event: variable}", "entry: entry event 'variable' needs"),
        (
            COHORT_HEAD + "entry: {event: patient, classes: [IMP]}",
            "entry: 'classes' and 'diagnosis' apply to entry event 'encounter'",
        ),
        (
            COHORT_HEAD + "entry: {event: encounter, start: 2020-1-1}",
            "entry: '2020-1-1' is not a date (YYYY-MM-DD)",
        ),
        (
            COHORT_HEAD + "entry: {event: encounter}\ninclusion:\n  - {age: {min: old}}",
            "inclusion.0.age.min: Input should be a valid number",
        ),
        (
            COHORT_HEAD + "entry: {event: encounter}\ninclusion:\n  - {age: {min: 1}, sex: [male]}",
            "inclusion.0: a criterion needs exactly one of 'age', 'sex' or 'variable' "
            "(found age, sex)",
        ),
        (
            COHORT_HEAD + "entry: {event: encounter}\nexclusion:\n  - {name: nothing}",
            "exclusion.0: a criterion needs exactly one of 'age', 'sex' or 'variable'",
        ),
        (
            COHORT_HEAD + "entry: {event: encounter}\ninclusion:\n  - {sex: [male], codes: [x]}",
            "inclusion.0: 'value' and 'codes' apply to a 'variable' criterion",
        ),
        (
            COHORT_HEAD + "entry: {event: encounter}\ninclusion:\n  - {sex: [man]}",
            "inclusion.0.sex.0: Input should be 'male', 'female', 'other' or 'unknown'",
        ),
        (
            COHORT_HEAD + "entry: {event: encounter}\ninclusion:\n  - {variable: lvef, count: 0}",
            "inclusion.0.count: Input should be greater than or equal to 1",
        ),
        # an impossible window: it starts after it ends
        (
            COHORT_HEAD
            + "entry: {event: encounter}\ninclusion:\n"
            + "  - {variable: lvef, window: {start: '10 days', end: '-10 days'}}",
            "inclusion.0.window: the window starts (10 days) after it ends (-10 days); "
            "it can hold nothing",
        ),
        (
            COHORT_HEAD + "entry: {event: encounter}\ninclusion:\n"
            "  - {variable: lvef, window: sometimes}",
            "inclusion.0.window: Input should be",
        ),
        # empty value ranges
        (
            COHORT_HEAD + "entry: {event: encounter}\ninclusion:\n"
            "  - {variable: lvef, value: {min: 50, max: 40}}",
            "inclusion.0.value: the value range {'min': 50.0, 'max': 40.0} is empty",
        ),
        (
            COHORT_HEAD + "entry: {event: encounter}\ninclusion:\n"
            "  - {variable: lvef, value: {gt: 40, lt: 40}}",
            "inclusion.0.value: the value range {'gt': 40.0, 'lt': 40.0} is empty",
        ),
        (
            COHORT_HEAD + "entry: {event: encounter}\nobservation_window: {before: a year}",
            "observation_window.before: 'a year' is not a time offset",
        ),
        (COHORT_HEAD.replace("test", "a b") + "entry: {event: patient}", "name: String should"),
        # feature sets
        (FEATURES_HEAD.removesuffix("features:\n"), "features: Field required"),
        (FEATURES_HEAD + "  []", "features: List should have at least 1 item"),
        (FEATURES_HEAD + "  - lvef", "features.0: Input tag 'str'"),
        (
            FEATURES_HEAD + "  - {name: a, variable: lvef, agg: median}",
            "features.0.agg: Input should be 'first', 'last'",
        ),
        (FEATURES_HEAD + "  - {name: 1a, variable: lvef}", "features.0.name: String should match"),
        (
            FEATURES_HEAD + "  - {name: a, variable: lvef, window: {start: six months}}",
            "features.0.window.start: 'six months' is not a time offset; write a whole number",
        ),
        (
            FEATURES_HEAD + "  - {name: a, derived: qrisk, inputs: {}}",
            "features.0.derived: Input should be 'egfr_ckd_epi_2021', 'bmi' or 'maggic'",
        ),
        (FEATURES_HEAD + "  - {name: a, outcome: death}", "features.0.horizon: Field required"),
        (
            FEATURES_HEAD + "  - {name: a, outcome: death, horizon: soon}",
            "features.0.horizon: 'soon' is not a time offset",
        ),
        (
            FEATURES_HEAD + "  - {name: a, outcome: death, horizon: 1 y, follow_up_end: 2021-13}",
            "features.0.follow_up_end: '2021-13' is not a date (YYYY-MM-DD)",
        ),
        (
            FEATURES_HEAD + "  - {pivot: [copd, 3, [x]]}",
            "features.0.pivot.1: Input should be a valid string (and 2 more problems)",
        ),
        (FEATURES_HEAD + "  - {pivot: phenotypes}", "features.0.pivot: Input should be"),
        (
            FEATURES_HEAD + "  - {name: s, demographic: sex, foo: 1}",
            "features.0.foo: Extra inputs are not permitted",
        ),
    ],
)
def test_schema_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    err = load_error(tmp_path, text + "\n")
    assert err.rule == "definition-schema"
    assert err.message.startswith(message), err.message


def test_unquoted_dates(tmp_path: Path) -> None:
    # YAML reads 2020-02-01 as a date; the definitions take it as the text
    cohort = load_definition(
        write(
            tmp_path, COHORT_HEAD + "entry: {event: encounter, start: 2020-02-01, end: 2020-06-01}"
        )
    )
    assert isinstance(cohort, CohortDefinition)
    assert (cohort.entry.start, cohort.entry.end) == ("2020-02-01", "2020-06-01")
    features = load_definition(
        write(
            tmp_path,
            FEATURES_HEAD
            + "  - {name: a, outcome: death, horizon: 1 y, follow_up_end: 2021-01-31}",
        )
    )
    assert isinstance(features, FeatureSet)
    assert features.features[0].follow_up_end == "2021-01-31"  # type: ignore[union-attr]


def test_several_problems_are_counted(tmp_path: Path) -> None:
    err = load_error(tmp_path, COHORT_HEAD + "entry: {event: visit, foo: 1}\nselect: some\n")
    assert err.message.endswith("(and 2 more problems)")


# -- the models --------------------------------------------------------------------------------


def test_windows_and_ranges_in_python() -> None:
    assert Window(start="-6 months", end="0 days").closed == "both"
    with pytest.raises(ValueError, match=r"starts .* after it ends"):
        Window(start="1 day", end="-1 day")
    # a year is longer than 11 months, whatever the calendar
    with pytest.raises(ValueError, match=r"starts .* after it ends"):
        Window(start="-11 months", end="-1 year")
    # equal bounds are a point, which may hold records
    assert ValueRange(min=40, max=40).min == 40
    for empty in ({"min": 40, "lt": 40}, {"gt": 40, "max": 40}, {"gt": 50, "lt": 40.5}):
        with pytest.raises(ValueError, match="is empty"):
            ValueRange.model_validate(empty)
    assert ValueRange(gt=30, lt=40).gt == 30
    # a criterion defaults to at least one record, any time
    c = Criterion(variable="lvef")
    assert (c.window, c.count) == ("ever", 1)


# -- errors found when compiling ---------------------------------------------------------------


def fs(*items: dict[str, Any]) -> FeatureSet:
    return FeatureSet.model_validate({"cardiobox_features": 1, "name": "t", "features": items})


@pytest.mark.parametrize(
    ("items", "rule", "message"),
    [
        (
            [{"name": "a", "variable": "ejection_fraction"}],
            "unknown-variable",
            r"features\[0\]\.variable: 'ejection_fraction' is not a variable of the data model",
        ),
        (
            [{"pivot": ["copd", "emphysema"]}],
            "unknown-variable",
            r"features\[0\]\.pivot: 'emphysema' is not a variable",
        ),
        (
            [{"name": "a", "variable": "lvef"}, {"name": "a", "variable": "creatinine"}],
            "duplicate-column",
            r"feature set t: two columns are named 'a'",
        ),
        (
            [
                {"name": "hx_copd", "variable": "copd", "agg": "any"},
                {"pivot": ["copd"], "prefix": "hx_"},
            ],
            "duplicate-column",
            r"two columns are named 'hx_copd'",
        ),
        (
            [
                {"name": "y", "variable": "lvef"},
                {"name": "y", "outcome": "death", "horizon": "1 y"},
            ],
            "duplicate-column",
            r"two columns are named 'y'",
        ),
        (
            # an outcome makes two columns: y and y_days
            [
                {"name": "y_days", "variable": "lvef"},
                {"name": "y", "outcome": "death", "horizon": "1 y"},
            ],
            "duplicate-column",
            r"two columns are named 'y_days'",
        ),
    ],
)
def test_feature_set_errors(items: list[dict[str, Any]], rule: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        compile_features(fs(*items), load_dictionary())
    assert err.value.rule == rule


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"name": "a", "variable": "lvef", "window": "before"},
            r"features\[0\]: the window 'before' needs an index time",
        ),
        ({"name": "a", "variable": "lvef", "window": {"start": "-1 y"}}, r"needs an index time"),
        ({"pivot": "phenotype", "window": "stay"}, r"features\[0\]: the window 'stay' needs"),
        (
            {"name": "a", "demographic": "age"},
            r"features\[0\]: age at the index needs an index time",
        ),
        ({"name": "a", "outcome": "death", "horizon": "1 y"}, r"outcomes need an index time"),
    ],
)
def test_undated_cohorts_allow_only_ever(item: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        compile_features(fs(item), load_dictionary(), dated=False)
    assert err.value.rule == "impossible-window"
    # the same item compiles for a cohort with an index time
    compile_features(fs(item), load_dictionary(), dated=True)


def test_the_api_wants_the_right_kind(tmp_path: Path) -> None:
    features = write(tmp_path, FEATURES_HEAD + "  - {name: a, variable: lvef}\n", "f.yaml")
    with pytest.raises(InputError, match="expected a cohort definition, got a feature set"):
        count(features, tmp_path / "site.duckdb")
    cohort = write(tmp_path, COHORT_HEAD + "entry: {event: patient}\n", "c.yaml")
    with pytest.raises(InputError, match="no such site store"):
        count(cohort, tmp_path / "site.duckdb")

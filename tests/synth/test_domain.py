"""The domain model: kinds, codes layout, validation errors naming file and field, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cardiobox.synth.domain import (
    DEFAULT_BINS,
    MAX_INTEGER_LEVELS,
    DerivedDomainWarning,
    Domain,
    DomainError,
    load_domain,
)

EXAMPLE = """\
cardiobox_domain: 1
name: uci_heart
derived_from_data: false
columns:
  - {name: age, kind: numeric, bounds: [18, 100], bins: 20}
  - {name: chol, kind: numeric, edges: [100, 150, 200, 250, 300, 400, 600]}
  - {name: sex, kind: categorical, categories: [0, 1]}
  - {name: cp, kind: categorical, categories: [1, 2, 3, 4]}
  - {name: smoker, kind: boolean}
  - {name: n_visits, kind: integer, bounds: [0, 20]}
  - {name: index_date, kind: date, origin: 2015-01-01, bounds: [0, 3650], bins: 10}
  - {name: admission, kind: date, index: index_date, bounds: [-3650, 0], bins: 20, unit: days}
  - {name: death, kind: boolean}
  - {name: death_days, kind: numeric, bounds: [0, 365], bins: 12, event: death}
"""


def write(tmp_path: Path, text: str, name: str = "domain.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_contract_example_loads_with_sizes(tmp_path: Path) -> None:
    d = load_domain(write(tmp_path, EXAMPLE))
    # bins / categories, then MISSING, then OUT_OF_RANGE
    assert d.sizes() == [22, 8, 4, 6, 4, 23, 12, 22, 4, 14]
    assert d.column("n_visits").levels == 21  # 21 integers <= MAX_INTEGER_LEVELS: one code each
    age = d.column("age")
    assert age.missing_code == 20 and age.out_of_range_code == 21
    np.testing.assert_allclose(age.bin_edges(), np.linspace(18, 100, 21))
    assert d.column("chol").labels()[0] == "[100, 150)"
    assert d.column("chol").labels()[5] == "[400, 600]"
    assert d.column("chol").labels()[-2:] == ["MISSING", "OUT_OF_RANGE"]
    assert d.names[0] == "age"


def test_integer_bins_group_whole_values() -> None:
    d = Domain.model_validate(
        {"name": "t", "columns": [{"name": "n", "kind": "integer", "bounds": [0, 99]}]}
    )
    col = d.column("n")
    assert MAX_INTEGER_LEVELS < 100 and col.levels == DEFAULT_BINS
    a, b = col.lattice()
    # the groups tile 0..99 without gaps or overlaps
    assert a[0] == 0 and b[-1] == 99
    assert (a[1:] == b[:-1] + 1).all()
    assert col.labels()[0] == "0..4"


def test_explicit_integer_edges_last_bin_closed() -> None:
    d = Domain.model_validate(
        {"name": "t", "columns": [{"name": "n", "kind": "integer", "edges": [0, 1, 5, 10]}]}
    )
    assert d.column("n").labels()[:3] == ["0", "1..4", "5..10"]
    assert d.column("n").value_range() == (0.0, 10.0)


def test_arrow_types_by_kind_and_dtype(tmp_path: Path) -> None:
    d = load_domain(write(tmp_path, EXAMPLE))
    assert d.arrow_type("age") == pa.float64()
    assert d.arrow_type("sex") == pa.int64()
    assert d.arrow_type("smoker") == pa.bool_()
    assert d.arrow_type("n_visits") == pa.int64()
    assert d.arrow_type("admission") == pa.date32()  # the index column's type
    d2 = Domain.model_validate(
        {
            "name": "t",
            "columns": [
                {
                    "name": "i",
                    "kind": "date",
                    "origin": "2020-01-01",
                    "bounds": [0, 9],
                    "dtype": "timestamp[ms]",
                },
                {"name": "a", "kind": "date", "index": "i", "bounds": [0, 9]},
                {"name": "f", "kind": "boolean", "dtype": "int32"},
                {"name": "c", "kind": "categorical", "categories": [1, 2.5]},
                {"name": "s", "kind": "categorical", "categories": ["1", "2"]},
            ],
        }
    )
    assert d2.arrow_type("a") == pa.timestamp("ms")
    assert d2.arrow_type("f") == pa.int32()
    assert d2.arrow_type("c") == pa.float64()
    assert d2.arrow_type("s") == pa.string()


def test_decode_order_puts_index_first() -> None:
    d = Domain.model_validate(
        {
            "name": "t",
            "columns": [
                {"name": "b", "kind": "date", "index": "a", "bounds": [0, 9]},
                {"name": "a", "kind": "date", "index": "i", "bounds": [0, 9]},
                {"name": "i", "kind": "date", "origin": "2020-01-01", "bounds": [0, 9]},
            ],
        }
    )
    assert [d.columns[i].name for i in d.decode_order()] == ["i", "a", "b"]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_save_and_load_round_trip(tmp_path: Path, fmt: str) -> None:
    d = load_domain(write(tmp_path, EXAMPLE))
    p = d.save(tmp_path / f"again.{fmt}")
    again = load_domain(p)
    assert again == d
    assert again.sizes() == d.sizes()


def test_derived_domain_warns_and_saves_the_warning(tmp_path: Path) -> None:
    text = EXAMPLE.replace("derived_from_data: false", "derived_from_data: true")
    with pytest.warns(DerivedDomainWarning, match="NOT private"):
        d = load_domain(write(tmp_path, text))
    with pytest.warns(DerivedDomainWarning):
        p = d.save(tmp_path / "draft.yaml")
        text = p.read_text()
        assert text.startswith("# DRAFTED FROM THE DATA")
        assert load_domain(p).derived_from_data


def test_unknown_column_names_it(tmp_path: Path) -> None:
    d = load_domain(write(tmp_path, EXAMPLE))
    with pytest.raises(DomainError, match="'weight' is not in domain 'uci_heart'"):
        d.column("weight")


BAD = [
    # (replacement in EXAMPLE, expected element, expected message)
    ("bounds: [18, 100], bins: 20", "columns[0] (age)", "low (100) must be below high (18)"),
    ("edges: [100, 150, 200, 250, 300, 400, 600]", "columns[1] (chol)", "strictly increasing"),
    ("categories: [0, 1]}", "columns[2] (sex)", "repeated values"),
    ("categories: [1, 2, 3, 4]", "columns[3] (cp)", "all numbers or all strings"),
    ("kind: boolean}", "columns[4] (smoker).kind", "Input should be"),
    ("bounds: [0, 20]", "columns[5] (n_visits)", "whole numbers"),
    ("origin: 2015-01-01, ", "columns[6] (index_date)", "exactly one of index"),
    ("index: index_date", "", "index 'nowhere' must be a date column"),
    ("event: death", "", "event 'age' must be a boolean or categorical"),
    ("unit: days}", "columns[7] (admission).colour", "Extra inputs are not permitted"),
]
REPLACE = [
    "bounds: [100, 18], bins: 20",
    "edges: [100, 150, 150, 250, 300, 400, 600]",
    "categories: [0, 0.0]}",
    "categories: [1, '2', 3, 4]",
    "kind: flag}",
    "bounds: [0.5, 20]",
    "",
    "index: nowhere",
    "event: age",
    "unit: days, colour: red}",
]


@pytest.mark.parametrize(("bad", "new"), list(zip(BAD, REPLACE, strict=True)))
def test_bad_yaml_names_file_and_field(tmp_path: Path, bad: tuple[str, str, str], new: str) -> None:
    old, element, message = bad
    assert old in EXAMPLE
    p = write(tmp_path, EXAMPLE.replace(old, new, 1))
    with pytest.raises(DomainError) as err:
        load_domain(p)
    e = err.value
    assert e.location.file == str(p)
    assert (e.location.element or "") == element
    assert message in e.message
    assert e.rule == "domain-schema"
    assert str(p) in str(e)


def test_yaml_booleans_are_not_categories(tmp_path: Path) -> None:
    p = write(tmp_path, EXAMPLE.replace("categories: [0, 1]}", "categories: [no, yes]}"))
    with pytest.raises(DomainError, match="booleans") as err:
        load_domain(p)
    assert err.value.location.element == "columns[2] (sex).categories"


def test_text_where_a_number_belongs(tmp_path: Path) -> None:
    p = write(tmp_path, EXAMPLE.replace("bounds: [18, 100]", "bounds: [low, 100]"))
    with pytest.raises(DomainError, match="expected a number, not 'low'") as err:
        load_domain(p)
    assert err.value.location.element == "columns[0] (age).bounds[0]"
    assert "more problem" not in err.value.message


def test_syntax_error_and_missing_file(tmp_path: Path) -> None:
    p = write(tmp_path, "cardiobox_domain: 1\ncolumns: [\n")
    with pytest.raises(DomainError, match="not valid YAML") as err:
        load_domain(p)
    assert err.value.location.file == str(p)
    with pytest.raises(DomainError, match="no such file"):
        load_domain(tmp_path / "nope.yaml")
    with pytest.raises(DomainError, match="cardiobox_domain"):
        load_domain(write(tmp_path, "name: x\n", "other.yaml"))


def test_rules_between_columns() -> None:
    def cols(*c: dict[str, object]) -> dict[str, object]:
        return {"name": "t", "columns": list(c)}

    with pytest.raises(ValueError, match="repeated names"):
        Domain.model_validate(
            cols({"name": "a", "kind": "boolean"}, {"name": "a", "kind": "boolean"})
        )
    with pytest.raises(ValueError, match="cycle"):
        Domain.model_validate(
            cols(
                {"name": "a", "kind": "date", "index": "b", "bounds": [0, 1]},
                {"name": "b", "kind": "date", "index": "a", "bounds": [0, 1]},
            )
        )
    with pytest.raises(ValueError, match=r"duration .* cannot be negative"):
        Domain.model_validate(
            cols(
                {"name": "e", "kind": "boolean"},
                {"name": "d", "kind": "numeric", "bounds": [-1, 10], "event": "e"},
            )
        )
    with pytest.raises(ValueError, match="dtype: int64 cannot hold"):
        Domain.model_validate(
            cols({"name": "c", "kind": "categorical", "categories": [1, 1.5], "dtype": "int64"})
        )
    with pytest.raises(ValueError, match="bins: not allowed for kind categorical"):
        Domain.model_validate(
            cols({"name": "c", "kind": "categorical", "categories": [1], "bins": 3})
        )
    with pytest.raises(ValueError, match="holds no whole number"):
        Domain.model_validate(cols({"name": "n", "kind": "integer", "edges": [0, 0.2, 0.6, 3]}))

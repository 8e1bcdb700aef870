"""The where filter: grammar, checks, SQL compilation and hostile input."""

from __future__ import annotations

import random
from datetime import date, datetime
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from cardiobox.errors import CardioboxError
from cardiobox.federated.where import (
    And,
    Between,
    Column,
    Comparison,
    Expr,
    InList,
    IsNull,
    Literal,
    Not,
    Operand,
    Or,
    Truth,
    WhereError,
    check_columns,
    columns,
    evaluate,
    parse_where,
    to_sql,
)

A, B, C = Column("a"), Column("b"), Column("c")


def cmp(name: str, op: str, value: bool | int | float | str) -> Comparison:
    return Comparison(Column(name), op, Literal(value))


# --- grammar ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("age = 3", cmp("age", "=", 3)),
        ("age != 3", cmp("age", "<>", 3)),
        ("age <> 3", cmp("age", "<>", 3)),
        ("age < 3", cmp("age", "<", 3)),
        ("age <= 3", cmp("age", "<=", 3)),
        ("age > 3", cmp("age", ">", 3)),
        ("age >= 3", cmp("age", ">=", 3)),
        ("age>=3", cmp("age", ">=", 3)),
        ("3 < age", Comparison(Literal(3), "<", Column("age"))),
        ("a = b", Comparison(A, "=", B)),
        ("a IN (1, 2, 3)", InList(A, (Literal(1), Literal(2), Literal(3)))),
        ("a NOT IN ('x')", InList(A, (Literal("x"),), negated=True)),
        ("a BETWEEN 1 AND 2", Between(A, Literal(1), Literal(2))),
        ("a NOT BETWEEN b AND 2", Between(A, B, Literal(2), negated=True)),
        ("a IS NULL", IsNull(A)),
        ("a IS NOT NULL", IsNull(A, negated=True)),
        ("a", Truth(A)),
        ("TRUE", Truth(Literal(True))),
        ("NOT a", Not(Truth(A))),
        ("a = TRUE", cmp("a", "=", True)),
        ("a = FALSE", cmp("a", "=", False)),
        ("_x9 = 1", cmp("_x9", "=", 1)),
    ],
)
def test_grammar_features(text: str, expected: Expr) -> None:
    assert parse_where(text) == expected


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("3", 3),
        ("-3", -3),
        ("2.5", 2.5),
        ("-2.5", -2.5),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1.", 1.0),
        ("1e3", 1000.0),
        ("25E-1", 2.5),
        ("1.5e+2", 150.0),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("'abc'", "abc"),
        ("'O''Neil'", "O'Neil"),
        ("''", ""),
        ("''''", "'"),
        ("'a -- b; /* c */'", "a -- b; /* c */"),
        ("'line\nbreak'", "line\nbreak"),
        ("'ünïcødé'", "ünïcødé"),
    ],
)
def test_literals(literal: str, value: int | float | str) -> None:
    expr = parse_where(f"x = {literal}")
    assert isinstance(expr, Comparison) and isinstance(expr.right, Literal)
    assert expr.right.value == value
    assert type(expr.right.value) is type(value)


def test_minus_is_a_sign_only_where_an_operand_is_expected() -> None:
    assert parse_where("x>-3") == cmp("x", ">", -3)
    assert parse_where("x IN (-1,-2)") == InList(Column("x"), (Literal(-1), Literal(-2)))
    assert parse_where("x BETWEEN -2 AND -1") == Between(Column("x"), Literal(-2), Literal(-1))


def test_boolean_literal_is_not_equal_to_number() -> None:
    assert Literal(True) != Literal(1)
    assert Literal(1) == Literal(1.0)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('"my column" = 1', "my column"),
        ('"a""b" = 1', 'a"b'),
        ('"select" = 1', "select"),
        ('"AND" = 1', "AND"),
        ('"Größe" = 1', "Größe"),
        ('"a?b" = 1', "a?b"),
    ],
)
def test_quoted_identifiers(text: str, name: str) -> None:
    assert parse_where(text) == cmp(name, "=", 1)


def test_precedence_not_and_or() -> None:
    a, b, c = (Truth(x) for x in (A, B, C))
    assert parse_where("a OR b AND c") == Or((a, And((b, c))))
    assert parse_where("a AND b OR c") == Or((And((a, b)), c))
    assert parse_where("NOT a AND b") == And((Not(a), b))
    assert parse_where("NOT a OR b") == Or((Not(a), b))
    assert parse_where("NOT (a OR b)") == Not(Or((a, b)))
    assert parse_where("(a OR b) AND c") == And((Or((a, b)), c))
    assert parse_where("NOT NOT a") == Not(Not(a))
    assert parse_where("NOT a = 1") == Not(cmp("a", "=", 1))
    # Chains are one node; explicit parentheses keep their structure.
    assert parse_where("a AND b AND c") == And((a, b, c))
    assert parse_where("a AND (b AND c)") == And((a, And((b, c))))
    assert parse_where("((a))") == a
    # BETWEEN takes the next AND as its own.
    assert parse_where("a BETWEEN 1 AND 2 AND b") == And((Between(A, Literal(1), Literal(2)), b))


def test_keywords_are_case_insensitive_and_whitespace_free_form() -> None:
    upper = parse_where("x IN (1) AND y IS NOT NULL OR NOT z BETWEEN 1 AND 2 AND w = TRUE")
    lower = parse_where("x in (1) and y is not null or not z between 1 and 2 and w = true")
    mixed = parse_where("x In (1)\n\tAnD y Is NoT nUlL\r\nOr NoT z BeTwEeN 1 aNd 2 AND w=True")
    assert upper == lower == mixed
    assert parse_where("a NOT in (1)") == parse_where("a not IN (1)")
    assert parse_where("a = false") == cmp("a", "=", False)


def test_column_names_keep_their_case() -> None:
    assert columns(parse_where("Age > 1 AND age < 3")) == {"Age", "age"}


def test_positions_are_recorded_but_not_compared() -> None:
    expr = parse_where("  age = 'x'")
    assert isinstance(expr, Comparison)
    assert expr.left.position == 3 and expr.right.position == 9
    assert expr == parse_where("age='x'")


# --- columns, check_columns --------------------------------------------------------------------


def test_columns() -> None:
    expr = parse_where(
        '(a = 1 OR NOT b IN (2)) AND c BETWEEN d AND 3 AND e IS NULL AND f AND "g h" < 1'
    )
    assert columns(expr) == {"a", "b", "c", "d", "e", "f", "g h"}
    assert columns(parse_where("1 = 1")) == set()


FAMILIES = {"age": "number", "sex": "string", "smoker": "boolean", "admitted": "date"}


@pytest.mark.parametrize(
    "text",
    [
        "age >= 18 AND sex = 'female' AND smoker AND admitted > '2020-01-31'",
        "admitted BETWEEN '2020-01-01' AND '2020-12-31'",
        "'2020-01-01' < admitted",
        "smoker = FALSE OR age IN (1, 2.5) OR sex NOT IN ('a', 'b')",
        "age IS NULL OR sex IS NOT NULL OR smoker IS NULL OR admitted IS NULL",
        "age BETWEEN age AND 3",
    ],
)
def test_check_columns_accepts(text: str) -> None:
    check_columns(parse_where(text), FAMILIES)


def test_check_columns_unknown_column_with_suggestion() -> None:
    with pytest.raises(WhereError) as caught:
        check_columns(parse_where("agee > 3"), FAMILIES)
    assert caught.value.rule == "where-column"
    assert caught.value.position == 1
    assert "unknown column 'agee' at position 1 (did you mean 'age'?)" in str(caught.value)


def test_check_columns_reports_every_unknown_column_once() -> None:
    with pytest.raises(WhereError) as caught:
        check_columns(parse_where("SEX = 'f' AND zzz = 1 AND zzz = 2 AND age = 1"), FAMILIES)
    message = str(caught.value)
    assert "unknown columns 'SEX' at position 1 (did you mean 'sex'?)" in message
    assert "'zzz' at position 15" in message
    assert message.count("zzz") == 1
    assert "did you mean" not in message.split("zzz")[1]


def test_hostile_quoted_identifier_is_safely_quoted_and_unknown() -> None:
    expr = parse_where('"a"" OR 1=1 --" = 1')
    assert columns(expr) == {'a" OR 1=1 --'}
    assert to_sql(expr) == ('("a"" OR 1=1 --" = ?)', [1])
    with pytest.raises(WhereError, match=r"unknown column 'a\" OR 1=1 --'"):
        check_columns(expr, FAMILIES)
    # If the site really has such a column, the filter reads it as a column, nothing more.
    table = pa.table({'a" OR 1=1 --': [1, 2, None]})
    assert evaluate(expr, table).to_pylist() == [True, False, False]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("age = 'old'", "cannot compare column 'age' (number) with string 'old' at position 7"),
        ("sex = 3", "cannot compare column 'sex' (string) with number 3"),
        ("smoker = 1", "cannot compare column 'smoker' (boolean) with number 1"),
        ("age = TRUE", "cannot compare column 'age' (number) with boolean TRUE"),
        ("admitted > 20200101", "cannot compare column 'admitted' (date) with number 20200101"),
        ("admitted > '2020-13-01'", "string '2020-13-01' at position 12 is compared with"),
        ("admitted > '01/02/2020'", "is not a date written 'YYYY-MM-DD'"),
        ("admitted = sex", "cannot compare column 'admitted' (date) with column 'sex' (string)"),
        ("age IN ('x', 'y')", "cannot compare column 'age' (number) with string 'x' at position 9"),
        ("age BETWEEN 1 AND 'x'", "with string 'x'"),
        ("sex BETWEEN 'a' AND age", "cannot compare column 'sex' (string) with column 'age'"),
        ("age", "column 'age' (number) at position 1 is used as a condition but is not boolean"),
        ("NOT sex", "column 'sex' (string) at position 5 is used as a condition"),
    ],
)
def test_check_columns_type_mismatch(text: str, fragment: str) -> None:
    with pytest.raises(WhereError) as caught:
        check_columns(parse_where(text), FAMILIES)
    assert caught.value.rule == "where-type"
    assert fragment in str(caught.value)


def test_check_columns_reports_every_mismatch() -> None:
    with pytest.raises(WhereError) as caught:
        check_columns(parse_where("age = 'a' OR sex = 1"), FAMILIES)
    assert "string 'a'" in str(caught.value) and "number 1" in str(caught.value)


def test_check_columns_rejects_unknown_family() -> None:
    with pytest.raises(ValueError, match="available: column 'age' has type family 'int'"):
        check_columns(parse_where("age = 1"), {"age": "int"})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1 = 'a'", "cannot compare number 1 with string 'a' at position 5"),
        ("TRUE = 1", "cannot compare boolean TRUE with number 1"),
        ("x IN (1, 'a')", "cannot compare number 1 with string 'a' at position 10"),
        ("x BETWEEN 1 AND 'a'", "cannot compare number 1 with string 'a' at position 17"),
        ("3", "expected a comparison operator"),
        ("'yes'", "expected a comparison operator"),
    ],
)
def test_literal_type_errors_are_caught_by_the_parser(text: str, fragment: str) -> None:
    with pytest.raises(WhereError) as caught:
        parse_where(text)
    assert fragment in str(caught.value)


# --- to_sql ----------------------------------------------------------------------------------


def test_to_sql_quotes_identifiers_and_binds_literals() -> None:
    expr = parse_where(
        "age >= 65 AND (sex IN ('f', 'o''neil') OR \"weird \"\"name\" IS NOT NULL) "
        "AND NOT smoker AND bmi NOT BETWEEN 18.5 AND 25 AND flag = TRUE"
    )
    sql, params = to_sql(expr)
    assert sql == (
        '(("age" >= ?) AND (("sex" IN (?, ?)) OR ("weird ""name" IS NOT NULL)) '
        'AND (NOT ("smoker")) AND ("bmi" NOT BETWEEN ? AND ?) AND ("flag" = ?))'
    )
    assert params == [65, "f", "o'neil", 18.5, 25, True]
    assert "'" not in sql  # no literal text reaches the SQL


def test_to_sql_normalises_not_equal() -> None:
    assert to_sql(parse_where("a != 1")) == ('("a" <> ?)', [1])


# --- evaluate (DuckDB) -----------------------------------------------------------------------

PATIENTS = pa.table(
    {
        "age": pa.array([70, 40, None, 65, 18], pa.int64()),
        "sex": ["female", "male", "female", None, "o'neil"],
        "smoker": [True, False, None, False, True],
        "admitted": pa.array(
            [date(2020, 1, 1), date(2021, 6, 15), None, date(2019, 12, 31), date(2022, 3, 1)],
            pa.date32(),
        ),
        "bmi": [31.5, 22.0, 27.0, None, 19.5],
    }
)


@pytest.mark.parametrize(
    ("text", "mask"),
    [
        ("age >= 65", [1, 0, 0, 1, 0]),
        ("age < 65", [0, 1, 0, 0, 1]),
        ("NOT age >= 65", [0, 1, 0, 0, 1]),
        ("age = 70.0", [1, 0, 0, 0, 0]),
        ("age < 40.5", [0, 1, 0, 0, 1]),
        ("age IS NULL", [0, 0, 1, 0, 0]),
        ("age IS NOT NULL", [1, 1, 0, 1, 1]),
        ("sex = 'female' OR smoker", [1, 0, 1, 0, 1]),
        ("sex NOT IN ('male', 'female')", [0, 0, 0, 0, 1]),
        ("sex IN ('male', 'o''neil')", [0, 1, 0, 0, 1]),
        ("sex <> 'female'", [0, 1, 0, 0, 1]),
        ("admitted BETWEEN '2020-01-01' AND '2021-12-31'", [1, 1, 0, 0, 0]),
        ("admitted > '2020-06-01' AND bmi < 25", [0, 1, 0, 0, 1]),
        ("age NOT BETWEEN 18 AND 65", [1, 0, 0, 0, 0]),
        ("NOT smoker", [0, 1, 0, 1, 0]),
        ("smoker = FALSE", [0, 1, 0, 1, 0]),
        ("age > 60 AND (smoker OR bmi > 30)", [1, 0, 0, 0, 0]),
        ("NOT (age > 60 AND bmi > 30)", [0, 1, 1, 0, 1]),
        ("age > 60 OR bmi > 30", [1, 0, 0, 1, 0]),
        ("age BETWEEN bmi AND 100", [1, 1, 0, 0, 0]),
        ("TRUE", [1, 1, 1, 1, 1]),
        ("FALSE", [0, 0, 0, 0, 0]),
        ("1 = 1", [1, 1, 1, 1, 1]),
    ],
)
def test_evaluate_matches_hand_computed_masks(text: str, mask: list[int]) -> None:
    result = evaluate(parse_where(text), PATIENTS)
    assert isinstance(result, pa.BooleanArray)
    assert result.null_count == 0
    assert result.to_pylist() == [bool(m) for m in mask]


def test_evaluate_empty_table() -> None:
    assert evaluate(parse_where("age > 1"), PATIENTS.slice(0, 0)).to_pylist() == []


def test_evaluate_odd_column_names() -> None:
    table = pa.table({"a?b": [1, 2], 'c"d': ["x", "y"], "select": [True, False]})
    expr = parse_where('"a?b" = 2 OR "c""d" = \'x\' AND "select"')
    assert evaluate(expr, table).to_pylist() == [True, True]


def test_evaluate_maps_arrow_types_to_families() -> None:
    table = pa.table(
        {
            "ts": pa.array(
                [datetime(2020, 1, 1, 12), datetime(2019, 12, 31, 23)], pa.timestamp("us")
            ),
            "code": pa.array(["a", "b"]).dictionary_encode(),
            "dose": pa.array([Decimal("1.25"), Decimal("2.00")], pa.decimal128(5, 2)),
            "n": pa.array([1, 2], pa.int8()),
        }
    )
    expr = parse_where("ts >= '2020-01-01' AND code IN ('a', 'b') AND dose < 1.5 AND n = 1.0")
    assert evaluate(expr, table).to_pylist() == [True, False]


def test_evaluate_checks_columns_against_the_table() -> None:
    with pytest.raises(WhereError, match=r"unknown column 'agee' .*did you mean 'age'"):
        evaluate(parse_where("agee > 1"), PATIENTS)
    with pytest.raises(WhereError, match="cannot compare column 'age' \\(number\\)"):
        evaluate(parse_where("age > 'x'"), PATIENTS)
    nested = pa.table({"codes": [[1], [2]], "n": [1, 2]})
    with pytest.raises(WhereError, match="column 'codes' has type list<item: int64>"):
        evaluate(parse_where("codes IS NULL"), nested)
    # A column of an unusable type that the filter does not read is no problem.
    assert evaluate(parse_where("n = 2"), nested).to_pylist() == [False, True]


# --- hostile and malformed input ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("1=1; DROP TABLE x", 4, "semicolons are not allowed"),
        ("age > 1 --", 9, "comments are not allowed"),
        ("age > 1 -- comment", 9, "comments are not allowed"),
        ("age > 1 /* x */", 9, "comments are not allowed"),
        ("age > (SELECT 1)", 7, "subqueries"),
        ("(SELECT 1) = 1", 2, "subqueries"),
        ("x IN (SELECT id FROM y)", 7, "subqueries"),
        ("EXISTS (SELECT 1)", 1, "subqueries"),
        ("1 = 1 UNION SELECT id FROM t", 7, "subqueries"),
        ("lower(name) = 'a'", 6, "function calls are not allowed"),
        ("\"lower\"(name) = 'a'", 8, "function calls are not allowed"),
        ("age > abs(3)", 10, "function calls are not allowed"),
        ("age + 1 > 3", 5, "arithmetic is not allowed"),
        ("age > 3 * 2", 9, "arithmetic is not allowed"),
        ("age-1 > 3", 4, "arithmetic is not allowed"),
        ("age > - 3", 7, "arithmetic is not allowed"),
        ("x = 'a' || 'b'", 9, "operators other than comparisons"),
        ("CAST(x AS INT) = 1", 1, "only comparisons"),
        ("name LIKE 'a%'", 6, "pattern matching"),
        ("dt > DATE '2020-01-01'", 11, "typed literals"),
        ("a.b = 1", 2, "qualified names"),
        ("x = ?", 5, "parameters are not allowed"),
        ("x = $1", 5, "parameters are not allowed"),
        ("`x` = 1", 1, "double quotes"),
        ("é = 1", 1, "double quotes"),
        ("name = 'abc", 8, "unterminated string"),
        ("name = 'it''s", 12, "unterminated string"),  # 'it' then 's
        ('"abc = 1', 1, "unterminated quoted column name"),
        ('"" = 1', 1, "empty quoted column name"),
        ("x IN ()", 7, "IN needs at least one"),
        ("x IN (1,)", 9, "expected a literal value"),
        ("x IN (1 2)", 9, "expected ',' or ')'"),
        ("x IN 1", 6, "expected '(' after IN"),
        ("x IN (y)", 7, "only literal values"),
        ("x = NULL", 5, "NULL is only allowed in IS NULL"),
        ("x IN (NULL)", 7, "NULL is only allowed in IS NULL"),
        ("x IS 3", 6, "expected NULL or NOT NULL"),
        ("x NOT = 3", 7, "expected IN or BETWEEN after NOT"),
        ("x BETWEEN 1 OR 2", 13, "expected AND between the bounds"),
        ("x = 1 OR", 9, "expected a column name or a literal value"),
        ("(x = 1", 7, "expected AND, OR or ')'"),
        ("x = 1)", 6, "expected AND, OR or end of input"),
        ("x == 1", 4, "expected a column name or a literal value"),
        ("a b", 3, "expected a comparison operator"),
        ("x = 3abc", 5, "malformed number"),
        ("x = 1.2.3", 5, "malformed number"),
        ("x = 1e999", 5, "out of range"),
        ("x = 99999999999999999999", 5, "out of range"),
        ("x = 'a\x00'", 7, "control character U+0000"),
        ("x = 1 AND", 10, "expected a column name or a literal value"),
    ],
)
def test_hostile_and_malformed_input_is_rejected(text: str, position: int, fragment: str) -> None:
    with pytest.raises(WhereError) as caught:
        parse_where(text)
    assert caught.value.position == position
    message = str(caught.value)
    assert fragment in message
    assert f"at position {position}" in message
    assert message.startswith("where: [where-")


def test_error_message_shape() -> None:
    with pytest.raises(WhereError) as caught:
        parse_where("age > abs(3)")
    assert str(caught.value) == (
        "where: [where-syntax] unexpected '(' at position 10 "
        "(function calls are not allowed): age > abs(3)"
    )
    assert isinstance(caught.value, CardioboxError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_input(text: str) -> None:
    with pytest.raises(WhereError, match="empty filter"):
        parse_where(text)


def test_not_a_string() -> None:
    with pytest.raises(WhereError, match="must be a string, got int"):
        parse_where(3)  # type: ignore[arg-type]


def test_overlong_input() -> None:
    text = "a = 1 OR " * 300 + "a = 1"
    with pytest.raises(WhereError) as caught:
        parse_where(text)
    assert caught.value.rule == "where-limit"
    assert "more than max_length=2000" in str(caught.value)
    assert len(str(caught.value)) < 300  # the text is quoted in part only
    parse_where(text, max_length=len(text), max_terms=301)


def test_long_input_is_quoted_around_the_error() -> None:
    text = "a = 1 OR " * 100 + "a = abs(1) OR " + "a = 1 OR " * 100 + "a = 1"
    with pytest.raises(WhereError) as caught:
        parse_where(text)
    message = str(caught.value)
    assert "a = abs(1)" in message and "..." in message and len(message) < 300


def test_too_many_terms() -> None:
    text = " OR ".join(["a = 1"] * 201)
    with pytest.raises(WhereError, match="more than max_terms=200") as caught:
        parse_where(text, max_length=10_000)
    assert caught.value.rule == "where-limit"
    parse_where(" OR ".join(["a = 1"] * 200), max_length=10_000)


@pytest.mark.parametrize(
    "text",
    ["(" * 51 + "a" + ")" * 51, "NOT " * 51 + "a", "(NOT " * 26 + "a" + ")" * 26],
)
def test_deep_nesting_is_refused(text: str) -> None:
    with pytest.raises(WhereError, match="more than max_depth=50") as caught:
        parse_where(text)
    assert caught.value.rule == "where-limit"


def test_nesting_up_to_the_limit_is_fine() -> None:
    assert parse_where("(" * 50 + "a" + ")" * 50) == Truth(A)
    assert parse_where("NOT " * 50 + "a", max_depth=50) is not None


@pytest.mark.parametrize("text", ["(" * 20_000 + "a" + ")" * 20_000, "NOT " * 20_000 + "a"])
def test_no_recursion_error_escapes_even_with_huge_limits(text: str) -> None:
    with pytest.raises(WhereError) as caught:
        parse_where(text, max_length=10**6, max_depth=10**6)
    assert caught.value.rule == "where-limit"


# --- property: random well-formed filters, DuckDB against a three-valued reference ------------

NUMBER_LITERALS = [
    ("3", 3),
    ("-2", -2),
    ("0", 0),
    ("2.5", 2.5),
    ("1e0", 1.0),
    ("-.5", -0.5),
    ("25E-1", 2.5),
    ("1.", 1.0),
]
STRING_LITERALS = [("'a'", "a"), ("'o''neil'", "o'neil"), ("''", ""), ("'B'", "B"), ("'zz'", "zz")]
BOOLEAN_LITERALS = [("TRUE", True), ("false", False)]
LITERALS: dict[str, list[tuple[str, bool | int | float | str]]] = {
    "number": list(NUMBER_LITERALS),
    "string": list(STRING_LITERALS),
    "boolean": list(BOOLEAN_LITERALS),
}
COLUMNS = {"number": ["x", "y"], "string": ["s"], "boolean": ["b"]}
OPERATORS = {"=": "=", "!=": "<>", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def random_table(rng: random.Random, n: int = 40) -> pa.Table:
    def pick(values: list[object]) -> list[object]:
        return [rng.choice([*values, None]) for _ in range(n)]

    return pa.table(
        {
            "x": pa.array(pick([-2, -1, 0, 1, 2, 3]), pa.int64()),
            "y": pa.array(pick([-1.5, -0.5, 0.0, 1.0, 2.5, 3.0]), pa.float64()),
            "s": pa.array(pick(["a", "B", "", "o'neil", "zz", "b"]), pa.string()),
            "b": pa.array(pick([True, False]), pa.bool_()),
        }
    )


class Generator:
    """Random well-formed filters as (text, expected syntax tree)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def keyword(self, word: str) -> str:
        return self.rng.choice([word, word.lower(), word.capitalize()])

    def operand(self, family: str, allow_column: bool = True) -> tuple[str, Operand]:
        if allow_column and self.rng.random() < 0.5:
            name = self.rng.choice(COLUMNS[family])
            return (f'"{name}"' if self.rng.random() < 0.3 else name), Column(name)
        text, value = self.rng.choice(LITERALS[family])
        if family == "boolean":
            text = self.keyword(text.upper())
        return text, Literal(value)

    def predicate(self) -> tuple[str, Expr]:
        family = self.rng.choice(["number", "number", "string", "boolean"])
        kind = self.rng.choice(["compare", "compare", "in", "between", "null", "truth"])
        column_name = self.rng.choice(COLUMNS[family])
        column = Column(column_name)
        k = self.keyword
        if kind == "compare":
            (lt, left), (rt, right) = self.operand(family), self.operand(family)
            written = self.rng.choice(list(OPERATORS))
            return f"{lt} {written} {rt}", Comparison(left, OPERATORS[written], right)
        if kind == "in":
            items = [
                self.operand(family, allow_column=False) for _ in range(self.rng.randint(1, 3))
            ]
            negated = self.rng.random() < 0.5
            keyword = k("NOT") + " " + k("IN") if negated else k("IN")
            text = f"{column_name} {keyword} (" + ", ".join(t for t, _ in items) + ")"
            values = tuple(v for _, v in items if isinstance(v, Literal))
            return text, InList(column, values, negated)
        if kind == "between":
            (lt, low), (ht, high) = self.operand(family), self.operand(family)
            negated = self.rng.random() < 0.5
            keyword = k("NOT") + " " + k("BETWEEN") if negated else k("BETWEEN")
            return f"{column_name} {keyword} {lt} {k('AND')} {ht}", Between(
                column, low, high, negated
            )
        if kind == "null":
            negated = self.rng.random() < 0.5
            middle = f"{k('IS')} {k('NOT')} {k('NULL')}" if negated else f"{k('IS')} {k('NULL')}"
            return f"{column_name} {middle}", IsNull(column, negated)
        text, operand = self.operand("boolean")
        return text, Truth(operand)

    def expr(self, depth: int) -> tuple[str, Expr]:
        draw = self.rng.random()
        if depth == 0 or draw < 0.35:
            return self.predicate()
        if draw < 0.55:
            text, child = self.expr(depth - 1)
            if isinstance(child, And | Or) or self.rng.random() < 0.2:
                text = f"({text})"
            return f"{self.keyword('NOT')} {text}", Not(child)
        node_type = And if draw < 0.8 else Or
        parts = [self.expr(depth - 1) for _ in range(self.rng.randint(2, 3))]
        texts = []
        for text, child in parts:
            # Parentheses where precedence needs them (or a same-kind chain would merge),
            # and sometimes where it does not.
            needed = isinstance(child, node_type) or (node_type is And and isinstance(child, Or))
            texts.append(f"({text})" if needed or self.rng.random() < 0.15 else text)
        joined = f" {self.keyword('AND' if node_type is And else 'OR')} ".join(texts)
        return joined, node_type(tuple(child for _, child in parts))


def reference(node: Expr, row: dict[str, object]) -> bool | None:
    """SQL's three-valued logic, by hand (None is NULL / unknown)."""

    def value(operand: Operand) -> object:
        return row[operand.name] if isinstance(operand, Column) else operand.value

    def compare(a: object, op: str, b: object) -> bool | None:
        if a is None or b is None:
            return None
        results = {"=": a == b, "<>": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}  # type: ignore[operator]
        return bool(results[op])

    def negate(v: bool | None) -> bool | None:
        return None if v is None else not v

    def both(values: list[bool | None]) -> bool | None:
        if False in values:
            return False
        return None if None in values else True

    def either(values: list[bool | None]) -> bool | None:
        if True in values:
            return True
        return None if None in values else False

    if isinstance(node, Comparison):
        return compare(value(node.left), node.op, value(node.right))
    if isinstance(node, InList):
        found = either([compare(value(node.operand), "=", v.value) for v in node.values])
        return negate(found) if node.negated else found
    if isinstance(node, Between):
        v = value(node.operand)
        inside = both([compare(value(node.low), "<=", v), compare(v, "<=", value(node.high))])
        return negate(inside) if node.negated else inside
    if isinstance(node, IsNull):
        return (value(node.operand) is not None) if node.negated else value(node.operand) is None
    if isinstance(node, Truth):
        result = value(node.operand)
        assert result is None or isinstance(result, bool)
        return result
    if isinstance(node, Not):
        return negate(reference(node.operand, row))
    if isinstance(node, And):
        return both([reference(child, row) for child in node.operands])
    return either([reference(child, row) for child in node.operands])


def test_random_filters_match_three_valued_reference() -> None:
    generator = Generator(seed=20240611)
    table = random_table(random.Random(7))
    rows = table.to_pylist()
    families = {"x": "number", "y": "number", "s": "string", "b": "boolean"}
    kinds: set[type] = set()
    con = duckdb.connect()  # one connection: opening one per filter would dominate the time
    for _ in range(250):
        text, expected = generator.expr(depth=4)
        parsed = parse_where(text)
        assert parsed == expected, text
        check_columns(parsed, families)
        got = evaluate(parsed, table, con).to_pylist()
        want = [reference(parsed, row) is True for row in rows]
        assert got == want, text
        kinds.add(type(parsed))
    assert kinds >= {And, Or, Not, Comparison}
    assert con.sql(
        "SELECT count(*) FROM duckdb_tables() UNION ALL "
        "SELECT count(*) FROM duckdb_views() WHERE NOT internal"
    ).fetchall() == [(0,), (0,)]

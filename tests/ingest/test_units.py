"""Unit conversion for ingestion (cardiobox.ingest.units)."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pytest

from cardiobox.cdm import load_dictionary
from cardiobox.errors import InputError
from cardiobox.ingest import units
from cardiobox.ingest.units import (
    Conversion,
    case_sql,
    conversion,
    conversion_table,
    fold_unit,
    fold_unit_sql,
    generic_conversion,
    known_units,
    normalise_unit,
    render_markdown,
    unit_code_sql,
    unit_known_sql,
)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "units.md"

QUANTITIES = [v for v in load_dictionary() if v.value_type == "quantity"]
QUANTITY_IDS = [v.id for v in QUANTITIES]


def _all_spellings() -> list[str]:
    """Every UCUM code, listed alias and contextual spelling of the table."""
    table = units._table()
    out = list(table.units)
    for names in table.aliases.values():
        out.extend(names)
    out.extend(table.contextual)
    return out


# ----------------------------------------------------------------------------------------
# Textbook values
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "unit", "expected", "rel"),
    [
        # Creatinine 1.0 mg/dL = 88.4 umol/L (KDIGO; some tables print 88.42).
        ("creatinine", 1.0, "mg/dL", 88.40, 1e-4),
        ("creatinine", 1.0, "mg/dL", 88.42, 5e-4),
        ("creatinine", 0.5, "mg/L", 4.420, 1e-3),  # French labs report mg/L
        ("urine_creatinine", 100.0, "mg/dL", 8.840, 1e-3),
        # Cholesterol 200 mg/dL = 5.17 mmol/L; 2.00 g/L (French) too.
        ("total_cholesterol", 200.0, "mg/dL", 5.17, 1e-3),
        ("ldl_cholesterol", 2.0, "g/L", 5.17, 1e-3),
        ("hdl_cholesterol", 40.0, "mg/dL", 1.0345, 1e-4),
        # Triglycerides 150 mg/dL = 1.69 mmol/L.
        ("triglycerides", 150.0, "mg/dL", 1.694, 1e-3),
        # Urea 60.06 mg/dL = 10 mmol/L; BUN 28 mg/dL = 10 mmol/L urea.
        ("urea", 60.06, "mg/dL", 10.0, 1e-9),
        ("urea_nitrogen", 28.014, "mg/dL", 10.0, 1e-9),
        ("urea_nitrogen", 20.0, "mg/dL", 7.14, 1e-3),
        # Haemoglobin 14 g/dL = 140 g/L = 8.69 mmol/L.
        ("hemoglobin", 140.0, "g/L", 14.0, 1e-12),
        ("hemoglobin", 8.69, "mmol/L", 14.0, 1e-3),
        ("hemoglobin", 14.0, "g%", 14.0, 0.0),
        # Bilirubin 1 mg/dL = 17.1 umol/L.
        ("bilirubin", 1.0, "mg/dL", 17.10, 1e-3),
        # NT-proBNP 100 pmol/L = 845.7 pg/mL; BNP 100 pg/mL = 28.9 pmol/L.
        ("nt_probnp", 100.0, "pmol/L", 845.7, 1e-9),
        ("nt_probnp", 0.4, "ng/mL", 400.0, 1e-12),
        ("bnp", 28.87, "pmol/L", 100.0, 1e-3),
        # Troponin ng/mL -> ng/L x 1000; ferritin ng/mL = ug/L; CRP mg/dL -> mg/L x 10.
        ("hs_troponin_t", 0.014, "ng/mL", 14.0, 1e-12),
        ("troponin_i", 0.04, "ug/L", 40.0, 1e-12),
        ("ferritin", 100.0, "ng/mL", 100.0, 1e-12),
        ("crp", 1.2, "mg/dL", 12.0, 1e-12),
        ("hs_crp", 3.0, "mg/l", 3.0, 0.0),
        # Albumin 4.0 g/dL = 40 g/L.
        ("albumin", 4.0, "g/dL", 40.0, 1e-12),
        # Monovalent ions: meq/L = mmol/L.
        ("potassium", 4.2, "mEq/L", 4.2, 0.0),
        ("sodium", 140.0, "mEq/l", 140.0, 0.0),
        # Urine albumin/creatinine: 30 mg/g = 3.39 mg/mmol (KDIGO rounds to 3).
        ("albumin_creatinine_ratio", 30.0, "mg/g", 3.394, 1e-3),
        ("protein_creatinine_ratio", 0.5, "g/g", 56.56, 1e-3),
        # HbA1c 6.5 % (NGSP) = 48 mmol/mol (IFCC); 53 mmol/mol = 7.0 %.
        ("hba1c_ifcc", 6.5, "%", 47.54, 1e-3),
        ("hba1c", 53.0, "mmol/mol", 7.0, 3e-3),
        ("hba1c", 0.065, "1", 6.5, 1e-12),
        # Temperature: 98.6 degF = 37 Cel; 310.15 K = 37 Cel.
        ("body_temperature", 98.6, "°F", 37.0, 1e-12),
        ("body_temperature", 32.0, "F", 0.0, 0.0),
        ("body_temperature", 310.15, "K", 37.0, 1e-12),
        # Weight and height: 150 lb = 68.04 kg; 5 ft = 152.4 cm; 70 in = 177.8 cm.
        ("body_weight", 150.0, "lbs", 68.0389, 1e-5),
        ("body_weight", 11.0, "stone", 69.853, 1e-4),
        ("body_height", 70.0, "in", 177.8, 1e-12),
        ("body_height", 5.0, "ft", 152.4, 1e-12),
        ("body_height", 1.75, "m", 175.0, 1e-12),
        # BMI 25 kg/m2 = 0.03556 lb/in2 (x 703.07).
        ("bmi", 25.0 / 703.0696, "lb/in2", 25.0, 1e-6),
        # Pressure: 16 kPa = 120 mmHg; 10 cmH2O = 7.36 mmHg.
        ("systolic_bp", 16.0, "kPa", 120.0, 1e-3),
        ("central_venous_pressure", 10.0, "cmH2O", 7.356, 1e-3),
        # Rates, fractions, durations.
        ("heart_rate", 72.0, "bpm", 72.0, 0.0),
        ("heart_rate", 1.2, "/s", 72.0, 1e-12),
        ("lvef", 0.55, "1", 55.0, 1e-12),
        ("oxygen_saturation", 0.97, "{ratio}", 97.0, 1e-12),
        ("qtc", 0.44, "s", 440.0, 1e-12),
        ("length_of_stay", 36.0, "h", 1.5, 1e-12),
        ("age_at_index", 18.0, "mo", 1.5, 1e-12),
        # eGFR in mL/s/1.73 m2 (x 60); enzymes in ukat/L (x 60); platelets.
        ("egfr", 1.0, "mL/s/1.73 m2", 60.0, 1e-12),
        ("alt", 0.5, "µkat/L", 30.0, 1e-12),
        ("platelets", 250000.0, "/uL", 250.0, 1e-12),
        ("platelets", 250.0, "10^3/µL", 250.0, 0.0),
        ("platelets", 250.0, "G/L", 250.0, 0.0),
        ("peak_oxygen_consumption", 2.1, "L/min", 2100.0, 1e-12),
        ("lvedv_index", 0.07, "L/m2", 70.0, 1e-12),
    ],
)
def test_textbook_values(
    variable: str, value: float, unit: str, expected: float, rel: float
) -> None:
    if variable not in load_dictionary():
        pytest.skip(f"{variable} is not in the data dictionary")
    got = conversion(variable, unit).apply(value)
    assert got == pytest.approx(expected, rel=rel, abs=1e-12)


def test_rounded_textbook_values() -> None:
    assert round(conversion("hba1c_ifcc", "%").apply(6.5)) == 48
    assert round(conversion("hemoglobin", "g/dL", "mmol/L").apply(14.0), 2) == 8.69
    assert round(conversion("hemoglobin", "g/dL", "g/L").apply(14.0), 9) == 140.0
    assert round(conversion("total_cholesterol", "mg/dL").apply(200.0), 2) == 5.17
    assert round(conversion("body_weight", "[lb_av]").apply(150.0), 2) == 68.04
    assert round(conversion("body_temperature", "[degF]").apply(98.6), 9) == 37.0
    assert round(conversion("nt_probnp", "pmol/L").apply(100.0), 9) == 845.7
    assert round(conversion("creatinine", "umol/L", "mg/dL").apply(88.4), 3) == 1.0


def test_textbook_factors_in_the_data_file_agree_with_the_molar_masses() -> None:
    checked = 0
    for rel in units._table().relations:
        tb = rel.textbook
        assert tb is not None, f"relation for {rel.variables} has no textbook factor"
        for var in rel.variables:
            got = conversion(var, tb.from_unit, tb.to_unit).factor
            assert got == pytest.approx(tb.factor, rel=5e-4), (var, got, tb.factor)
            checked += 1
    assert checked >= 15


def test_molar_masses_are_the_agreed_ones() -> None:
    masses = {
        rel.variables[0]: float(rel.value)
        for rel in units._table().relations
        if rel.name in {"molar_mass", "denominator_molar_mass"} and rel.value is not None
    }
    assert masses["total_cholesterol"] == 386.65
    assert masses["triglycerides"] == 885.7
    assert masses["creatinine"] == 113.12
    assert masses["urea"] == 60.06
    assert masses["urea_nitrogen"] == 28.014
    assert masses["bilirubin"] == 584.66
    assert masses["hemoglobin"] == 16114.5
    assert masses["nt_probnp"] == 8457
    assert masses["albumin_creatinine_ratio"] == 113.12


# ----------------------------------------------------------------------------------------
# The whole table
# ----------------------------------------------------------------------------------------


def test_every_quantity_variable_knows_its_canonical_unit() -> None:
    identity_only = []
    for var in QUANTITIES:
        assert var.unit is not None
        known = known_units(var.id)
        assert known[0] == var.unit
        assert len(known) == len(set(known))
        ident = conversion(var.id, var.unit)
        assert (ident.factor, ident.offset, ident.basis) == (1.0, 0.0, "identity")
        assert ident.is_identity and ident.from_unit == ident.to_unit == var.unit
        if len(known) == 1:
            identity_only.append(var.id)
    # Only scores and angles have no other unit; nothing else may lose its conversions.
    expected = sorted(v.id for v in QUANTITIES if v.unit in {"{score}", "deg"})
    assert sorted(identity_only) == expected


@pytest.mark.parametrize("variable", QUANTITY_IDS)
def test_every_pair_round_trips(variable: str) -> None:
    known = known_units(variable)
    canonical = known[0]
    for a in known:
        to_canonical = conversion(variable, a)
        back = conversion(variable, canonical, a)
        for b in known:
            ab = conversion(variable, a, b)
            ba = conversion(variable, b, a)
            for x in (0.37, 1.0, 42.0, 1234.5):
                y = ab.apply(x)
                assert ba.apply(y) == pytest.approx(x, rel=1e-9, abs=1e-12), (a, b, x)
                # A -> B equals A -> canonical -> B.
                via = conversion(variable, canonical, b).apply(to_canonical.apply(x))
                assert y == pytest.approx(via, rel=1e-9, abs=1e-12), (a, b, x)
        assert back.apply(to_canonical.apply(5.5)) == pytest.approx(5.5, rel=1e-9)


def test_conversion_table_covers_every_variable_and_unit() -> None:
    table = conversion_table()
    assert len(table) == sum(len(known_units(v)) for v in QUANTITY_IDS)
    assert {c.variable_id for c in table} == set(QUANTITY_IDS)
    d = load_dictionary()
    for c in table:
        assert c.variable_id is not None
        assert c.to_unit == d[c.variable_id].unit
        assert c.basis
        assert math.isfinite(c.factor) and c.factor > 0
        assert math.isfinite(c.offset)
        if c.offset:
            assert c.variable_id in {"body_temperature", "hba1c", "hba1c_ifcc"}


def test_analyte_relations_name_quantity_variables_of_the_right_kind() -> None:
    d = load_dictionary()
    table = units._table()
    for rel in table.relations:
        for var in rel.variables:
            assert var in d, f"unit table names unknown variable {var}"
            assert d[var].value_type == "quantity"
            kinds = {table.units[rel.from_unit].kind, table.units[rel.to_unit].kind}
            assert table.units[d[var].unit or ""].kind in kinds, var


# ----------------------------------------------------------------------------------------
# Spellings
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "code"),
    [
        ("mg/dl", "mg/dL"),
        ("MG/DL", "mg/dL"),
        ("mg / dL", "mg/dL"),
        ("mg%", "mg/dL"),
        ("mmol/l", "mmol/L"),
        ("MMOL/L", "mmol/L"),
        ("µmol/L", "umol/L"),  # micro sign U+00B5
        ("μmol/L", "umol/L"),  # Greek small mu U+03BC
        ("ΜMOL/L", "umol/L"),  # Greek capital mu, from upper-casing
        ("umol/l", "umol/L"),
        ("mcg/L", "ug/L"),
        ("µg/l", "ug/L"),
        ("mEq/L", "meq/L"),
        ("mEq/l", "meq/L"),
        ("mval/l", "meq/L"),
        ("mmHg", "mm[Hg]"),
        ("mm Hg", "mm[Hg]"),
        ("cmH2O", "cm[H2O]"),
        ("bpm", "{beats}/min"),
        ("/min", "/min"),
        ("1/min", "/min"),
        ("°C", "Cel"),
        ("ºC", "Cel"),
        ("℃", "Cel"),
        ("C", "Cel"),
        ("Cel", "Cel"),
        ("°F", "[degF]"),
        ("F", "[degF]"),
        ("degF", "[degF]"),
        ("lbs", "[lb_av]"),
        ("lb", "[lb_av]"),
        ("kg", "kg"),
        ("KG", "kg"),
        ("kg/m2", "kg/m2"),
        ("kg/m²", "kg/m2"),
        ("kg/m^2", "kg/m2"),
        ("ml/min/1.73m2", "mL/min/{1.73_m2}"),
        ("mL/min/1.73 m²", "mL/min/{1.73_m2}"),
        ("ml/min/1,73m2", "mL/min/{1.73_m2}"),
        ("mL/min/{1.73_m2}", "mL/min/{1.73_m2}"),
        ("pg/ml", "pg/mL"),
        ("ng/l", "ng/L"),
        ("g/l", "g/L"),
        ("g/dl", "g/dL"),
        ("%", "%"),
        ("percent", "%"),
        ("IU/L", "U/L"),
        ("UI/L", "U/L"),
        ("µkat/L", "ukat/L"),
        ("x10^9/L", "10*9/L"),
        ("×10⁹/L", "10*9/L"),
        ("K/µL", "10*3/uL"),
        ("mmol/mol", "mmol/mol"),
        ("msec", "ms"),
        ("yrs", "a"),
        ("cm²", "cm2"),
        ("uM", "umol/L"),
        ("mg/dL\u00a0", "mg/dL"),  # trailing no-break space
        ("\tmg/dL ", "mg/dL"),
    ],
)
def test_aliases_normalise(spelling: str, code: str) -> None:
    assert normalise_unit(spelling) == code


def test_every_listed_spelling_normalises_to_its_code() -> None:
    table = units._table()
    for code in table.units:
        assert normalise_unit(code) == code
        if code.upper() not in table.contextual:
            assert normalise_unit(code.upper()) == code
    for code, names in table.aliases.items():
        for name in names:
            if name not in table.contextual:
                assert normalise_unit(name) == code, name


def test_fold_unit() -> None:
    assert fold_unit(" µg / dL ") == "ug/dl"
    assert fold_unit("MCG/L") == "ug/l"
    assert fold_unit("m²") == "m²"  # superscripts are aliases, not folded (10³ is 10*3)


@pytest.mark.parametrize("bad", ["furlongs", "mg/dK", "mmol/molx", "10*9"])
def test_unknown_unit_raises_naming_it(bad: str) -> None:
    with pytest.raises(InputError) as err:
        normalise_unit(bad)
    assert err.value.rule == "unknown-unit"
    assert repr(bad) in err.value.message


def test_empty_unit_raises() -> None:
    with pytest.raises(InputError, match="empty unit") as err:
        normalise_unit("  ")
    assert err.value.rule == "unknown-unit"


@pytest.mark.parametrize(
    ("spelling", "variable", "code"),
    [
        ("G/L", "platelets", "10*9/L"),
        ("G/L", "hemoglobin", "g/L"),
        ("G/L", "albumin", "g/L"),
        ("mM", "potassium", "mmol/L"),
        ("mM", "lvedd", "mm"),
        ("lpm", "heart_rate", "{beats}/min"),
        ("LPM", "peak_oxygen_consumption", "L/min"),
    ],
)
def test_contextual_spellings_follow_the_variable(spelling: str, variable: str, code: str) -> None:
    if variable not in load_dictionary():
        pytest.skip(f"{variable} is not in the data dictionary")
    assert normalise_unit(spelling, variable) == code
    assert conversion(variable, spelling).from_unit == code


@pytest.mark.parametrize("spelling", ["G/L", "mM", "lpm"])
def test_contextual_spellings_without_a_variable_are_ambiguous(spelling: str) -> None:
    with pytest.raises(InputError, match="ambiguous unit") as err:
        normalise_unit(spelling)
    assert err.value.rule == "unknown-unit"
    assert "the variable decides" in err.value.message


# ----------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------


def test_impossible_conversion_names_variable_and_units() -> None:
    with pytest.raises(InputError) as err:
        conversion("creatinine", "mmol/mol")
    assert err.value.rule == "unit-conversion"
    msg = err.value.message
    assert msg.startswith("cannot convert creatinine from mmol/mol to umol/L: no conversion known")
    assert "known source units: umol/L, " in msg
    assert "mg/dL" in msg and "mmol/L" in msg
    assert "mmol/mol converts only for hba1c, hba1c_ifcc" in msg


def test_impossible_conversion_shows_the_spelling_given() -> None:
    with pytest.raises(InputError, match=r"from 'mg/dl' \(mg/dL\) to mm\[Hg\]"):
        conversion("systolic_bp", "mg/dl")
    with pytest.raises(InputError, match=r"to 'kg' \(kg\)|to kg"):
        conversion("creatinine", "mg/dL", "kg")


def test_unknown_variable_and_non_quantity() -> None:
    with pytest.raises(InputError) as err:
        conversion("no_such_variable", "mg/dL")
    assert err.value.rule == "unknown-variable"
    assert "no_such_variable" in err.value.message
    with pytest.raises(InputError, match="not a quantity") as err:
        conversion("heart_failure", "mg/dL")
    assert err.value.rule == "unit-conversion"


def test_unknown_source_unit_in_conversion_is_unknown_unit() -> None:
    with pytest.raises(InputError) as err:
        conversion("creatinine", "mg/dz")
    assert err.value.rule == "unknown-unit"


@pytest.mark.parametrize("variable", QUANTITY_IDS)
def test_meq_only_for_monovalent_ions(variable: str) -> None:
    if variable in {"sodium", "potassium"}:
        assert conversion(variable, "mEq/L").factor == 1.0
        assert "meq/L" in known_units(variable)
    else:
        assert "meq/L" not in known_units(variable)
        with pytest.raises(InputError, match="meq/L converts only for sodium, potassium"):
            conversion(variable, "mEq/L")


def test_analyte_conversions_do_not_leak_to_other_variables() -> None:
    # A molar mass belongs to its analyte: troponin and CRP have no molar units,
    # and mmol/mol or mg/g never become a plain fraction.
    for variable, unit in [
        ("troponin_i", "pmol/L"),
        ("crp", "mmol/L"),
        ("albumin", "umol/L"),
        ("rdw", "mmol/mol"),
        ("lvef", "mmol/mol"),
        ("urine_albumin", "mg/g"),
        ("transferrin_saturation", "mg/g"),
        ("urine_creatinine", "mg/g"),
    ]:
        with pytest.raises(InputError) as err:
            conversion(variable, unit)
        assert err.value.rule == "unit-conversion", (variable, unit)
    # Creatinine's molar mass is used for creatinine, cholesterol's for cholesterol.
    assert conversion("creatinine", "mg/dL", "mmol/L").factor == pytest.approx(10 / 113.12)
    assert conversion("total_cholesterol", "mg/dL").factor == pytest.approx(10 / 386.65)


def test_generic_conversion() -> None:
    assert generic_conversion("lbs", "kg").factor == pytest.approx(0.45359237, rel=1e-15)
    assert generic_conversion("kPa", "mmHg").factor == pytest.approx(1 / 0.133322387415, rel=1e-12)
    assert generic_conversion("ng/mL", "ug/L").is_identity  # same size, different code
    assert generic_conversion("ng/mL", "ug/L").factor == pytest.approx(1.0, rel=1e-15)
    assert generic_conversion("pg/mL", "ng/L").factor == pytest.approx(1.0, rel=1e-15)
    assert generic_conversion("°C", "°F").apply(37.0) == pytest.approx(98.6, rel=1e-12)
    assert generic_conversion("mg/dL", "mg/dL").basis == "identity"
    with pytest.raises(InputError, match="without knowing the analyte") as err:
        generic_conversion("mg/dL", "mmol/L")
    assert err.value.rule == "unit-conversion"


def test_conversion_to_a_non_canonical_unit() -> None:
    c = conversion("creatinine", "umol/L", "mg/dL")
    assert (c.from_unit, c.to_unit) == ("umol/L", "mg/dL")
    assert c.apply(88.4017) == pytest.approx(1.0, rel=1e-5)
    assert "113.12" in c.basis
    c = conversion("hba1c", "%", "mmol/mol")
    assert c.apply(6.5) == pytest.approx(47.54115, rel=1e-12)


# ----------------------------------------------------------------------------------------
# SQL
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET enable_progress_bar = false")
    return c


def test_sql_of_every_conversion_matches_python(con: duckdb.DuckDBPyConnection) -> None:
    table = conversion_table()
    values = [0.0, 0.37, 1.0, 98.6, 1234.5, -3.25]
    exprs = [c.sql("x") for c in table]
    rows = con.execute(
        f"SELECT {', '.join(exprs)} FROM (SELECT unnest(?::DOUBLE[]) AS x, "
        "generate_subscripts(?::DOUBLE[], 1) AS i) ORDER BY i",
        [values, values],
    ).fetchall()
    for x, row in zip(values, rows, strict=True):
        for c, got in zip(table, row, strict=True):
            assert got == pytest.approx(c.apply(x), rel=1e-12, abs=1e-12), (c, x)


@pytest.mark.parametrize("sql_type", ["INTEGER", "DECIMAL(10, 2)", "DOUBLE", "VARCHAR"])
def test_sql_accepts_numeric_types_and_returns_double(
    con: duckdb.DuckDBPyConnection, sql_type: str
) -> None:
    c = conversion("body_temperature", "°F")
    got, kind = con.execute(
        f"SELECT {c.sql('x')}, typeof({c.sql('x')}) FROM (SELECT CAST('212' AS {sql_type}) AS x)"
    ).fetchone() or (None, None)
    assert kind == "DOUBLE"
    assert got == pytest.approx(100.0, rel=1e-12)
    ident = conversion("body_temperature", "Cel")
    assert ident.sql("x") == "CAST((x) AS DOUBLE)"


def test_sql_keeps_null(con: duckdb.DuckDBPyConnection) -> None:
    c = conversion("creatinine", "mg/dL")
    assert con.execute(f"SELECT {c.sql('NULL')}").fetchone() == (None,)


def test_conversion_sql_literals_are_double() -> None:
    c = Conversion(factor=0.1, offset=-2.5, from_unit="a", to_unit="b", basis="test")
    assert c.sql("v") == "(CAST((v) AS DOUBLE) * 0.1e0 - 2.5e0)"
    c = Conversion(factor=1e-9, offset=0.0, from_unit="a", to_unit="b", basis="test")
    assert c.sql("v") == "(CAST((v) AS DOUBLE) * 1e-09)"
    c = Conversion(factor=1.0, offset=2.15, from_unit="a", to_unit="b", basis="test")
    assert c.sql("v") == "(CAST((v) AS DOUBLE) + 2.15e0)"


def _expected(variable: str, unit: str | None, value: float) -> tuple[float | None, bool]:
    if unit is None:
        return None, False
    try:
        return conversion(variable, unit).apply(value), True
    except InputError:
        return None, False


@pytest.mark.parametrize("variable", QUANTITY_IDS)
def test_case_sql_matches_python_row_by_row(con: duckdb.DuckDBPyConnection, variable: str) -> None:
    spellings = [*_all_spellings(), "furlongs", "", "  ", "MG/DL", " µmol / l ", None]
    values = [float(i % 97) + 0.25 for i in range(len(spellings))]
    rows = con.execute(
        f"SELECT {case_sql(variable, 'u', 'v')}, {unit_known_sql(variable, 'u')} "
        "FROM (SELECT unnest(?::VARCHAR[]) AS u, unnest(?::DOUBLE[]) AS v, "
        "generate_subscripts(?::DOUBLE[], 1) AS i) ORDER BY i",
        [spellings, values, values],
    ).fetchall()
    assert len(rows) == len(spellings)
    for unit, value, (got, known) in zip(spellings, values, rows, strict=True):
        want, want_known = _expected(variable, unit, value)
        assert known is want_known, (variable, unit)
        if want is None:
            assert got is None, (variable, unit)
        else:
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12), (variable, unit)


def test_case_sql_on_a_mixed_column(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE labs AS SELECT * FROM (VALUES "
        "(1, 1.0, 'mg/dl'), (2, 88.4, 'µmol/L'), (3, 0.0884, 'MMOL/L'), (4, 10.0, 'mg/L'), "
        "(5, 1.0, 'mEq/L'), (6, 1.0, NULL), (7, NULL, 'mg/dL'), (8, 1.0, 'mmol/mol')) "
        "t(id, value, unit)"
    )
    rows = con.execute(
        f"SELECT id, {case_sql('creatinine', 'unit', 'value')} AS umol, "
        f"{unit_known_sql('creatinine', 'unit')} AS known FROM labs ORDER BY id"
    ).fetchall()
    got = {i: (None if v is None else round(v, 2), k) for i, v, k in rows}
    assert got == {
        1: (88.40, True),
        2: (88.40, True),
        3: (88.40, True),
        4: (88.40, True),
        5: (None, False),
        6: (None, False),
        7: (None, True),
        8: (None, False),
    }


def test_fold_unit_sql_equals_python(con: duckdb.DuckDBPyConnection) -> None:
    texts = [
        *_all_spellings(),
        " MG / DL ",
        "ΜMOL/L",
        "mg/dL\u00a0",
        "mg\u202f/dL",
        "mg\u2009/dL",
        "\tmg/dL\n",
        "mg\x0b/dL\x0c\r",
        "MCG/ML",
    ]
    got = con.execute(
        f"SELECT {fold_unit_sql('t')} FROM (SELECT unnest(?::VARCHAR[]) AS t, "
        "generate_subscripts(?::VARCHAR[], 1) AS i) ORDER BY i",
        [texts, texts],
    ).fetchall()
    assert [g for (g,) in got] == [fold_unit(t) for t in texts]


@pytest.mark.parametrize("variable", [None, "platelets", "hemoglobin", "potassium", "heart_rate"])
def test_unit_code_sql_equals_normalise_unit(
    con: duckdb.DuckDBPyConnection, variable: str | None
) -> None:
    if variable is not None and variable not in load_dictionary():
        pytest.skip(f"{variable} is not in the data dictionary")
    texts = [*_all_spellings(), "furlongs", "", "G/L", " mM ", None]
    got = con.execute(
        f"SELECT {unit_code_sql('t', variable)} FROM (SELECT unnest(?::VARCHAR[]) AS t, "
        "generate_subscripts(?::VARCHAR[], 1) AS i) ORDER BY i",
        [texts, texts],
    ).fetchall()
    for text, (code,) in zip(texts, got, strict=True):
        try:
            want = None if text is None else normalise_unit(text, variable)
        except InputError:
            want = None
        assert code == want, text


# ----------------------------------------------------------------------------------------
# The data file and the docs page
# ----------------------------------------------------------------------------------------


def _spec(**changes: object) -> units._TableSpec:
    base: dict[str, object] = {
        "kinds": {
            "mass": {"description": "mass", "base": "g", "units": {"g": 1, "kg": 1000}},
            "amount": {"description": "amount", "base": "mol", "units": {"mol": 1}},
        },
        "analytes": [],
        "aliases": {"kg": ["kilo"]},
    }
    base.update(changes)
    return units._TableSpec.model_validate(base)


def test_data_file_validation() -> None:
    units._build(_spec(), "t.yaml")  # the minimal table is fine
    with pytest.raises(ValueError, match="would mean both"):
        units._build(_spec(aliases={"kg": ["G"]}), "t.yaml")
    with pytest.raises(ValueError, match="unknown unit 'lb'"):
        units._build(_spec(aliases={"lb": ["pound"]}), "t.yaml")
    with pytest.raises(ValueError, match="must have scale 1"):
        units._build(
            _spec(kinds={"mass": {"description": "m", "base": "kg", "units": {"g": 1, "kg": 2}}}),
            "t.yaml",
        )
    with pytest.raises(ValueError, match="is in kinds"):
        units._build(
            _spec(
                kinds={
                    "a": {"description": "a", "base": "g", "units": {"g": 1}},
                    "b": {"description": "b", "base": "g", "units": {"g": 1}},
                }
            ),
            "t.yaml",
        )
    with pytest.raises(ValueError, match="exactly one of"):
        _spec(analytes=[{"variables": ["x"], "basis": "b", "molar_mass": 1, "valence": 1}])
    with pytest.raises(ValueError, match="within one kind"):
        units._build(
            _spec(
                analytes=[
                    {
                        "variables": ["x"],
                        "basis": "b",
                        "affine": {"from": "g", "to": "kg", "factor": 1},
                    }
                ]
            ),
            "t.yaml",
        )
    two = {"variables": ["x"], "basis": "b", "affine": {"from": "g", "to": "mol", "factor": 2}}
    with pytest.raises(ValueError, match="two relations link"):
        units._build(_spec(analytes=[two, two]), "t.yaml")


def test_fractions_in_the_data_file_are_exact() -> None:
    from fractions import Fraction

    assert units._fraction("5/9") == Fraction(5, 9)
    assert units._fraction("0.45359237/0.00064516") == Fraction(45359237, 64516)
    assert units._fraction(0.1) == Fraction(1, 10)
    assert units._fraction("1e-9") == Fraction(1, 10**9)


def test_committed_page_is_up_to_date() -> None:
    committed = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    assert committed == render_markdown(), (
        "docs/units.md is out of date with the unit table; "
        "run `python -m cardiobox.ingest.units docs/units.md` and commit the result"
    )


def test_page_content() -> None:
    page = render_markdown()
    assert "## Analyte-specific conversions" in page
    assert "| `creatinine`, `urine_creatinine` | molar mass 113.12 | `mg/dL` | `umol/L` |" in page
    assert "`µmol/L`" in page and "`mEq/L`" in page
    for var in QUANTITIES:
        assert f"`{var.id}`" in page


def test_main_writes_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "units.md"
    assert units.main([str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_markdown()
    assert "wrote" in capsys.readouterr().out

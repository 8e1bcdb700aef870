"""Unit conversion for ingestion: source units to the data dictionary's canonical UCUM units.

Every quantity variable of the data dictionary has one canonical UCUM unit
(:attr:`cardiobox.cdm.Variable.unit`). Hospital extracts report the same values in many
units and spellings (``mg/dl``, ``µmol/L``, ``mEq/l``, ``°F``, ``lbs``). This module
normalises spellings to UCUM codes and converts values to the canonical unit, as Python
factors and as DuckDB SQL expressions, so that a whole column converts in one query.

The conversion table is data (``cardiobox/ingest/data/unit_conversions.yaml``):

* **kinds**: generic UCUM units grouped by kind of quantity (mass concentration, pressure,
  temperature, ...). Units of one kind convert into each other by their UCUM definitions,
  whatever the analyte.
* **analytes**: relations that need the analyte, by variable id: a molar mass (mg/dL to
  mmol/L), a valence (meq/L to mmol/L for monovalent ions only), the molar mass of the
  creatinine in the denominator of urine ratios (mg/g to mg/mmol) and the HbA1c master
  equation (% to mmol/mol).
* **aliases**: spellings found in real extracts.

A conversion is affine, ``value_to = value_from * factor + offset`` (the offset is zero
except for temperatures and HbA1c).

Example
-------
>>> from cardiobox.ingest.units import conversion, normalise_unit
>>> normalise_unit("µmol/l")
'umol/L'
>>> c = conversion("creatinine", "mg/dl")
>>> round(c.apply(1.0), 2), c.to_unit
(88.4, 'umol/L')
>>> c.sql("value")
'(CAST((value) AS DOUBLE) * 88.4016973125884e0)'

The page ``docs/units.md`` is rendered from the table by :func:`render_markdown`
(``python -m cardiobox.ingest.units docs/units.md``); a test checks that it is up to date.
"""

from __future__ import annotations

import argparse
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cardiobox import yamlio
from cardiobox.cdm import load_dictionary
from cardiobox.duck import sql_str
from cardiobox.errors import InputError

__all__ = [
    "Conversion",
    "case_sql",
    "conversion",
    "conversion_table",
    "fold_unit",
    "fold_unit_sql",
    "generic_conversion",
    "known_units",
    "normalise_unit",
    "render_markdown",
    "unit_code_sql",
    "unit_known_sql",
]

# --------------------------------------------------------------------------------------
# The data file
# --------------------------------------------------------------------------------------

#: A number in the data file: an int, a float or an exact fraction written ``"a/b"``.
_Number = int | float | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _ScaleOffset(_Strict):
    scale: _Number
    offset: _Number = 0


class _KindSpec(_Strict):
    description: str
    base: str
    units: dict[str, _Number | _ScaleOffset] = Field(min_length=1)


class _Textbook(_Strict):
    from_unit: str = Field(alias="from")
    to_unit: str = Field(alias="to")
    factor: float


class _AffineSpec(_Strict):
    from_unit: str = Field(alias="from")
    to_unit: str = Field(alias="to")
    factor: _Number
    offset: _Number = 0


class _AnalyteSpec(_Strict):
    variables: list[str] = Field(min_length=1)
    basis: str
    molar_mass: _Number | None = None
    valence: int | None = None
    denominator_molar_mass: _Number | None = None
    affine: _AffineSpec | None = None
    textbook: _Textbook | None = None

    @model_validator(mode="after")
    def _one_relation(self) -> _AnalyteSpec:
        given = [
            name
            for name in ("molar_mass", "valence", "denominator_molar_mass", "affine")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"analyte {self.variables}: give exactly one of molar_mass, valence, "
                f"denominator_molar_mass, affine (got {given or 'none'})"
            )
        return self


class _NotProvided(_Strict):
    what: str
    why: str


class _ContextualSpec(_Strict):
    units: list[str] = Field(min_length=1)
    why: str


class _TableSpec(_Strict):
    kinds: dict[str, _KindSpec]
    analytes: list[_AnalyteSpec]
    aliases: dict[str, list[str]]
    contextual: dict[str, _ContextualSpec] = Field(default_factory=dict)
    not_provided: list[_NotProvided] = Field(default_factory=list)


def _fraction(value: _Number) -> Fraction:
    """Read a number of the data file exactly (``0.1`` is one tenth, ``"5/9"`` five ninths)."""
    if isinstance(value, str) and "/" in value:
        num, den = value.split("/", 1)
        return Fraction(num.strip()) / Fraction(den.strip())
    return Fraction(str(value))


# --------------------------------------------------------------------------------------
# Exact affine maps and the loaded table
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Affine:
    """``y = x * factor + offset``, exact."""

    factor: Fraction
    offset: Fraction = Fraction(0)

    def then(self, other: _Affine) -> _Affine:
        """Apply ``self``, then ``other``."""
        return _Affine(self.factor * other.factor, self.offset * other.factor + other.offset)

    def inverse(self) -> _Affine:
        return _Affine(1 / self.factor, -self.offset / self.factor)


_IDENTITY = _Affine(Fraction(1))


@dataclass(frozen=True)
class _Unit:
    code: str
    kind: str
    to_base: _Affine  # value in the kind's base unit = value * factor + offset


@dataclass(frozen=True)
class _Relation:
    """An analyte-specific link between two kinds: ``to_unit = from_unit * f + o``."""

    variables: tuple[str, ...]
    name: str  # molar_mass, valence, denominator_molar_mass, affine
    value: Fraction | None  # the molar mass or valence; None for affine
    from_unit: str
    to_unit: str
    map: _Affine
    basis: str
    textbook: _Textbook | None


@dataclass(frozen=True)
class _Kind:
    name: str
    description: str
    base: str
    units: tuple[str, ...]


@dataclass(frozen=True)
class _Table:
    kinds: dict[str, _Kind]
    units: dict[str, _Unit]
    spellings: dict[str, str]  # folded spelling -> UCUM code
    aliases: dict[str, tuple[str, ...]]  # UCUM code -> spellings as listed
    contextual: dict[str, _ContextualSpec]  # spelling, white space removed, case kept
    relations: tuple[_Relation, ...]
    by_variable: dict[str, tuple[_Relation, ...]]
    not_provided: tuple[_NotProvided, ...]


# White space removed from unit spellings: ASCII white space, no-break space, thin space
# and narrow no-break space (thousands separator in French).
_WHITESPACE_CLASS = "\t\n\x0b\x0c\r \u00a0\u2009\u202f"
_WHITESPACE_RE = re.compile(f"[{_WHITESPACE_CLASS}]")
_WHITESPACE_SQL = r"[\x{0009}-\x{000D}\x{0020}\x{00A0}\x{2009}\x{202F}]"
#: Replacements after lower-casing: the micro sign and the Greek mu are "u", mcg is "ug".
#: (Superscripts are not folded: m² is m2 but 10³ is 10*3, so those are listed as aliases.)
_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("\u00b5", "u"),  # MICRO SIGN
    ("\u03bc", "u"),  # GREEK SMALL LETTER MU
    ("mcg", "ug"),
)


def fold_unit(text: str) -> str:
    """Fold a unit spelling for lookup: lower case, no white space, ``µ``, ``μ`` as ``u``.

    Parameters
    ----------
    text : str
        A unit as written in an extract.

    Returns
    -------
    str
        The folded spelling; :func:`fold_unit_sql` computes the same in DuckDB.
    """
    out = _WHITESPACE_RE.sub("", text.lower())
    for old, new in _REPLACEMENTS:
        out = out.replace(old, new)
    return out


def fold_unit_sql(expr: str) -> str:
    """DuckDB SQL expression computing :func:`fold_unit` of the VARCHAR ``expr``."""
    return _fold_stripped_sql(f"regexp_replace({expr}, '{_WHITESPACE_SQL}', '', 'g')")


def _fold_stripped_sql(expr: str) -> str:
    """:func:`fold_unit_sql` of an expression already free of white space."""
    out = f"lower({expr})"
    for old, new in _REPLACEMENTS:
        out = f"replace({out}, {sql_str(old)}, {sql_str(new)})"
    return out


def _data_path() -> Path:
    return Path(str(resources.files("cardiobox.ingest") / "data" / "unit_conversions.yaml"))


@cache
def _table() -> _Table:
    path = _data_path()
    with path.open(encoding="utf-8") as fh:
        raw = yamlio.safe_load(fh)
    try:
        spec = _TableSpec.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{path.name}: {exc}") from exc
    return _build(spec, path.name)


def _build(spec: _TableSpec, where: str) -> _Table:
    kinds: dict[str, _Kind] = {}
    units: dict[str, _Unit] = {}
    for kind_name, kind in spec.kinds.items():
        for code, value in kind.units.items():
            if code in units:
                raise ValueError(
                    f"{where}: unit {code!r} is in kinds {units[code].kind!r} and {kind_name!r}"
                )
            if isinstance(value, _ScaleOffset):
                to_base = _Affine(_fraction(value.scale), _fraction(value.offset))
            else:
                to_base = _Affine(_fraction(value))
            if to_base.factor == 0:
                raise ValueError(f"{where}: unit {code!r} has scale 0")
            units[code] = _Unit(code, kind_name, to_base)
        if units.get(kind.base) is None or units[kind.base].to_base != _IDENTITY:
            raise ValueError(f"{where}: kind {kind_name!r}: base {kind.base!r} must have scale 1")
        kinds[kind_name] = _Kind(kind_name, kind.description, kind.base, tuple(kind.units))

    spellings: dict[str, str] = {}

    def add(spelling: str, code: str) -> None:
        key = fold_unit(spelling)
        if not key:
            raise ValueError(f"{where}: empty spelling for {code!r}")
        other = spellings.setdefault(key, code)
        if other != code:
            raise ValueError(
                f"{where}: spelling {spelling!r} would mean both {other!r} and {code!r}"
            )

    for code in units:
        add(code, code)
    aliases: dict[str, tuple[str, ...]] = {}
    for code, names in spec.aliases.items():
        if code not in units:
            raise ValueError(f"{where}: aliases given for unknown unit {code!r}")
        for name in names:
            add(name, code)
        aliases[code] = tuple(names)

    contextual: dict[str, _ContextualSpec] = {}
    for spelling, ctx in spec.contextual.items():
        unknown = [code for code in ctx.units if code not in units]
        if unknown:
            raise ValueError(f"{where}: contextual spelling {spelling!r}: unknown units {unknown}")
        contextual[_WHITESPACE_RE.sub("", spelling)] = ctx

    relations: list[_Relation] = []
    by_variable: dict[str, list[_Relation]] = {}
    for analyte in spec.analytes:
        rel = _relation(analyte)
        for code in (rel.from_unit, rel.to_unit):
            if code not in units:
                raise ValueError(f"{where}: analyte {analyte.variables}: unknown unit {code!r}")
        if units[rel.from_unit].kind == units[rel.to_unit].kind:
            raise ValueError(f"{where}: analyte {analyte.variables}: relation within one kind")
        if rel.map.factor == 0:
            raise ValueError(f"{where}: analyte {analyte.variables}: factor 0")
        relations.append(rel)
        pair = frozenset((units[rel.from_unit].kind, units[rel.to_unit].kind))
        for var in rel.variables:
            same = [r for r in by_variable.get(var, []) if _kinds(units, r) == pair]
            if same:
                raise ValueError(f"{where}: {var}: two relations link the kinds {sorted(pair)}")
            by_variable.setdefault(var, []).append(rel)
    return _Table(
        kinds=kinds,
        units=units,
        spellings=spellings,
        aliases=aliases,
        contextual=contextual,
        relations=tuple(relations),
        by_variable={k: tuple(v) for k, v in by_variable.items()},
        not_provided=tuple(spec.not_provided),
    )


def _kinds(units: dict[str, _Unit], rel: _Relation) -> frozenset[str]:
    return frozenset((units[rel.from_unit].kind, units[rel.to_unit].kind))


def _relation(spec: _AnalyteSpec) -> _Relation:
    variables = tuple(spec.variables)
    if spec.molar_mass is not None:
        m = _fraction(spec.molar_mass)
        # 1 mol/L of the analyte weighs M g/L.
        return _Relation(
            variables, "molar_mass", m, "mol/L", "g/L", _Affine(m), spec.basis, spec.textbook
        )
    if spec.valence is not None:
        z = Fraction(spec.valence)
        # 1 mol/L of an ion of charge z carries z eq/L.
        return _Relation(
            variables, "valence", z, "mol/L", "eq/L", _Affine(z), spec.basis, spec.textbook
        )
    if spec.denominator_molar_mass is not None:
        m = _fraction(spec.denominator_molar_mass)
        # x mg per g of creatinine = x mg per (1000 / M) mmol = x * M / 1000 mg/mmol.
        return _Relation(
            variables,
            "denominator_molar_mass",
            m,
            "mg/g",
            "mg/mmol",
            _Affine(m / 1000),
            spec.basis,
            spec.textbook,
        )
    assert spec.affine is not None  # guaranteed by _AnalyteSpec._one_relation
    a = spec.affine
    return _Relation(
        variables,
        "affine",
        None,
        a.from_unit,
        a.to_unit,
        _Affine(_fraction(a.factor), _fraction(a.offset)),
        spec.basis,
        spec.textbook,
    )


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversion:
    """A conversion of values from one unit to another: ``to = from * factor + offset``.

    Parameters
    ----------
    factor : float
        Multiplier applied to the source value.
    offset : float
        Added after multiplying (non-zero for temperatures and HbA1c only).
    from_unit : str
        Source UCUM code.
    to_unit : str
        Target UCUM code.
    basis : str
        Why the factor is what it is (UCUM definition, molar mass, equation).
    variable_id : str or None
        Data-dictionary variable the conversion is for; ``None`` for a generic conversion.
    """

    factor: float
    offset: float
    from_unit: str
    to_unit: str
    basis: str
    variable_id: str | None = None

    @property
    def is_identity(self) -> bool:
        """Whether values pass through unchanged."""
        return self.factor == 1.0 and self.offset == 0.0

    def apply(self, value: float) -> float:
        """Convert one value (for checks and tests; use :meth:`sql` on columns)."""
        return value * self.factor + self.offset

    def sql(self, expr: str) -> str:
        """DuckDB SQL expression converting the numeric SQL expression ``expr``.

        Parameters
        ----------
        expr : str
            SQL expression of the source values (a column name, a cast, ...).

        Returns
        -------
        str
            An expression of type DOUBLE; NULL stays NULL. The literals are written as
            DOUBLE so that DuckDB computes exactly what :meth:`apply` computes.
        """
        out = f"CAST(({expr}) AS DOUBLE)"
        if self.is_identity:
            return out
        if self.factor != 1.0:
            out = f"{out} * {_sql_double(self.factor)}"
        if self.offset > 0:
            out = f"{out} + {_sql_double(self.offset)}"
        elif self.offset < 0:
            out = f"{out} - {_sql_double(-self.offset)}"
        return f"({out})"


def normalise_unit(unit: str, variable_id: str | None = None) -> str:
    """Return the UCUM code of a unit spelling found in an extract.

    Letter case and white space are ignored; ``µ`` and ``μ`` read as ``u``, ``mcg`` as
    ``ug``; known non-UCUM spellings (``m²``, ``mmHg``,
    ``bpm``, ``°F``, ``lbs``, ``mEq/l``, ``ml/min/1.73m2``, ...) map to their UCUM code.
    A few spellings mean different units in different places (``G/L`` is 10^9/L in a
    French cell count and g/L in an upper-case laboratory system; ``lpm`` is beats or
    litres per minute); the variable, when given, decides.

    Parameters
    ----------
    unit : str
        The unit as written in the source.
    variable_id : str, optional
        Data-dictionary variable the value belongs to; resolves ambiguous spellings to
        the reading that the variable can be converted from.

    Returns
    -------
    str
        The UCUM code (``"umol/L"``, ``"mm[Hg]"``, ``"[degF]"``, ``"meq/L"``).

    Raises
    ------
    InputError
        With rule ``unknown-unit`` when the spelling is unknown, or ambiguous and no
        variable is given.
    """
    if not isinstance(unit, str):
        raise InputError(f"unit must be text, got {unit!r}", rule="unknown-unit")
    readings = _readings(unit)
    if not readings:
        if not _WHITESPACE_RE.sub("", unit):
            raise InputError("empty unit: a quantity needs a unit", rule="unknown-unit")
        raise InputError(
            f"unknown unit {unit!r}: not a UCUM code or spelling known to cardiobox "
            "(see docs/units.md for the accepted units and spellings)",
            rule="unknown-unit",
        )
    if variable_id is not None:
        reach = _reachable(variable_id, _canonical(variable_id))
        units = _table().units
        return next((c for c in readings if units[c].kind in reach), readings[0])
    if len(readings) > 1:
        why = _table().contextual[_WHITESPACE_RE.sub("", unit)].why
        raise InputError(
            f"ambiguous unit {unit!r}: it may be {' or '.join(readings)} ({why}); "
            "the variable decides",
            rule="unknown-unit",
        )
    return readings[0]


def _readings(unit: str) -> tuple[str, ...]:
    """UCUM codes a spelling may mean: contextual readings first, then the case-blind one."""
    table = _table()
    ctx = table.contextual.get(_WHITESPACE_RE.sub("", unit))
    out = list(ctx.units) if ctx else []
    blind = table.spellings.get(fold_unit(unit))
    if blind is not None and blind not in out:
        out.append(blind)
    return tuple(out)


def generic_conversion(from_unit: str, to_unit: str) -> Conversion:
    """Convert between two units of one kind, without an analyte (``lb`` to ``kg``).

    Raises
    ------
    InputError
        Rule ``unknown-unit`` for an unknown spelling; rule ``unit-conversion`` when the two
        units measure different kinds of quantity (or need the analyte, as mg/dL to mmol/L).
    """
    table = _table()
    src, dst = normalise_unit(from_unit), normalise_unit(to_unit)
    a, b = table.units[src], table.units[dst]
    if a.kind != b.kind:
        raise InputError(
            f"cannot convert {_show(from_unit, src)} to {_show(to_unit, dst)} without knowing "
            f"the analyte: {table.kinds[a.kind].description} vs {table.kinds[b.kind].description}",
            rule="unit-conversion",
        )
    return _make(a.to_base.then(b.to_base.inverse()), src, dst, _generic_basis(src, dst), None)


def conversion(variable_id: str, from_unit: str, to_unit: str | None = None) -> Conversion:
    """The conversion of a variable's values from ``from_unit`` to ``to_unit``.

    Parameters
    ----------
    variable_id : str
        Data-dictionary variable id (``"creatinine"``); must be a quantity.
    from_unit : str
        Source unit, any accepted spelling (see :func:`normalise_unit`).
    to_unit : str, optional
        Target unit; defaults to the variable's canonical unit.

    Returns
    -------
    Conversion
        Factor 1 and offset 0 when the units are the same.

    Raises
    ------
    InputError
        Rule ``unknown-unit`` for an unknown spelling, ``unknown-variable`` for an unknown
        variable, and ``unit-conversion`` when no conversion is known for this variable, e.g.
        "cannot convert creatinine from mmol/mol to umol/L: no conversion known (known
        source units: umol/L, ...)".
    """
    table = _table()
    canonical = _canonical(variable_id)
    src = normalise_unit(from_unit, variable_id)
    dst = canonical if to_unit is None else normalise_unit(to_unit, variable_id)
    reach = _reachable(variable_id, canonical)
    missing = [code for code in (src, dst) if table.units[code].kind not in reach]
    if missing:
        shown_to = canonical if to_unit is None else _show(to_unit, dst)
        raise InputError(
            f"cannot convert {variable_id} from {_show(from_unit, src)} to {shown_to}: "
            f"no conversion known (known source units: {', '.join(known_units(variable_id))})"
            + _hint(missing[0]),
            rule="unit-conversion",
        )
    src_kind, dst_kind = table.units[src].kind, table.units[dst].kind
    # Path from the source kind to the target kind along the variable's relations.
    steps = _path(variable_id, src_kind, dst_kind)
    mapping = table.units[src].to_base
    bases: list[str] = []
    for rel, forward in steps:
        a, b = (rel.from_unit, rel.to_unit) if forward else (rel.to_unit, rel.from_unit)
        rel_map = rel.map if forward else rel.map.inverse()
        mapping = mapping.then(table.units[a].to_base.inverse()).then(rel_map)
        mapping = mapping.then(table.units[b].to_base)
        bases.append(rel.basis)
    mapping = mapping.then(table.units[dst].to_base.inverse())
    if src == dst:
        basis = "identity"
    elif bases:
        basis = "; ".join(bases)
    else:
        basis = _generic_basis(src, dst)
    return _make(mapping, src, dst, basis, variable_id)


def known_units(variable_id: str) -> list[str]:
    """UCUM codes of the units a variable's values can be given in (canonical first).

    Raises
    ------
    InputError
        Rule ``unknown-variable`` or ``unit-conversion`` (not a quantity).
    """
    table = _table()
    canonical = _canonical(variable_id)
    reach = _reachable(variable_id, canonical)
    out = [canonical]
    for kind in reach:
        out.extend(code for code in table.kinds[kind].units if code != canonical)
    return out


def conversion_table() -> list[Conversion]:
    """Every conversion into a canonical unit: each quantity variable, each known unit."""
    out: list[Conversion] = []
    for var in load_dictionary():
        if var.value_type == "quantity":
            out.extend(conversion(var.id, code) for code in known_units(var.id))
    return out


def case_sql(variable_id: str, unit_column_expr: str, value_expr: str) -> str:
    """One SQL expression converting each row by the unit in its own row.

    Parameters
    ----------
    variable_id : str
        Data-dictionary variable id.
    unit_column_expr : str
        SQL expression of the VARCHAR units as written in the source (any accepted
        spelling, read in SQL exactly as :func:`normalise_unit` reads it for this variable).
    value_expr : str
        SQL expression of the numeric values.

    Returns
    -------
    str
        A DOUBLE expression in the variable's canonical unit; NULL when the value or the
        unit is NULL, or the unit is unknown or not convertible for this variable (tell
        these apart with :func:`unit_known_sql`). It is one CASE over the unit spelling,
        read once per row (inside one-element ``list_transform`` lambdas).
    """
    groups: dict[tuple[float, float], tuple[Conversion, list[str], list[str]]] = {}
    for code in known_units(variable_id):
        conv = conversion(variable_id, code)
        group = groups.setdefault((conv.factor, conv.offset), (conv, [], []))
        group[2].extend(_spellings(code))
    raw_null = _contextual_for(variable_id, groups)
    branches = [(raw, folded, conv.sql(value_expr)) for conv, raw, folded in groups.values()]
    return _case_on_spelling(unit_column_expr, raw_null, branches)


def unit_known_sql(variable_id: str, unit_column_expr: str) -> str:
    """SQL boolean: this row's unit converts to the variable's canonical unit (never NULL).

    Parameters
    ----------
    variable_id : str
        Data-dictionary variable id.
    unit_column_expr : str
        SQL expression of the VARCHAR units as written in the source.

    Returns
    -------
    str
        A BOOLEAN expression, false for a NULL unit; true exactly where :func:`case_sql`
        converts the unit.
    """
    groups: dict[bool, tuple[None, list[str], list[str]]] = {True: (None, [], [])}
    for code in known_units(variable_id):
        groups[True][2].extend(_spellings(code))
    raw_null = _contextual_for(variable_id, groups)
    branches = [(raw, folded, "true") for _, raw, folded in groups.values()]
    return f"coalesce({_case_on_spelling(unit_column_expr, raw_null, branches)}, false)"


def unit_code_sql(unit_column_expr: str, variable_id: str | None = None) -> str:
    """SQL expression giving the UCUM code of each row's unit spelling.

    Parameters
    ----------
    unit_column_expr : str
        SQL expression of the VARCHAR units as written in the source.
    variable_id : str, optional
        Variable that resolves ambiguous spellings, as in :func:`normalise_unit`.

    Returns
    -------
    str
        A VARCHAR expression: what :func:`normalise_unit` returns, NULL where it raises.
    """
    table = _table()
    groups: dict[str, tuple[str, list[str], list[str]]] = {}
    for key, code in table.spellings.items():
        groups.setdefault(code, (code, [], []))[2].append(key)
    raw_null: list[str] = []
    for raw in table.contextual:
        try:
            code = normalise_unit(raw, variable_id)
        except InputError:
            raw_null.append(raw)
        else:
            groups.setdefault(code, (code, [], []))[1].append(raw)
    branches = [(raw, folded, sql_str(code)) for code, raw, folded in groups.values()]
    return _case_on_spelling(unit_column_expr, raw_null, branches)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _canonical(variable_id: str) -> str:
    d = load_dictionary()
    if variable_id not in d:
        raise InputError(f"unknown data-model variable {variable_id!r}", rule="unknown-variable")
    var = d[variable_id]
    if var.value_type != "quantity" or not var.unit:
        raise InputError(
            f"{variable_id} is not a quantity (value type {var.value_type}); it has no unit",
            rule="unit-conversion",
        )
    if var.unit not in _table().units:
        raise InputError(
            f"canonical unit {var.unit!r} of {variable_id} is missing from the unit table",
            rule="unit-conversion",
        )
    return var.unit


def _reachable(variable_id: str, canonical: str) -> dict[str, None]:
    """Kinds a variable's values can be given in, the canonical unit's kind first."""
    table = _table()
    start = table.units[canonical].kind
    seen: dict[str, None] = {start: None}
    queue = deque([start])
    relations = table.by_variable.get(variable_id, ())
    while queue:
        kind = queue.popleft()
        for rel in relations:
            ends = (table.units[rel.from_unit].kind, table.units[rel.to_unit].kind)
            if kind in ends:
                other = ends[1] if kind == ends[0] else ends[0]
                if other not in seen:
                    seen[other] = None
                    queue.append(other)
    return seen


def _path(variable_id: str, start: str, goal: str) -> list[tuple[_Relation, bool]]:
    """The variable's relations leading from kind ``start`` to kind ``goal``, with direction."""
    table = _table()
    if start == goal:
        return []
    rels = table.by_variable.get(variable_id, ())
    back: dict[str, tuple[str, _Relation, bool]] = {}
    queue = deque([start])
    visited = {start}
    while queue:
        kind = queue.popleft()
        for rel in rels:
            a, b = table.units[rel.from_unit].kind, table.units[rel.to_unit].kind
            for here, there, forward in ((a, b, True), (b, a, False)):
                if here == kind and there not in visited:
                    visited.add(there)
                    back[there] = (kind, rel, forward)
                    queue.append(there)
    steps: list[tuple[_Relation, bool]] = []
    node = goal
    while node != start:
        prev, rel, forward = back[node]
        steps.append((rel, forward))
        node = prev
    return steps[::-1]


def _hint(code: str) -> str:
    """Name the variables for which ``code`` does convert, when it needs an analyte."""
    table = _table()
    kind = table.units[code].kind
    users = [
        var
        for var, rels in table.by_variable.items()
        if any(kind in _kinds(table.units, rel) for rel in rels)
    ]
    if not users or len(users) > 6:
        return ""
    return f"; {code} converts only for {', '.join(users)}"


def _make(m: _Affine, src: str, dst: str, basis: str, variable_id: str | None) -> Conversion:
    return Conversion(
        factor=float(m.factor),
        offset=float(m.offset),
        from_unit=src,
        to_unit=dst,
        basis=basis,
        variable_id=variable_id,
    )


def _generic_basis(src: str, dst: str) -> str:
    if src == dst:
        return "identity"
    table = _table()
    kind = table.kinds[table.units[src].kind]
    return f"UCUM definitions ({kind.description})"


def _show(given: str, code: str) -> str:
    return code if given.strip() == code else f"{given.strip()!r} ({code})"


def _spellings(code: str) -> list[str]:
    """Folded spellings that normalise to ``code``."""
    return [key for key, c in _table().spellings.items() if c == code]


#: Names of the lambda parameters holding the unit spelling in generated SQL.
_RAW = "cbx_raw_unit"
_FOLDED = "cbx_folded_unit"

_G = TypeVar("_G")


def _contextual_for(
    variable_id: str, groups: dict[_G, tuple[Any, list[str], list[str]]]
) -> list[str]:
    """Put each contextual spelling into the group of its reading for ``variable_id``.

    ``groups`` maps a key to ``(payload, raw spellings, folded spellings)``; a contextual
    spelling joins the raw spellings of the group holding the folded form of its reading.
    Returns the contextual spellings that the variable cannot convert (SQL NULL).
    """
    table = _table()
    unusable: list[str] = []
    for raw in table.contextual:
        code = normalise_unit(raw, variable_id)
        key = fold_unit(code)
        target = next((g for g in groups.values() if key in g[2]), None)
        if target is None:
            unusable.append(raw)
        else:
            target[1].append(raw)
    return unusable


def _case_on_spelling(
    unit_column_expr: str,
    raw_null: Sequence[str],
    branches: Sequence[tuple[list[str], list[str], str]],
) -> str:
    """CASE over a unit spelling: contextual spellings by exact match, the rest folded.

    Each branch is ``(raw spellings, folded spellings, result)``; other spellings give
    NULL. The spelling is stripped and folded once per row, in one-element lambdas.
    """
    whens: list[str] = []
    if raw_null:
        whens.append(f"WHEN {_RAW} IN ({_sql_list(raw_null)}) THEN NULL")
    whens += [
        f"WHEN {_RAW} IN ({_sql_list(raw)}) THEN {result}" for raw, _, result in branches if raw
    ]
    whens += [
        f"WHEN {_FOLDED} IN ({_sql_list(folded)}) THEN {result}"
        for _, folded, result in branches
        if folded
    ]
    case = f"CASE {' '.join(whens)} ELSE NULL END"
    stripped = f"regexp_replace({unit_column_expr}, '{_WHITESPACE_SQL}', '', 'g')"
    inner = f"list_transform([{_fold_stripped_sql(_RAW)}], lambda {_FOLDED}: {case})[1]"
    return f"list_transform([{stripped}], lambda {_RAW}: {inner})[1]"


def _sql_list(items: Iterable[str]) -> str:
    return ", ".join(sql_str(x) for x in items)


def _sql_double(x: float) -> str:
    """A literal DuckDB reads as this exact DOUBLE (an exponent makes it DOUBLE, not DECIMAL)."""
    text = repr(float(x))
    return text if "e" in text else f"{text}e0"


# --------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------


def format_number(x: float, digits: int = 7) -> str:
    """Format a factor for the docs: ``digits`` significant digits, no needless zeros."""
    if x == 0:
        return "0"
    text = f"{x:.{digits}g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        return f"{mantissa} × 10^{int(exp)}"
    return text


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"`` {text} ``"


def render_markdown() -> str:
    """Render the conversion table as the Markdown page ``docs/units.md``."""
    table = _table()
    d = load_dictionary()
    lines: list[str] = [
        "# Units",
        "",
        "<!-- Generated by `python -m cardiobox.ingest.units docs/units.md` from "
        "src/cardiobox/ingest/data/unit_conversions.yaml; do not edit by hand. -->",
        "",
        "Every quantity of the [data dictionary](data-dictionary.md) has one canonical UCUM",
        "unit. Ingestion converts each source value into it with `cardiobox.ingest.units`:",
        "",
        "- a unit spelling is normalised to its UCUM code by ignoring letter case and white",
        "  space, reading `µ` (micro sign) and `μ` (Greek mu) as `u` and `mcg` as `ug`, and",
        "  looking up the spellings listed [below](#spellings); a few spellings mean different",
        "  units in different places (`G/L`, `lpm`) and the variable decides between them;",
        "- units of one **kind** (mass concentration, pressure, temperature, ...) convert into",
        "  each other by their UCUM definitions, for any variable of that kind;",
        "- conversions between kinds need the **analyte** (its molar mass, its valence, the",
        "  HbA1c master equation) and exist only for the variables listed;",
        "- a conversion is `value_to = value_from × factor + offset`; the offset is zero except",
        "  for temperatures and HbA1c;",
        "- a unit that is unknown, ambiguous or not convertible for the variable is an error",
        "  (`unknown-unit`, `unit-conversion`); ingestion quarantines the row with the message.",
        "",
        "```python",
        "from cardiobox.ingest.units import case_sql, conversion, normalise_unit",
        "",
        "normalise_unit(\"µmol/l\")                     # 'umol/L'",
        'conversion("creatinine", "mg/dL").factor     # 88.40 (to umol/L)',
        'conversion("body_temperature", "°F").sql("v")  # (CAST((v) AS DOUBLE) * … - …)',
        'case_sql("creatinine", "unit", "value")      # one CASE for a column of mixed units',
        "```",
        "",
        "## Analyte-specific conversions",
        "",
        "Factors are derived from the molar mass and checked against the factor printed in",
        "clinical conversion tables (column *textbook*).",
        "",
        "| variables | relation | from | to | factor | offset | textbook | basis |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rel in table.relations:
        tb = rel.textbook
        src, dst = (tb.from_unit, tb.to_unit) if tb else (rel.from_unit, rel.to_unit)
        conv = conversion(rel.variables[0], src, dst)
        relation = rel.name.replace("_", " ")
        if rel.value is not None:
            relation += f" {format_number(float(rel.value))}"
        lines.append(
            f"| {', '.join(_code(v) for v in rel.variables)} | {relation} | {_code(src)} | "
            f"{_code(dst)} | {format_number(conv.factor)} | "
            f"{format_number(conv.offset) if conv.offset else ''} | "
            f"{format_number(tb.factor) if tb else ''} | {rel.basis} |"
        )
    lines += [
        "",
        "## Units by kind",
        "",
        "Within a kind, `value_in_base = value × factor + offset`.",
        "",
        "| kind | base | unit | factor | offset |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind in table.kinds.values():
        for i, code in enumerate(kind.units):
            m = table.units[code].to_base
            name, base = (kind.description, _code(kind.base)) if i == 0 else ("", "")
            lines.append(
                f"| {name} | {base} | {_code(code)} | "
                f"{format_number(float(m.factor))} | "
                f"{format_number(float(m.offset)) if m.offset else ''} |"
            )
    lines += [
        "",
        "## Conversions by variable",
        "",
        "Each quantity variable with the source units it accepts, the factor (and offset)",
        "into its canonical unit and the basis. Variables with the same conversions share a",
        "row group.",
        "",
        "| variables | to | from | factor | offset | basis |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    groups: dict[tuple[tuple[str, str, float, float, str], ...], list[str]] = {}
    for var in d:
        if var.value_type != "quantity":
            continue
        convs = tuple(
            (c.from_unit, c.to_unit, c.factor, c.offset, c.basis)
            for c in (conversion(var.id, u) for u in known_units(var.id))
        )
        groups.setdefault(convs, []).append(var.id)
    identity_only: list[str] = []
    for convs, ids in groups.items():
        rows = [c for c in convs if c[0] != c[1]]
        if not rows:
            identity_only.extend(ids)
            continue
        names = ", ".join(_code(i) for i in ids)
        for i, (src, dst, factor, offset, basis) in enumerate(rows):
            first = i == 0
            lines.append(
                f"| {names if first else ''} | {_code(dst) if first else ''} | {_code(src)} | "
                f"{format_number(factor)} | {format_number(offset) if offset else ''} | "
                f"{basis} |"
            )
    lines += [
        "",
        "Variables accepted in their canonical unit only: "
        + ", ".join(f"{_code(i)} ({_code(d[i].unit or '')})" for i in identity_only)
        + ".",
        "",
        "## Spellings",
        "",
        "Besides the UCUM codes themselves (in any letter case), these spellings are read:",
        "",
        "| UCUM code | spellings |",
        "| --- | --- |",
    ]
    for code, listed in table.aliases.items():
        lines.append(f"| {_code(code)} | {', '.join(_code(n) for n in listed)} |")
    if table.contextual:
        lines += [
            "",
            "Spellings with more than one meaning, matched with their letter case; the",
            "variable decides (the first reading it converts from), and without a variable",
            "they are refused when they have two readings:",
            "",
            "| spelling | readings | why |",
            "| --- | --- | --- |",
        ]
        lines += [
            f"| {_code(k)} | {', '.join(_code(c) for c in _readings(k))} | {v.why} |"
            for k, v in table.contextual.items()
        ]
    lines += ["", "## Not provided", ""]
    lines += [f"- **{item.what}**: {item.why}" for item in table.not_provided]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the units page: ``python -m cardiobox.ingest.units OUTPUT.md``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("output", type=Path, help="Markdown file to write")
    args = parser.parse_args(argv)
    out: Path = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""SQL values for the FHIRPath compiler: how a FHIRPath collection lives in DuckDB SQL.

A FHIRPath expression compiles to a :class:`Val`: a DuckDB SQL expression plus what the
compiler knows about it.

- ``many``: ``False`` means the SQL is one value (``NULL`` is the empty collection);
  ``True`` means it is a DuckDB ``LIST`` (``[]`` is the empty collection).
- ``ftype``: the FHIR type of the items when known (``"HumanName"``, ``"decimal"``...).
- ``native``: items are already in their SQL type (``BOOLEAN``, ``BIGINT``, ``DOUBLE``,
  ``VARCHAR``). Otherwise they are the text ``json_extract_string`` returns: a primitive's
  value (``'1.5'``, ``'true'``, ``'abc'``) or a complex element's JSON text. Casting happens
  only where a typed value is needed, so a string column costs no conversion at all.
- ``nav``: a pending JSON navigation (base + JSON path steps). Consecutive member steps
  merge into one JSON path; paths read from a context are *hoisted*: every path that a
  context reads is extracted by one ``json_extract_string(json, [path, ...])`` call, which
  parses the JSON once (see :class:`Hoist`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from cardiobox.duck import sql_str
from cardiobox.store.views import schema

#: SQL type for each value kind.
KIND_SQL: dict[str, str] = {
    "bool": "BOOLEAN",
    "int": "BIGINT",
    "dec": "DOUBLE",
    "str": "VARCHAR",
    "complex": "VARCHAR",
    "unknown": "VARCHAR",
}

#: FHIR type a computed value of each kind gets.
KIND_FTYPE: dict[str, str] = {
    "bool": "boolean",
    "int": "integer",
    "dec": "decimal",
    "str": "string",
}


#: Prefix of the messages of errors raised inside the generated SQL.
ERROR_MARK = "cardiobox-view:"


class UnsupportedError(Exception):
    """A construct the SQL compiler does not translate; the view goes to the fallback."""


class Names:
    """Fresh lambda-variable names, unique within one compiled view."""

    def __init__(self) -> None:
        self._n = 0

    def __call__(self, prefix: str = "_l") -> str:
        """Return a new name starting with ``prefix``."""
        self._n += 1
        return f"{prefix}{self._n}"


@dataclass
class Hoist:
    """JSON paths read from one JSON value, extracted together so it is parsed once.

    Parameters
    ----------
    source : str
        SQL expression of the JSON text the paths are read from.
    name : str
        SQL expression under which the ``VARCHAR[]`` of extracted values is available.
    """

    source: str
    name: str
    paths: list[str] = field(default_factory=list)

    def ref(self, path: str) -> str:
        """Register ``path`` and return the SQL of its value."""
        if path not in self.paths:
            self.paths.append(path)
        return f"{self.name}[{self.paths.index(path) + 1}]"

    def extraction(self) -> str:
        """Return the one ``json_extract_string`` call that reads every registered path."""
        paths = ", ".join(sql_str(p) for p in self.paths)
        return f"json_extract_string({self.source}, [{paths}])"


@dataclass(frozen=True)
class Nav:
    """A pending navigation: JSON path ``steps`` applied to ``base``.

    Parameters
    ----------
    base : str
        SQL of the JSON text (``many=False``) or of a list of JSON texts (``many=True``).
    base_many : bool
        Whether ``base`` is a list.
    hoist : Hoist or None
        Where to register paths read from a single ``base``.
    steps : tuple of str
        JSON path segments: ``.name``, ``[*]``, ``[0]``.
    """

    base: str
    base_many: bool
    hoist: Hoist | None
    steps: tuple[str, ...] = ()


class Val:
    """A FHIRPath collection as a DuckDB SQL expression (see the module docstring)."""

    def __init__(
        self,
        sql: str | None = None,
        *,
        many: bool = False,
        ftype: str | None = None,
        native: bool = False,
        nav: Nav | None = None,
        names: Names | None = None,
        choices: dict[str, str] | None = None,
        static: object = None,
        has_static: bool = False,
    ) -> None:
        self._sql = sql
        self.many = many
        self.ftype = ftype
        self.native = native
        self.nav = nav
        self.names = names
        self.choices = choices
        self.static = static
        self.has_static = has_static

    @property
    def kind(self) -> str:
        """``bool``, ``int``, ``dec``, ``str``, ``complex`` or ``unknown``."""
        return schema.kind_of(self.ftype)

    @cached_property
    def sql(self) -> str:
        """The SQL expression (materialises a pending navigation)."""
        if self._sql is not None:
            return self._sql
        if self.choices is not None:
            return self._choice_sql()
        assert self.nav is not None and self.names is not None
        return materialize(self.nav, self.names, self.kind)

    def _choice_sql(self) -> str:
        # A choice element used without ofType(): whichever variant is present.
        assert self.nav is not None and self.names is not None and self.choices is not None
        if self.many:
            # One value per item, in item order.
            items = materialize(self.nav, self.names, "complex")
            p = self.names("_p")
            variants = ", ".join(
                f"json_extract_string({p}, {sql_str(json_path((member_step(n),)))})"
                for n in self.choices.values()
            )
            return _drop_nulls(
                f"list_transform({items}, lambda {p}: coalesce({variants}))", self.names
            )
        parts = [
            materialize(
                Nav(self.nav.base, False, self.nav.hoist, (*self.nav.steps, member_step(n))),
                self.names,
                "unknown",
            )
            for n in self.choices.values()
        ]
        return "coalesce(" + ", ".join(parts) + ")"


EMPTY_SQL = "NULL"


def empty() -> Val:
    """Return the empty collection."""
    return Val(EMPTY_SQL, many=False, ftype=None, native=True)


def is_empty(v: Val) -> bool:
    """Whether ``v`` is statically the empty collection."""
    return v._sql == EMPTY_SQL and not v.many


def json_path(steps: tuple[str, ...]) -> str:
    """Join segments into a DuckDB JSON path."""
    return "$" + "".join(steps)


def member_step(name: str) -> str:
    """JSON path segment for a property name."""
    if name.replace("_", "a").isalnum() and not name[:1].isdigit():
        return f".{name}"
    return '."' + name.replace('"', '\\"') + '"'


def _drop_nulls(sql: str, names: Names) -> str:
    z = names("_z")
    return f"list_filter({sql}, lambda {z}: {z} IS NOT NULL)"


def materialize(nav: Nav, names: Names, kind: str) -> str:
    """Return SQL for a navigation (a list when any step is ``[*]`` or the base is)."""
    steps = nav.steps
    if not steps:
        return nav.base
    wild = "[*]" in steps
    trailing_primitive = steps[-1] == "[*]" and kind != "complex"
    if nav.base_many:
        v = names("_n")
        if wild:
            inner = f"json_extract_string({v}, {sql_str(json_path(steps))})"
            sql = f"flatten(list_transform({nav.base}, lambda {v}: {_no_null_list(inner)}))"
            return _drop_nulls(sql, names) if trailing_primitive else sql
        inner = f"json_extract_string({v}, {sql_str(json_path(steps))})"
        return _drop_nulls(f"list_transform({nav.base}, lambda {v}: {inner})", names)
    if not wild:
        path = json_path(steps)
        if nav.hoist is not None:
            return nav.hoist.ref(path)
        return f"json_extract_string({nav.base}, {sql_str(path)})"
    cut = steps.index("[*]")
    prefix, rest = steps[:cut], steps[cut:]
    if nav.hoist is not None and prefix:
        # Hoist the part before the first array: the array's JSON text is parsed again,
        # but it is much smaller than the whole resource.
        src = nav.hoist.ref(json_path(prefix))
        sql = f"json_extract_string({src}, {sql_str(json_path(rest))})"
    else:
        sql = f"json_extract_string({nav.base}, {sql_str(json_path(steps))})"
    sql = _no_null_list(sql)
    return _drop_nulls(sql, names) if trailing_primitive else sql


def _no_null_list(sql: str) -> str:
    # A missing JSON value gives NULL, not an empty list; FHIRPath wants [].
    return f"coalesce({sql}, []::VARCHAR[])"


def cast_item(sql: str, from_kind: str, native: bool, to_kind: str) -> str:
    """Convert one item from its representation to the SQL type of ``to_kind``."""
    target = KIND_SQL[to_kind]
    if native:
        source = KIND_SQL.get(from_kind, "VARCHAR")
        if source == target or sql == EMPTY_SQL:
            return sql
        return f"CAST({sql} AS {target})"
    # Raw JSON text.
    if target == "VARCHAR":
        return sql
    if from_kind == "unknown" or from_kind in ("str", "complex"):
        return f"TRY_CAST({sql} AS {target})"
    return f"CAST({sql} AS {target})"


def typed(v: Val, to_kind: str, names: Names) -> str:
    """Return ``v`` with every item in the SQL type of ``to_kind`` (keeps ``many``)."""
    if not v.many:
        return cast_item(v.sql, v.kind, v.native, to_kind)
    t = names("_t")
    item = cast_item(t, v.kind, v.native, to_kind)
    if item == t:
        return v.sql
    return f"list_transform({v.sql}, lambda {t}: {item})"


def as_list(v: Val, to_kind: str, names: Names) -> str:
    """Return ``v`` as a typed list (a single value becomes a 0- or 1-item list)."""
    if v.many:
        return typed(v, to_kind, names)
    target = KIND_SQL[to_kind]
    if is_empty(v):
        return f"[]::{target}[]"
    x = names("_s")
    item = cast_item(v.sql, v.kind, v.native, to_kind)
    return f"list_filter([{item}], lambda {x}: {x} IS NOT NULL)"


_SIMPLE = re.compile(r'[\w\x01."]+(\[-?\d+\])*')


def let(value: str, body: str, var: str) -> str:
    """Evaluate ``value`` once and use it (as ``var``) in ``body``.

    A column or list-element reference is cheap to repeat and is substituted; anything
    else is bound by a one-item ``list_transform`` lambda.
    """
    if _SIMPLE.fullmatch(value):
        return re.sub(rf"\b{re.escape(var)}\b", lambda _m: value, body)
    return f"list_transform([{value}], lambda {var}: {body})[1]"


def single(v: Val, names: Names, message: str) -> str:
    """Return ``v`` as one value; a list of more than one item raises ``message``."""
    if not v.many:
        return v.sql
    s = names("_s")
    if not message.startswith(ERROR_MARK):
        message = f"{ERROR_MARK} {message}"
    body = f"CASE WHEN len({s}) > 1 THEN error({sql_str(message)}) ELSE {s}[1] END"
    return let(v.sql, body, s)

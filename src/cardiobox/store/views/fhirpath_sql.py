"""Compile FHIRPath expressions (fhirpathpy's AST) to DuckDB SQL expressions.

Supported subset (everything else raises :class:`UnsupportedError`, and the whole view is
evaluated by the fhirpathpy fallback instead):

- navigation (``name.family``), ``$this``, a leading resource type (``Patient.name``),
  choice types through ``ofType``/``as``/``is`` (``value.ofType(Quantity)`` reads
  ``valueQuantity``), indexers with a constant index (``name[1]``);
- literals: strings, integers, decimals, booleans, ``{}``, dates, date-times and times;
- ``%constants`` of the view, ``%rowIndex``, ``%resource``/``%rootResource``,
  ``%ucum``/``%sct``/``%loinc``;
- operators: ``= != ~ !~ < <= > >=``, ``and or xor implies``, ``+ - * / div mod &``,
  unary ``-``, ``|``, ``in``/``contains``, ``is``/``as``;
- functions: ``where exists empty count first last tail skip take single distinct
  select all allTrue anyTrue allFalse anyFalse not hasValue join ofType extension iif
  getResourceKey getReferenceKey lowBoundary highBoundary`` and the string functions
  ``startsWith endsWith contains substring upper lower length trim matches replace
  indexOf toString toInteger toDecimal toBoolean``.

Values are compared by kind: numbers numerically, strings (and dates, date-times and
times, which FHIR JSON holds as ISO text) as text. Decimals are ``DOUBLE``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from cardiobox.duck import sql_str
from cardiobox.store.views import schema
from cardiobox.store.views.fhirpath import Node, constant_name, identifier_text
from cardiobox.store.views.model import Constant
from cardiobox.store.views.sqlvalue import (
    KIND_FTYPE,
    Names,
    Nav,
    UnsupportedError,
    Val,
    as_list,
    empty,
    is_empty,
    let,
    member_step,
    single,
    typed,
)

#: ``Type/id`` at the end of a reference (relative or absolute URL), optionally followed by
#: ``/_history/version``: group 1 is the type, group 2 the id.
REFERENCE_PATTERN = r"^(?:.*/)?([A-Za-z][A-Za-z0-9]*)/([^/]+?)(?:/_history/[^/]+)?$"

_RELATIVE = r"[A-Za-z][A-Za-z0-9]*/[^/]+"

_SYSTEM_TYPES = {
    "String": "string",
    "Integer": "integer",
    "Decimal": "decimal",
    "Boolean": "boolean",
    "Date": "date",
    "DateTime": "dateTime",
    "Time": "time",
}
_WELL_KNOWN = {
    "ucum": "http://unitsofmeasure.org",
    "sct": "http://snomed.info/sct",
    "loinc": "http://loinc.org",
}
_NUMERIC = ("int", "dec")
_TEMPORAL = ("date", "dateTime", "instant", "time")


@dataclass(frozen=True)
class Scope:
    """What an expression is evaluated against.

    Parameters
    ----------
    this : Val
        The focus (``$this``): the resource, a ``forEach`` item or a ``where`` item.
    root : Val
        The resource (``%resource``).
    row_index : str
        SQL of ``%rowIndex``.
    constants : Mapping
        The view's constants.
    names : Names
        Lambda-variable name generator.
    """

    this: Val
    root: Val
    row_index: str
    constants: Mapping[str, Constant]
    names: Names


class _Generic(Val):
    """A member the schema does not know; remembers where it came from for ``ofType``."""

    def __init__(self, sql: str, parent: Val, name: str) -> None:
        super().__init__(sql, many=True, ftype=None, native=False)
        self.parent = parent
        self.member = name


def literal(sql: str, ftype: str, value: object) -> Val:
    """Make a constant value."""
    return Val(sql, many=False, ftype=ftype, native=True, static=value, has_static=True)


def constant_val(const: Constant) -> Val:
    """Return the literal a view constant stands for."""
    kind = schema.kind_of(const.type)
    value = const.value
    if kind == "bool":
        return literal("true" if value else "false", "boolean", value)
    if kind == "int":
        return literal(f"CAST({int(value)} AS BIGINT)", const.type, int(value))
    if kind == "dec":
        return literal(f"CAST({sql_str(repr(float(value)))} AS DOUBLE)", "decimal", value)
    return literal(sql_str(str(value)), const.type, str(value))


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    simple = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n"}
    simple.update({"r": "\r", "t": "\t"})
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and i + 5 < len(body):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(simple.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _type_name(node: Node) -> str:
    """Type name in an ``ofType``/``is``/``as`` argument, without ``FHIR.``/``System.``."""
    text = str(node.get("text") or "").replace("`", "")
    if not text:
        text = ".".join(identifier_text(n) for n in _identifiers(node))
    if text.startswith("FHIR."):
        return text[5:]
    if text.startswith("System."):
        return _SYSTEM_TYPES.get(text[7:], text[7:])
    return text


def _identifiers(node: Node) -> list[Node]:
    if node.get("type") == "Identifier":
        return [node]
    out: list[Node] = []
    for child in node.get("children", []):
        out.extend(_identifiers(child))
    return out


class ExprCompiler:
    """Compiles FHIRPath AST nodes to :class:`Val` in a :class:`Scope`."""

    def __init__(self, names: Names) -> None:
        self.names = names

    # -- entry points --------------------------------------------------------------------

    def compile(self, node: Node, scope: Scope) -> Val:
        """Compile one expression node."""
        kind = node.get("type")
        handler = getattr(self, f"_n_{kind}", None)
        if handler is None:
            raise UnsupportedError(f"FHIRPath construct {kind}")
        result: Val = handler(node, scope)
        return result

    def to_bool(self, v: Val) -> str:
        """Return SQL for a value in a boolean context (FHIRPath singleton evaluation)."""
        if is_empty(v):
            return "NULL"
        x = single(v, self.names, "a boolean expression returned more than one value")
        kind = v.kind
        if kind == "bool":
            return typed(Val(x, ftype="boolean", native=v.native), "bool", self.names)
        if kind == "unknown" and not v.native:
            return (
                f"(CASE WHEN {x} IN ('true', 'false') THEN {x} = 'true' "
                f"WHEN {x} IS NOT NULL THEN true END)"
            )
        return f"(CASE WHEN {x} IS NOT NULL THEN true END)"

    # -- terms ---------------------------------------------------------------------------

    def _n_TermExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        return self.compile(node["children"][0], scope)

    def _n_ParenthesizedTerm(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        return self.compile(node["children"][0], scope)

    def _n_InvocationTerm(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        inv = node["children"][0]
        if inv["type"] == "MemberInvocation":
            name = identifier_text(inv["children"][0])
            this = scope.this
            if name == this.ftype and name[:1].isupper() and schema.is_resource_type(name):
                return this  # ``Patient.name``: the type name selects the resource itself
            return self.member(this, name)
        return self.invoke(scope.this, inv, scope)

    def _n_LiteralTerm(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        lit = node["children"][0]
        kind = lit["type"]
        text = str(lit.get("text") or lit["terminalNodeText"][0])
        if kind == "StringLiteral":
            value = _unescape(text[1:-1])
            return literal(sql_str(value), "string", value)
        if kind == "NumberLiteral":
            if re.fullmatch(r"\d+", text):
                return literal(f"CAST({int(text)} AS BIGINT)", "integer", int(text))
            return literal(f"CAST({sql_str(text)} AS DOUBLE)", "decimal", float(text))
        if kind == "BooleanLiteral":
            return literal(text, "boolean", text == "true")
        if kind == "NullLiteral":
            return empty()
        if kind == "DateTimeLiteral":
            value = text[1:]
            return literal(sql_str(value), "dateTime" if "T" in value else "date", value)
        if kind == "TimeLiteral":
            value = text[2:]
            return literal(sql_str(value), "time", value)
        raise UnsupportedError(f"FHIRPath literal {kind}")

    def _n_ExternalConstantTerm(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        name = constant_name(node["children"][0])
        if name in scope.constants:
            return constant_val(scope.constants[name])
        if name == "rowIndex":
            return Val(scope.row_index, ftype="integer", native=True)
        if name in ("resource", "rootResource", "context"):
            return scope.root
        if name in _WELL_KNOWN:
            return literal(sql_str(_WELL_KNOWN[name]), "uri", _WELL_KNOWN[name])
        raise UnsupportedError(f"%{name}")

    # -- invocations ---------------------------------------------------------------------

    def _n_InvocationExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        base = self.compile(node["children"][0], scope)
        inv = node["children"][1]
        if inv["type"] == "MemberInvocation":
            return self.member(base, identifier_text(inv["children"][0]))
        return self.invoke(base, inv, scope)

    def invoke(self, base: Val, inv: Node, scope: Scope) -> Val:
        """Compile a function call (or ``$this``) on ``base``."""
        if inv["type"] == "ThisInvocation":
            return scope.this
        if inv["type"] != "FunctionInvocation":
            raise UnsupportedError(inv["type"])
        fn = inv["children"][0]
        name = identifier_text(fn["children"][0])
        params: list[Node] = fn["children"][1]["children"] if len(fn["children"]) > 1 else []
        handler = getattr(self, f"_f_{name}", None)
        if handler is None:
            raise UnsupportedError(f"FHIRPath function {name}()")
        result: Val = handler(base, params, scope)
        return result

    def _n_IndexerExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        base = self.compile(node["children"][0], scope)
        index = self.compile(node["children"][1], scope)
        if not index.has_static or not isinstance(index.static, int):
            raise UnsupportedError("an indexer that is not a constant integer")
        if index.static < 0:
            return empty()  # FHIRPath: no item at a negative index
        return self.index(base, int(index.static))

    # -- navigation ----------------------------------------------------------------------

    def _extend(self, v: Val, steps: tuple[str, ...]) -> Nav:
        if v.nav is not None and v._sql is None and v.choices is None:
            n = v.nav
            return Nav(n.base, n.base_many, n.hoist, n.steps + steps)
        return Nav(v.sql, v.many, None, steps)

    def _nav_val(self, nav: Nav, ftype: str | None) -> Val:
        many = nav.base_many or "[*]" in nav.steps
        return Val(None, many=many, ftype=ftype, nav=nav, names=self.names)

    def _plain(self, v: Val) -> Val:
        """Turn a choice placeholder into a value: whichever variant is present."""
        if v.choices is None:
            return v
        return Val(v.sql, many=v.many, ftype=None, native=False)

    def member(self, v: Val, name: str) -> Val:
        """Navigate to child ``name`` of every item of ``v``."""
        v = self._plain(v)
        if is_empty(v):
            return empty()
        kind = v.kind
        if kind in ("bool", "int", "dec", "str"):
            return empty()  # primitives have no children
        if kind == "complex":
            el = schema.element(v.ftype, name)
            if el is not None:
                if el.choices is not None:
                    nav = self._extend(v, ())
                    many = nav.base_many or "[*]" in nav.steps
                    return Val(None, many=many, nav=nav, names=self.names, choices=el.choices)
                steps = (member_step(name), "[*]") if el.many else (member_step(name),)
                return self._nav_val(self._extend(v, steps), el.type)
        if v.native:
            return empty()
        return self._generic(v, name)

    def _generic(self, v: Val, name: str) -> Val:
        # Unknown type: decide at run time whether the child is an array.
        x = self.names("_g")
        step = member_step(name)
        one = f"json_extract_string({x}, {sql_str('$' + step)})"
        many = f"json_extract_string({x}, {sql_str('$' + step + '[*]')})"
        body = (
            f"CASE WHEN left({x}, 1) = '{{' AND json_valid({x}) THEN "
            f"(CASE WHEN json_type({x}, {sql_str('$' + step)}) = 'ARRAY' THEN {many} "
            f"ELSE [{one}] END) ELSE []::VARCHAR[] END"
        )
        if v.many:
            sql = f"flatten(list_transform({v.sql}, lambda {x}: {body}))"
        else:
            sql = let(v.sql, body, x)
        z = self.names("_z")
        return _Generic(f"list_filter({sql}, lambda {z}: {z} IS NOT NULL)", v, name)

    def index(self, v: Val, i: int) -> Val:
        """``v[i]`` (0-based; negative counts from the end)."""
        v = self._plain(v)
        if not v.many:
            return v if i in (0, -1) else empty()
        nav = v.nav
        if (
            nav is not None
            and v._sql is None
            and not nav.base_many
            and nav.steps.count("[*]") == 1
            and nav.steps[-1] == "[*]"
        ):
            # name[*] -> name[i]: stays one JSON path (and can be hoisted).
            return self._nav_val(
                Nav(nav.base, False, nav.hoist, (*nav.steps[:-1], f"[{i}]")), v.ftype
            )
        pos = i + 1 if i >= 0 else i
        return Val(f"({v.sql})[{pos}]", many=False, ftype=v.ftype, native=v.native)

    # -- lambdas -------------------------------------------------------------------------

    def _item_scope(self, v: Val, scope: Scope) -> tuple[str, Scope]:
        var = self.names("_e")
        item = Val(
            None,
            many=False,
            ftype=v.ftype,
            native=v.native,
            nav=Nav(var, False, None, ()),
            names=self.names,
        )
        if v.native:
            item = Val(var, many=False, ftype=v.ftype, native=True)
        return var, replace(scope, this=item)

    def _is_focus(self, v: Val, scope: Scope) -> bool:
        return v is scope.this and not v.many

    def where(self, v: Val, crit: Node, scope: Scope) -> Val:
        """``v.where(crit)``."""
        v = self._plain(v)
        if is_empty(v):
            return empty()
        if self._is_focus(v, scope):
            cond = self.to_bool(self.compile(crit, scope))
            return Val(f"(CASE WHEN {cond} THEN {v.sql} END)", ftype=v.ftype, native=v.native)
        var, inner = self._item_scope(v, scope)
        cond = self.to_bool(self.compile(crit, inner))
        if v.many:
            return Val(
                f"list_filter({v.sql}, lambda {var}: {cond})",
                many=True,
                ftype=v.ftype,
                native=v.native,
            )
        return Val(
            f"list_filter([{v.sql}], lambda {var}: {cond})[1]",
            ftype=v.ftype,
            native=v.native,
        )

    # -- functions: existence and subsetting ---------------------------------------------

    def _arity(self, name: str, params: list[Node], *allowed: int) -> None:
        if len(params) not in allowed:
            raise UnsupportedError(f"{name}() with {len(params)} argument(s)")

    def _f_where(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("where", params, 1)
        return self.where(v, params[0], scope)

    def _f_exists(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("exists", params, 0, 1)
        if params:
            v = self.where(v, params[0], scope)
        return Val(self._exists_sql(v), ftype="boolean", native=True)

    def _exists_sql(self, v: Val) -> str:
        v = self._plain(v)
        if is_empty(v):
            return "false"
        if v.many:
            return f"(len({v.sql}) > 0)"
        return f"({v.sql} IS NOT NULL)"

    def _f_hasValue(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        self._arity("hasValue", params, 0)
        return Val(self._exists_sql(v), ftype="boolean", native=True)

    def _f_empty(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("empty", params, 0)
        return Val(f"(NOT {self._exists_sql(v)})", ftype="boolean", native=True)

    def _f_count(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("count", params, 0)
        v = self._plain(v)
        if is_empty(v):
            return literal("CAST(0 AS BIGINT)", "integer", 0)
        if v.many:
            return Val(f"CAST(len({v.sql}) AS BIGINT)", ftype="integer", native=True)
        return Val(
            f"(CASE WHEN {v.sql} IS NULL THEN 0 ELSE 1 END)::BIGINT", ftype="integer", native=True
        )

    def _f_first(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("first", params, 0)
        return self.index(v, 0)

    def _f_last(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("last", params, 0)
        return self.index(v, -1)

    def _static_int(self, node: Node, scope: Scope, fn: str) -> int:
        val = self.compile(node, scope)
        if not val.has_static or not isinstance(val.static, int):
            raise UnsupportedError(f"{fn}() with an argument that is not a constant integer")
        return int(val.static)

    def _slice(self, v: Val, start: int, stop: int | None) -> Val:
        v = self._plain(v)
        lst = as_list(v, self._kind_or_str(v), self.names) if v.native else self._text_list(v)
        end = "len(" + lst + ")" if stop is None else str(stop)
        return Val(
            f"list_slice({lst}, {start + 1}, {end})", many=True, ftype=v.ftype, native=v.native
        )

    def _text_list(self, v: Val) -> str:
        if v.many:
            return v.sql
        if is_empty(v):
            return "[]::VARCHAR[]"
        z = self.names("_z")
        return f"list_filter([{v.sql}], lambda {z}: {z} IS NOT NULL)"

    def _kind_or_str(self, v: Val) -> str:
        return v.kind if v.kind in ("bool", "int", "dec", "str") else "str"

    def _f_tail(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("tail", params, 0)
        return self._slice(v, 1, None)

    def _f_skip(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("skip", params, 1)
        return self._slice(v, max(self._static_int(params[0], scope, "skip"), 0), None)

    def _f_take(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("take", params, 1)
        n = self._static_int(params[0], scope, "take")
        if n <= 0:
            return empty()
        return self._slice(v, 0, n)

    def _f_single(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("single", params, 0)
        v = self._plain(v)
        sql = single(v, self.names, "single() on a collection with more than one item")
        return Val(sql, ftype=v.ftype, native=v.native)

    def _f_distinct(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("distinct", params, 0)
        v = self._plain(v)
        if not v.many:
            return v
        return Val(self._distinct(v.sql), many=True, ftype=v.ftype, native=v.native)

    def _distinct(self, lst: str) -> str:
        """Drop repeated items, keeping the first of each (list_distinct loses order)."""
        u, x, i = self.names("_u"), self.names("_x"), self.names("_i")
        return let(lst, f"list_filter({u}, lambda {x}, {i}: list_position({u}, {x}) = {i})", u)

    def _f_select(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("select", params, 1)
        v = self._plain(v)
        if is_empty(v):
            return empty()
        var, inner = self._item_scope(v, scope)
        out = self._plain(self.compile(params[0], inner))
        if out.native and out.kind in ("bool", "int", "dec", "str"):
            body = as_list(out, out.kind, self.names)
        else:
            body = self._text_list(out)
        src = v.sql if v.many else self._text_list(v)
        return Val(
            f"flatten(list_transform({src}, lambda {var}: {body}))",
            many=True,
            ftype=out.ftype,
            native=out.native,
        )

    def _bool_list(self, v: Val) -> str:
        v = self._plain(v)
        if v.many:
            return typed(v, "bool", self.names)
        return as_list(v, "bool", self.names)

    def _f_all(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("all", params, 1)
        v = self._plain(v)
        if is_empty(v):
            return literal("true", "boolean", True)
        var, inner = self._item_scope(v, scope)
        cond = self.to_bool(self.compile(params[0], inner))
        src = v.sql if v.many else self._text_list(v)
        sql = f"(len(list_filter({src}, lambda {var}: NOT coalesce({cond}, false))) = 0)"
        return Val(sql, ftype="boolean", native=True)

    def _f_allTrue(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        z = self.names("_z")
        sql = f"(len(list_filter({self._bool_list(v)}, lambda {z}: NOT {z})) = 0)"
        return Val(sql, ftype="boolean", native=True)

    def _f_anyTrue(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        z = self.names("_z")
        return Val(
            f"(len(list_filter({self._bool_list(v)}, lambda {z}: {z})) > 0)",
            ftype="boolean",
            native=True,
        )

    def _f_allFalse(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        z = self.names("_z")
        return Val(
            f"(len(list_filter({self._bool_list(v)}, lambda {z}: {z})) = 0)",
            ftype="boolean",
            native=True,
        )

    def _f_anyFalse(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        z = self.names("_z")
        sql = f"(len(list_filter({self._bool_list(v)}, lambda {z}: NOT {z})) > 0)"
        return Val(sql, ftype="boolean", native=True)

    def _f_not(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("not", params, 0)
        return Val(f"(NOT {self.to_bool(v)})", ftype="boolean", native=True)

    def _f_iif(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("iif", params, 2, 3)
        if not self._is_focus(v, scope):
            raise UnsupportedError("iif() on a collection")
        cond = self.to_bool(self.compile(params[0], scope))
        a = self._plain(self.compile(params[1], scope))
        b = self._plain(self.compile(params[2], scope)) if len(params) == 3 else empty()
        if a.many or b.many:
            raise UnsupportedError("iif() returning collections")
        kind = self._common_kind(a, b)
        sa, sb = self._typed_single(a, kind), self._typed_single(b, kind)
        return Val(
            f"(CASE WHEN {cond} THEN {sa} ELSE {sb} END)",
            ftype=KIND_FTYPE.get(kind, a.ftype),
            native=True,
        )

    # -- functions: types ----------------------------------------------------------------

    def of_type(self, v: Val, tname: str) -> Val:
        """``v.ofType(tname)``."""
        if v.choices is not None:
            if tname in v.choices:
                assert v.nav is not None
                nav = Nav(
                    v.nav.base,
                    v.nav.base_many,
                    v.nav.hoist,
                    (*v.nav.steps, member_step(v.choices[tname])),
                )
                return self._nav_val(nav, tname)
            return empty()
        if isinstance(v, _Generic):
            # FHIR JSON names a choice variant <name><Type>: valueQuantity, deceasedBoolean.
            got = self._generic(v.parent, v.member + tname[:1].upper() + tname[1:])
            got.ftype = tname if schema.is_known(tname) else None
            return got
        if is_empty(v):
            return empty()
        if v.ftype == tname:
            return v
        if tname in ("Resource", "DomainResource") and schema.is_resource_type(v.ftype or ""):
            return v
        if schema.is_resource_type(tname) and (
            v.kind == "unknown" or v.ftype in ("Resource", "DomainResource")
        ):
            var = self.names("_e")
            cond = f"json_extract_string({var}, '$.resourceType') = {sql_str(tname)}"
            src = v.sql if v.many else self._text_list(v)
            return Val(f"list_filter({src}, lambda {var}: {cond})", many=True, ftype=tname)
        if v.kind == "unknown":
            raise UnsupportedError(f"ofType({tname}) on a value of unknown type")
        return empty()

    def _f_ofType(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        self._arity("ofType", params, 1)
        return self.of_type(v, _type_name(params[0]))

    def _f_as(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("as", params, 1)
        return self.of_type(v, _type_name(params[0]))

    def _f_is(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("is", params, 1)
        return Val(
            self._exists_sql(self.of_type(v, _type_name(params[0]))), ftype="boolean", native=True
        )

    def _n_TypeExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        base = self.compile(node["children"][0], scope)
        tname = _type_name(node["children"][1])
        op = node["terminalNodeText"][0]
        got = self.of_type(base, tname)
        if op == "is":
            return Val(self._exists_sql(got), ftype="boolean", native=True)
        return got

    def _f_extension(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("extension", params, 1)
        url = self.compile(params[0], scope)
        if not url.has_static or not isinstance(url.static, str):
            raise UnsupportedError("extension() with a URL that is not a constant string")
        ext = self.member(v, "extension")
        if is_empty(ext):
            return empty()
        var = self.names("_x")
        cond = f"json_extract_string({var}, '$.url') = {sql_str(url.static)}"
        src = ext.sql if ext.many else self._text_list(ext)
        return Val(f"list_filter({src}, lambda {var}: {cond})", many=True, ftype="Extension")

    # -- functions: keys -----------------------------------------------------------------

    def _f_getResourceKey(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        self._arity("getResourceKey", params, 0)
        key = self.member(v, "id")
        key.ftype = "string" if key.ftype is None else key.ftype
        return key

    def _f_getReferenceKey(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        self._arity("getReferenceKey", params, 0, 1)
        rtype = _type_name(params[0]) if params else None
        ref = self._plain(self.member(v, "reference"))
        if is_empty(ref):
            return empty()

        def key(x: str) -> str:
            # Fast path for the common relative reference "Type/id" (plain string tests);
            # absolute URLs and versioned references go through the full pattern.
            general_id = f"regexp_extract({x}, {sql_str(REFERENCE_PATTERN)}, 2)"
            if rtype is None:
                return (
                    f"(CASE WHEN NOT contains({x}, '/') THEN NULL "
                    f"WHEN regexp_full_match({x}, {sql_str(_RELATIVE)}) "
                    f"THEN split_part({x}, '/', 2) "
                    f"ELSE nullif({general_id}, '') END)"
                )
            prefix = rtype + "/"
            rest = f"substr({x}, {len(prefix) + 1})"
            general_type = f"regexp_extract({x}, {sql_str(REFERENCE_PATTERN)}, 1)"
            return (
                f"(CASE WHEN starts_with({x}, {sql_str(prefix)}) AND NOT contains({rest}, '/') "
                f"THEN nullif({rest}, '') WHEN NOT contains({x}, '/') THEN NULL "
                f"WHEN {general_type} = {sql_str(rtype)} THEN nullif({general_id}, '') END)"
            )

        if not ref.many:
            r = self.names("_r")
            return Val(let(ref.sql, key(r), r), ftype="string")
        r, z = self.names("_r"), self.names("_z")
        keys = f"list_transform({ref.sql}, lambda {r}: {key(r)})"
        sql = f"list_filter({keys}, lambda {z}: {z} IS NOT NULL)"
        return Val(sql, many=True, ftype="string")

    # -- functions: boundaries -----------------------------------------------------------

    def _boundary(self, v: Val, high: bool) -> Val:
        v = self._plain(v)
        if is_empty(v):
            return empty()
        ftype = v.ftype or ""
        kind = v.kind
        x = self.names("_b")
        if kind in _NUMERIC:
            text = f"CAST({x} AS VARCHAR)" if v.native else x
            prec = (
                f"CAST(CASE WHEN contains({text}, '.') THEN length(split_part({text}, '.', 2)) "
                "ELSE 0 END AS INTEGER)"
            )
            sign = "+" if high else "-"
            body = f"round(CAST({text} AS DOUBLE) {sign} 0.5 / power(10, {prec}), {prec} + 1)"
            out = "decimal"
        elif ftype == "date":
            body = _date_boundary(x, high)
            out = "date"
        elif ftype in ("dateTime", "instant"):
            body = _datetime_boundary(x, high)
            out = "dateTime"
        elif ftype == "time":
            body = _time_boundary(x, high)
            out = "time"
        else:
            raise UnsupportedError(
                f"{'high' if high else 'low'}Boundary() on {ftype or 'an unknown type'}"
            )
        if v.many:
            return Val(
                f"list_transform({v.sql}, lambda {x}: {body})", many=True, ftype=out, native=True
            )
        return Val(let(v.sql, body, x), ftype=out, native=True)

    def _f_lowBoundary(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        self._arity("lowBoundary", params, 0)
        return self._boundary(v, high=False)

    def _f_highBoundary(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        self._arity("highBoundary", params, 0)
        return self._boundary(v, high=True)

    # -- functions: strings and conversions ----------------------------------------------

    def _str1(self, v: Val, fn: str) -> str:
        v = self._plain(v)
        x = single(v, self.names, f"{fn}() on a collection with more than one item")
        return self._typed_single(Val(x, ftype=v.ftype, native=v.native), "str")

    def _static_str(self, node: Node, scope: Scope, fn: str) -> str:
        val = self.compile(node, scope)
        if not val.has_static or not isinstance(val.static, str):
            raise UnsupportedError(f"{fn}() with an argument that is not a constant string")
        return sql_str(val.static)

    def _f_join(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("join", params, 0, 1)
        sep = self._static_str(params[0], scope, "join") if params else "''"
        v = self._plain(v)
        if is_empty(v):
            return literal("''", "string", "")
        if v.many:
            return Val(
                f"array_to_string({typed(v, 'str', self.names)}, {sep})",
                ftype="string",
                native=True,
            )
        return Val(f"coalesce({self._typed_single(v, 'str')}, '')", ftype="string", native=True)

    def _string_fn(
        self, v: Val, build: Callable[[str], str], fn: str, ftype: str = "string"
    ) -> Val:
        """Apply a string function to a single value: ``build(x)`` is its SQL."""
        return Val(build(self._str1(v, fn)), ftype=ftype, native=True)

    def _f_upper(self, v: Val, params: list[Node], scope: Scope) -> Val:
        return self._string_fn(v, lambda x: f"upper({x})", "upper")

    def _f_lower(self, v: Val, params: list[Node], scope: Scope) -> Val:
        return self._string_fn(v, lambda x: f"lower({x})", "lower")

    def _f_trim(self, v: Val, params: list[Node], scope: Scope) -> Val:
        return self._string_fn(v, lambda x: f"trim({x})", "trim")

    def _f_length(self, v: Val, params: list[Node], scope: Scope) -> Val:
        return self._string_fn(v, lambda x: f"CAST(length({x}) AS BIGINT)", "length", "integer")

    def _f_toString(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        return self._string_fn(v, lambda x: x, "toString")

    def _f_toInteger(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        return self._string_fn(v, lambda x: f"TRY_CAST({x} AS BIGINT)", "toInteger", "integer")

    def _f_toDecimal(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        return self._string_fn(v, lambda x: f"TRY_CAST({x} AS DOUBLE)", "toDecimal", "decimal")

    def _f_toBoolean(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        return self._string_fn(v, lambda x: f"TRY_CAST({x} AS BOOLEAN)", "toBoolean", "boolean")

    def _string_arg(self, name: str, params: list[Node], scope: Scope) -> str:
        self._arity(name, params, 1)
        return self._str1(self.compile(params[0], scope), name)

    def _f_startsWith(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        arg = self._string_arg("startsWith", params, scope)
        return self._string_fn(v, lambda x: f"starts_with({x}, {arg})", "startsWith", "boolean")

    def _f_endsWith(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        arg = self._string_arg("endsWith", params, scope)
        return self._string_fn(v, lambda x: f"ends_with({x}, {arg})", "endsWith", "boolean")

    def _f_contains(self, v: Val, params: list[Node], scope: Scope) -> Val:
        arg = self._string_arg("contains", params, scope)
        return self._string_fn(v, lambda x: f"contains({x}, {arg})", "contains", "boolean")

    def _f_indexOf(self, v: Val, params: list[Node], scope: Scope) -> Val:  # noqa: N802
        arg = self._string_arg("indexOf", params, scope)
        return self._string_fn(
            v, lambda x: f"CAST(strpos({x}, {arg}) - 1 AS BIGINT)", "indexOf", "integer"
        )

    def _f_matches(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("matches", params, 1)
        pattern = self._static_str(params[0], scope, "matches")
        return self._string_fn(
            v, lambda x: f"regexp_full_match({x}, {pattern})", "matches", "boolean"
        )

    def _f_substring(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("substring", params, 1, 2)
        start = self._static_int(params[0], scope, "substring") + 1
        length = f", {self._static_int(params[1], scope, 'substring')}" if len(params) == 2 else ""
        return self._string_fn(
            v, lambda x: f"nullif(substring({x}, {start}{length}), '')", "substring"
        )

    def _f_replace(self, v: Val, params: list[Node], scope: Scope) -> Val:
        self._arity("replace", params, 2)
        a = self._static_str(params[0], scope, "replace")
        b = self._static_str(params[1], scope, "replace")
        return self._string_fn(v, lambda x: f"replace({x}, {a}, {b})", "replace")

    # -- operators -----------------------------------------------------------------------

    def _common_kind(self, a: Val, b: Val) -> str:
        ka = a.kind if not is_empty(a) else "unknown"
        kb = b.kind if not is_empty(b) else "unknown"
        if ka in _NUMERIC and kb in _NUMERIC:
            return "int" if ka == kb == "int" else "dec"
        if ka == "unknown" and kb != "unknown":
            return kb if kb != "complex" else "str"
        if kb == "unknown" and ka != "unknown":
            return ka if ka != "complex" else "str"
        if ka == kb and ka in ("bool", "str"):
            return ka
        return "str"

    def _typed_single(self, v: Val, kind: str) -> str:
        return typed(v, kind, self.names)

    def _singles(self, a: Val, b: Val, op: str) -> tuple[str, str, str]:
        a, b = self._plain(a), self._plain(b)
        kind = self._common_kind(a, b)
        msg = f"operator {op} on a collection with more than one item"
        sa = single(a, self.names, msg)
        sb = single(b, self.names, msg)
        ta = typed(Val(sa, ftype=a.ftype, native=a.native), kind, self.names)
        tb = typed(Val(sb, ftype=b.ftype, native=b.native), kind, self.names)
        return ta, tb, kind

    def _n_EqualityExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        a = self._plain(self.compile(node["children"][0], scope))
        b = self._plain(self.compile(node["children"][1], scope))
        op = node["terminalNodeText"][0]
        if is_empty(a) or is_empty(b):
            if op in ("~", "!~"):
                both = is_empty(a) and is_empty(b)
                other = b if is_empty(a) else a
                if both:
                    return literal("true" if op == "~" else "false", "boolean", op == "~")
                ex = self._exists_sql(other)
                return Val(f"(NOT {ex})" if op == "~" else ex, ftype="boolean", native=True)
            return empty()
        if op in ("=", "!="):
            if a.many or b.many:
                kind = self._common_kind(a, b)
                la, lb = as_list(a, kind, self.names), as_list(b, kind, self.names)
                x, y = self.names("_q"), self.names("_q")
                body = f"CASE WHEN len({x}) = 0 OR len({y}) = 0 THEN NULL ELSE {x} = {y} END"
                sql = let(la, let(lb, body, y), x)
            else:
                ta, tb, _ = self._singles(a, b, op)
                sql = self._compare(ta, tb, "=", self._temporal(a, b))
            if op == "!=":
                sql = f"(NOT {sql})"
            return Val(sql, ftype="boolean", native=True)
        # Equivalence: case-insensitive for strings; empty ~ empty is true.
        ta, tb, kind = self._singles(a, b, op)
        if kind == "str":
            ta, tb = f"lower(trim({ta}))", f"lower(trim({tb}))"
        sql = (
            f"(CASE WHEN {ta} IS NULL AND {tb} IS NULL THEN true "
            f"WHEN {ta} IS NULL OR {tb} IS NULL THEN false ELSE {ta} = {tb} END)"
        )
        if op == "!~":
            sql = f"(NOT {sql})"
        return Val(sql, ftype="boolean", native=True)

    def _n_InequalityExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        a = self.compile(node["children"][0], scope)
        b = self.compile(node["children"][1], scope)
        op = node["terminalNodeText"][0]
        if is_empty(a) or is_empty(b):
            return empty()
        ta, tb, _ = self._singles(a, b, op)
        return Val(self._compare(ta, tb, op, self._temporal(a, b)), ftype="boolean", native=True)

    def _temporal(self, a: Val, b: Val) -> bool:
        return a.ftype in _TEMPORAL and b.ftype in _TEMPORAL

    def _compare(self, ta: str, tb: str, op: str, temporal: bool) -> str:
        """Compare two single values; dates and times of different precision as FHIRPath does.

        ISO text compares in order at a common precision; when the values agree up to the
        shorter one's precision the result is empty (``@2020 < @2020-05`` is empty).
        """
        if not temporal:
            return f"({ta} {op} {tb})"
        x, y = self.names("_d"), self.names("_d")
        n = f"least(length({x}), length({y}))"
        body = (
            f"CASE WHEN length({x}) = length({y}) THEN {x} {op} {y} "
            f"WHEN left({x}, {n}) = left({y}, {n}) THEN NULL "
            f"ELSE left({x}, {n}) {op} left({y}, {n}) END"
        )
        return "(" + let(ta, let(tb, body, y), x) + ")"

    def _n_AndExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        a = self.to_bool(self.compile(node["children"][0], scope))
        b = self.to_bool(self.compile(node["children"][1], scope))
        return Val(f"({a} AND {b})", ftype="boolean", native=True)

    def _n_OrExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        a = self.to_bool(self.compile(node["children"][0], scope))
        b = self.to_bool(self.compile(node["children"][1], scope))
        if node["terminalNodeText"][0] == "xor":
            return Val(f"({a} <> {b})", ftype="boolean", native=True)
        return Val(f"({a} OR {b})", ftype="boolean", native=True)

    def _n_ImpliesExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        a = self.to_bool(self.compile(node["children"][0], scope))
        b = self.to_bool(self.compile(node["children"][1], scope))
        sql = (
            f"(CASE WHEN {a} IS NULL THEN (CASE WHEN {b} THEN true END) "
            f"WHEN NOT {a} THEN true ELSE {b} END)"
        )
        return Val(sql, ftype="boolean", native=True)

    def _n_PolarityExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        v = self._plain(self.compile(node["children"][0], scope))
        if node["terminalNodeText"][0] == "+":
            return v
        if is_empty(v):
            return empty()
        kind = v.kind if v.kind in _NUMERIC else "dec"
        x = self._typed_single(
            Val(
                single(v, self.names, "unary minus on a collection"), ftype=v.ftype, native=v.native
            ),
            kind,
        )
        static = -v.static if v.has_static and isinstance(v.static, int | float) else None
        return Val(
            f"(-{x})",
            ftype=KIND_FTYPE[kind],
            native=True,
            static=static,
            has_static=static is not None,
        )

    def _n_AdditiveExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        a = self._plain(self.compile(node["children"][0], scope))
        b = self._plain(self.compile(node["children"][1], scope))
        op = node["terminalNodeText"][0]
        if op == "&":
            sa = (
                self._typed_single(
                    Val(single(a, self.names, "& on a collection"), ftype=a.ftype, native=a.native),
                    "str",
                )
                if not is_empty(a)
                else "NULL"
            )
            sb = (
                self._typed_single(
                    Val(single(b, self.names, "& on a collection"), ftype=b.ftype, native=b.native),
                    "str",
                )
                if not is_empty(b)
                else "NULL"
            )
            return Val(f"(coalesce({sa}, '') || coalesce({sb}, ''))", ftype="string", native=True)
        if is_empty(a) or is_empty(b):
            return empty()
        ta, tb, kind = self._singles(a, b, op)
        if kind in _NUMERIC:
            return Val(f"({ta} {op} {tb})", ftype=KIND_FTYPE[kind], native=True)
        if kind == "str" and op == "+":
            return Val(f"({ta} || {tb})", ftype="string", native=True)
        raise UnsupportedError(f"operator {op} on {a.ftype} and {b.ftype}")

    def _n_MultiplicativeExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        a = self.compile(node["children"][0], scope)
        b = self.compile(node["children"][1], scope)
        op = node["terminalNodeText"][0]
        if is_empty(a) or is_empty(b):
            return empty()
        ta, tb, kind = self._singles(a, b, op)
        if kind not in _NUMERIC:
            raise UnsupportedError(f"operator {op} on {a.ftype} and {b.ftype}")
        if op == "*":
            return Val(f"({ta} * {tb})", ftype=KIND_FTYPE[kind], native=True)
        if op == "/":
            return Val(f"(CAST({ta} AS DOUBLE) / nullif({tb}, 0))", ftype="decimal", native=True)
        if op == "div":
            return Val(
                f"CAST(trunc({ta} / nullif({tb}, 0)) AS BIGINT)", ftype="integer", native=True
            )
        return Val(f"({ta} % nullif({tb}, 0))", ftype=KIND_FTYPE[kind], native=True)

    def _n_UnionExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        a = self._plain(self.compile(node["children"][0], scope))
        b = self._plain(self.compile(node["children"][1], scope))
        if is_empty(a):
            a, b = b, a
        if is_empty(b):
            return self._f_distinct(a, [], scope) if not is_empty(a) else empty()
        if a.ftype == b.ftype and a.native == b.native:
            la, lb = (
                (a.sql if a.many else self._text_list(a)),
                (b.sql if b.many else self._text_list(b)),
            )
            return Val(
                self._distinct(f"list_concat({la}, {lb})"),
                many=True,
                ftype=a.ftype,
                native=a.native,
            )
        kind = self._common_kind(a, b)
        la, lb = as_list(a, kind, self.names), as_list(b, kind, self.names)
        return Val(
            self._distinct(f"list_concat({la}, {lb})"),
            many=True,
            ftype=KIND_FTYPE.get(kind),
            native=True,
        )

    def _n_MembershipExpression(self, node: Node, scope: Scope) -> Val:  # noqa: N802
        a = self._plain(self.compile(node["children"][0], scope))
        b = self._plain(self.compile(node["children"][1], scope))
        op = node["terminalNodeText"][0]
        item, coll = (a, b) if op == "in" else (b, a)
        if is_empty(item):
            return empty()
        kind = self._common_kind(item, coll)
        x = typed(
            Val(
                single(item, self.names, f"{op} with more than one item"),
                ftype=item.ftype,
                native=item.native,
            ),
            kind,
            self.names,
        )
        lst = as_list(coll, kind, self.names)
        return Val(
            f"(CASE WHEN {x} IS NULL THEN NULL ELSE list_contains({lst}, {x}) END)",
            ftype="boolean",
            native=True,
        )


def _date_boundary(x: str, high: bool) -> str:
    if not high:
        return (
            f"(CASE length({x}) WHEN 4 THEN {x} || '-01-01' WHEN 7 THEN {x} || '-01' ELSE {x} END)"
        )
    last = f"strftime(last_day(CAST({x} || '-01' AS DATE)), '%Y-%m-%d')"
    return f"(CASE length({x}) WHEN 4 THEN {x} || '-12-31' WHEN 7 THEN {last} ELSE {x} END)"


def _time_fill(t: str, high: bool) -> str:
    """Complete ``hh``, ``hh:mm``, ``hh:mm:ss`` or ``hh:mm:ss.f`` to millisecond precision."""
    sec, minute, frac = ("59", "59", "9") if high else ("00", "00", "0")
    return (
        f"(CASE length({t}) WHEN 2 THEN {t} || ':{minute}:{sec}.{frac * 3}' "
        f"WHEN 5 THEN {t} || ':{sec}.{frac * 3}' WHEN 8 THEN {t} || '.{frac * 3}' "
        f"ELSE rpad({t}, CAST(greatest(length({t}), 12) AS INTEGER), '{frac}') END)"
    )


def _time_boundary(x: str, high: bool) -> str:
    return _time_fill(x, high)


def _datetime_boundary(x: str, high: bool) -> str:
    tz_default = "-12:00" if high else "+14:00"
    date_part = _date_boundary(f"left({x}, 10)", high)
    tz = f"regexp_extract({x}, '(Z|[+-][0-9][0-9]:[0-9][0-9])$', 1)"
    time_part = f"regexp_replace(substr({x}, 12), '(Z|[+-][0-9][0-9]:[0-9][0-9])$', '')"
    full = (
        f"({date_part} || 'T' || {_time_fill(time_part, high)} || "
        f"coalesce(nullif({tz}, ''), '{tz_default}'))"
    )
    day_start = "T23:59:59.999" if high else "T00:00:00.000"
    short = f"({date_part} || '{day_start}{tz_default}')"
    return f"(CASE WHEN length({x}) <= 10 THEN {short} ELSE {full} END)"

"""Compile a ViewDefinition to one DuckDB SQL query.

Shape of the generated query::

    WITH _src AS (            -- one row per resource of the view's type
      SELECT resource AS _res,
             json_extract_string(resource, ['$.id', '$.code.coding[0].code', ...]) AS _h
      FROM resources WHERE resource_type = 'Observation'),
    _flt AS (SELECT * FROM _src WHERE <where paths>),
    _b  AS (SELECT *, <one-row columns> FROM _flt),
    _u1 AS (SELECT *, unnest(<rows of a forEach/unionAll/repeat>) AS _u1 FROM _b)
    SELECT <columns in view order> FROM _u1

- Every JSON path the view reads from the resource is *hoisted* into ``_h``: one
  ``json_extract_string`` call with a list of paths parses each resource's JSON once.
  ``forEach`` items get the same treatment (one parse per item).
- Columns that give one row per resource are plain expressions. ``forEach``,
  ``forEachOrNull``, ``repeat`` and ``unionAll`` build, per resource, a DuckDB list of
  row structs with list lambdas; the top level ``unnest``s those lists (chained
  ``unnest``s are the cross join of sibling selects).
- ``repeat`` walks the tree breadth first with ``list_reduce`` (at most
  :data:`REPEAT_DEPTH` levels) and sorts the nodes by their index path, which is depth
  first order. Deeper data raises a marked error, and :func:`~cardiobox.store.views.run.run_view`
  then evaluates the view with the fallback.

A construct the FHIRPath compiler does not translate (:class:`UnsupportedError`) makes the
whole view use the fhirpathpy fallback (:mod:`cardiobox.store.views.fallback`);
``CompiledView.uses_fallback`` says so and ``fallback_reason`` says why. Those constructs:

- a FHIRPath function outside the subset of :mod:`cardiobox.store.views.fhirpath_sql`
  (``replaceMatches``, ``repeat()``, ``aggregate``, ``children``, ``descendants``,
  ``toQuantity``, date arithmetic...);
- quantity literals (``5 'mg'``), ``$index``, ``$total``;
- an indexer, ``skip``/``take``/``substring`` count, ``extension()`` URL, ``join``
  separator, ``matches`` pattern or ``replace`` argument that is not a constant;
- ``iif`` on a collection or returning collections;
- ``ofType``/``is``/``as`` on a value of unknown type (except a resource type, checked on
  ``resourceType``), ``lowBoundary``/``highBoundary`` on a value of unknown type;
- at run time, a ``repeat`` deeper than :data:`REPEAT_DEPTH` levels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from cardiobox.duck import sql_str
from cardiobox.errors import Location, ViewDefinitionError
from cardiobox.store.views import schema
from cardiobox.store.views.fhirpath import parse
from cardiobox.store.views.fhirpath_sql import ExprCompiler, Scope
from cardiobox.store.views.model import Column, Select, ViewDefinition, load_view
from cardiobox.store.views.sqlvalue import (
    ERROR_MARK,
    KIND_SQL,
    Hoist,
    Names,
    Nav,
    UnsupportedError,
    Val,
    as_list,
    is_empty,
    let,
    single,
    typed,
)
from cardiobox.store.views.types import column_kind, sql_type

#: Levels ``repeat`` follows in SQL before handing the view to the fallback.
REPEAT_DEPTH = 64
REPEAT_TOO_DEEP = f"{ERROR_MARK} repeat deeper than {REPEAT_DEPTH} levels"


class OutputColumn(NamedTuple):
    """A column of the view's output: name and DuckDB type (``VARCHAR``, ``BIGINT[]``...)."""

    name: str
    type: str


@dataclass(frozen=True)
class CompiledView:
    """A ViewDefinition compiled for DuckDB.

    Parameters
    ----------
    view : ViewDefinition
        The validated view.
    sql : str
        The query. With the fallback, the query that reads the view's resources.
    columns : tuple of OutputColumn
        Output columns in order, as (name, DuckDB type).
    uses_fallback : bool
        Whether rows are computed by the per-resource fhirpathpy fallback.
    fallback_reason : str or None
        The construct that needs the fallback.
    source : str
        The relation the view reads.
    column_info : dict
        The view's columns by name.
    infer_types : bool
        With the fallback: type undeclared columns from their values (the SQL compiler,
        which knows their FHIR types, could not compile the view).
    """

    view: ViewDefinition
    sql: str
    columns: tuple[OutputColumn, ...]
    uses_fallback: bool = False
    fallback_reason: str | None = None
    source: str = "resources"
    column_info: dict[str, Column] = field(default_factory=dict, repr=False, compare=False)
    infer_types: bool = False


@dataclass
class _Part:
    """Rows of a select: one row (``single``: name → SQL) or a list of row structs."""

    names: list[str]
    types: dict[str, str]
    single: dict[str, str] | None = None
    rows: str | None = None


def quote_ident(name: str) -> str:
    """Quote a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def quote_relation(source: str) -> str:
    """Quote a table or view name (``schema.table`` allowed)."""
    return ".".join(quote_ident(p) for p in source.split("."))


def _struct(values: dict[str, str], order: list[str]) -> str:
    return "{" + ", ".join(f"{sql_str(n)}: {values[n]}" for n in order) + "}"


def _field(var: str, name: str) -> str:
    return f"{var}.{quote_ident(name)}"


class _ViewCompiler:
    def __init__(self, view: ViewDefinition) -> None:
        self.view = view
        self.names = Names()
        self.expr = ExprCompiler(self.names)
        self.columns: dict[str, Column] = {c.name: c for c in view.iter_columns()}
        self._tokens = 0

    # -- helpers -------------------------------------------------------------------------

    def _error(self, element: str, rule: str, message: str) -> ViewDefinitionError:
        return ViewDefinitionError(message, rule=rule, location=Location(element=element))

    def _compile_path(self, path: str, scope: Scope) -> Val:
        return self.expr.compile(parse(path), scope)

    def _text_items(self, v: Val) -> tuple[str, str]:
        """Return a value as a list of items to iterate: (SQL, SQL item type)."""
        v = self.expr._plain(v)
        if v.native and v.kind in ("bool", "int", "dec", "str"):
            return as_list(v, v.kind, self.names), KIND_SQL[v.kind]
        if v.many:
            return v.sql, "VARCHAR"
        if is_empty(v):
            return "[]::VARCHAR[]", "VARCHAR"
        z = self.names("_z")
        return f"list_filter([{v.sql}], lambda {z}: {z} IS NOT NULL)", "VARCHAR"

    # -- columns -------------------------------------------------------------------------

    def column(self, col: Column, scope: Scope) -> tuple[str, str]:
        """Compile one column: (SQL, DuckDB type)."""
        v = self.expr._plain(self._compile_path(col.path, scope))
        kind = column_kind(col.type, v.kind)
        base_type = KIND_SQL[kind]
        if col.collection:
            return as_list(v, kind, self.names), base_type + "[]"
        if v.many and col.collection is False:
            raise self._error(
                f"{col.element}.path",
                "collection",
                f"column {col.name!r} has collection: false but {col.path!r} can return "
                "several values; set collection: true or pick one (first(), [0], where())",
            )
        if is_empty(v):
            return f"CAST(NULL AS {base_type})", base_type
        message = (
            f"{ERROR_MARK} column {col.name!r} ({col.element}.path {col.path!r}) returned "
            "more than one value; set collection: true or pick one with first()"
        )
        x = single(v, self.names, message)
        return typed(Val(x, ftype=v.ftype, native=v.native), kind, self.names), base_type

    # -- selects -------------------------------------------------------------------------

    def parts(self, sel: Select, scope: Scope) -> list[_Part]:
        """Compile a select to row sets, in column order (the caller cross-joins them)."""
        if sel.for_each is not None or sel.for_each_or_null is not None or sel.repeat:
            return [self._iterate(sel, scope)]
        out: list[_Part] = []
        if sel.columns:
            values: dict[str, str] = {}
            types: dict[str, str] = {}
            for col in sel.columns:
                values[col.name], types[col.name] = self.column(col, scope)
            out.append(_Part([c.name for c in sel.columns], types, single=values))
        for sub in sel.selects:
            out.extend(self.parts(sub, scope))
        if sel.union_all:
            out.append(self._union(sel, scope))
        return out

    def combine(self, parts: list[_Part]) -> _Part:
        """Cross join row sets into one (inside a lambda: a list of structs)."""
        names = [n for p in parts for n in p.names]
        types = {k: v for p in parts for k, v in p.types.items()}
        singles: dict[str, str] = {}
        for p in parts:
            if p.single is not None:
                singles.update(p.single)
        multis = [p for p in parts if p.rows is not None]
        if not multis:
            return _Part(names, types, single=singles)
        rows, cols = multis[0].rows, list(multis[0].names)
        assert rows is not None
        for m in multis[1:]:
            a, b = self.names("_a"), self.names("_b")
            values = {n: _field(a, n) for n in cols} | {n: _field(b, n) for n in m.names}
            order = cols + m.names
            rows = (
                f"flatten(list_transform({rows}, lambda {a}: "
                f"list_transform({m.rows}, lambda {b}: {_struct(values, order)})))"
            )
            cols = order
        if singles or cols != names:
            r = self.names("_r")
            values = {n: _field(r, n) for n in cols} | singles
            rows = f"list_transform({rows}, lambda {r}: {_struct(values, names)})"
        return _Part(names, types, rows=rows)

    def _as_rows(self, part: _Part, types: dict[str, str]) -> str:
        """Return a part as a list of structs with exactly ``types`` (casting as needed)."""
        if part.single is not None:
            values = {
                n: part.single[n]
                if part.types[n] == types[n]
                else f"CAST({part.single[n]} AS {types[n]})"
                for n in part.names
            }
            return "[" + _struct(values, part.names) + "]"
        assert part.rows is not None
        if all(part.types[n] == types[n] for n in part.names):
            return part.rows
        r = self.names("_r")
        values = {
            n: _field(r, n) if part.types[n] == types[n] else f"CAST({_field(r, n)} AS {types[n]})"
            for n in part.names
        }
        return f"list_transform({part.rows}, lambda {r}: {_struct(values, part.names)})"

    def _union(self, sel: Select, scope: Scope) -> _Part:
        branches = [self.combine(self.parts(b, scope)) for b in sel.union_all]
        names = branches[0].names
        types: dict[str, str] = {}
        for n in names:
            seen = {b.types[n] for b in branches}
            if len(seen) == 1:
                types[n] = seen.pop()
            elif seen <= {"BIGINT", "DOUBLE"}:
                types[n] = "DOUBLE"
            elif all(t.endswith("[]") for t in seen):
                types[n] = "VARCHAR[]"
            else:
                types[n] = "VARCHAR"
        lists = [self._as_rows(b, types) for b in branches]
        rows = lists[0] if len(lists) == 1 else "list_concat(" + ", ".join(lists) + ")"
        return _Part(list(names), types, rows=rows)

    def _token(self) -> tuple[str, str]:
        self._tokens += 1
        return f"\x01E{self._tokens}\x01", f"\x01H{self._tokens}\x01"

    def _items_scope(
        self, scope: Scope, ftype: str | None, index: str
    ) -> tuple[Scope, Hoist | None, str]:
        """Scope for the items of an iteration; paths read from an item are hoisted."""
        tok_e, tok_h = self._token()
        hoist = Hoist(source=tok_e, name=tok_h) if schema.kind_of(ftype) == "complex" else None
        this = Val(None, ftype=ftype, nav=Nav(tok_e, False, hoist, ()), names=self.names)
        return replace(scope, this=this, row_index=index), hoist, tok_e

    def _iterate(self, sel: Select, scope: Scope) -> _Part:
        if sel.repeat:
            items, ftype = self._repeat(sel.repeat, scope, sel.element)
            item_type = "VARCHAR"
        else:
            path = sel.for_each if sel.for_each is not None else sel.for_each_or_null
            assert path is not None
            v = self._compile_path(path, scope)
            if v.choices is not None:
                v = self.expr._plain(v)
            items, item_type = self._text_items(v)
            ftype = v.ftype
            if sel.for_each_or_null is not None:
                items = f"coalesce(nullif({items}, []), [NULL::{item_type}])"
        c, i = self.names("_c"), self.names("_i")
        inner_scope, hoist, tok_e = self._items_scope(scope, ftype, f"CAST({i} - 1 AS BIGINT)")
        inner_sel = replace(sel, for_each=None, for_each_or_null=None, repeat=None)
        inner = self.combine(self.parts(inner_sel, inner_scope))
        if hoist is not None and hoist.paths:
            e = self.names("_e")
            extraction = Hoist(e, "", list(hoist.paths)).extraction()
            items = f"list_transform({items}, lambda {e}: {{'v': {e}, 'h': {extraction}}})"
            subst = {tok_e: f"{c}.v", hoist.name: f"{c}.h"}
        else:
            subst = {tok_e: c}

        def fill(sql: str) -> str:
            for token, value in subst.items():
                sql = sql.replace(token, value)
            return sql

        if inner.single is not None:
            body = _struct({n: fill(s) for n, s in inner.single.items()}, inner.names)
            rows = f"list_transform({items}, lambda {c}, {i}: {body})"
        else:
            assert inner.rows is not None
            rows = f"flatten(list_transform({items}, lambda {c}, {i}: {fill(inner.rows)}))"
        return _Part(inner.names, inner.types, rows=rows)

    def _repeat(self, paths: tuple[str, ...], scope: Scope, element: str) -> tuple[str, str | None]:
        """Nodes reached by applying ``paths`` recursively, depth first (SQL list, type)."""
        first = [self._compile_path(p, scope) for p in paths]
        ftypes = {v.ftype for v in first if not is_empty(v)}
        ftype = ftypes.pop() if len(ftypes) == 1 else None

        def children(base: str) -> str:
            node = Val(None, ftype=ftype, nav=Nav(base, False, None, ()), names=self.names)
            node_scope = replace(scope, this=node)
            lists = [self._text_items(self._compile_path(p, node_scope))[0] for p in paths]
            return lists[0] if len(lists) == 1 else "list_concat(" + ", ".join(lists) + ")"

        top = [self._text_items(v)[0] for v in first]
        top_sql = top[0] if len(top) == 1 else "list_concat(" + ", ".join(top) + ")"
        c, i, st, p, x, r, s = (self.names(n) for n in ("_c", "_i", "_st", "_p", "_x", "_r", "_s"))
        c2, i2 = self.names("_c"), self.names("_i")
        node_type = "STRUCT(k BIGINT[], n VARCHAR)[]"
        init = (
            f"{{'f': list_transform({top_sql}, lambda {c}, {i}: {{'k': [{i}], 'n': {c}}}), "
            f"'a': []::{node_type}}}"
        )
        step = (
            f"{{'f': flatten(list_transform({st}.f, lambda {p}: list_transform("
            f"{children(f'{p}.n')}, lambda {c2}, {i2}: {{'k': list_append({p}.k, {i2}), "
            f"'n': {c2}}}))), 'a': list_concat({st}.a, {st}.f)}}"
        )
        walk = f"list_reduce(range({REPEAT_DEPTH}), lambda {st}, {x}: {step}, {init})"
        body = (
            f"CASE WHEN len({r}.f) > 0 THEN error({sql_str(REPEAT_TOO_DEEP + ' at ' + element)}) "
            f"ELSE list_transform(list_sort({r}.a), lambda {s}: {s}.n) END"
        )
        return let(walk, body, r), ftype

    # -- the view ------------------------------------------------------------------------

    def where_sql(self, scope: Scope) -> list[str]:
        """Compile the view's ``where`` paths to SQL conditions."""
        out: list[str] = []
        for w in self.view.where:
            v = self.expr._plain(self._compile_path(w.path, scope))
            kind = v.kind
            if kind == "bool" or is_empty(v):
                out.append(self.expr.to_bool(v))
                continue
            if kind != "unknown" or v.native:
                raise self._error(
                    f"{w.element}.path",
                    "where-boolean",
                    f"where path {w.path!r} must evaluate to a boolean, but it gives "
                    f"{v.ftype or kind} values",
                )
            x = single(v, self.names, f"{ERROR_MARK} {w.element}.path returned several values")
            y = self.names("_w")
            message = sql_str(f"{ERROR_MARK} {w.element}.path {w.path!r} is not boolean")
            check = (
                f"CASE WHEN {y} IN ('true', 'false') THEN {y} = 'true' WHEN {y} IS NULL THEN NULL "
                f"ELSE error({message}) END"
            )
            out.append(let(x, check, y))
        return out

    def compile(self, source: str) -> CompiledView:
        view = self.view
        hoist = Hoist(source="resource", name="_h")
        root = Val(None, ftype=view.resource, nav=Nav("_res", False, hoist, ()), names=self.names)
        scope = Scope(root, root, "CAST(0 AS BIGINT)", view.constants, self.names)
        conditions = self.where_sql(scope)
        parts = self.parts(view.select, scope)
        names = [n for p in parts for n in p.names]
        types = {k: v for p in parts for k, v in p.types.items()}
        singles: dict[str, str] = {}
        for p in parts:
            if p.single is not None:
                singles.update(p.single)
        multis = [p for p in parts if p.rows is not None]

        src_cols = ["resource AS _res"]
        if hoist.paths:
            src_cols.append(f"{hoist.extraction()} AS _h")
        ctes = [
            f"_src AS (SELECT {', '.join(src_cols)} FROM {quote_relation(source)} "
            f"WHERE resource_type = {sql_str(view.resource)})"
        ]
        last = "_src"
        if conditions:
            ctes.append(f"_flt AS (SELECT * FROM _src WHERE {' AND '.join(conditions)})")
            last = "_flt"
        if not multis:
            select = ", ".join(f"{singles[n]} AS {quote_ident(n)}" for n in names)
            sql = "WITH " + ",\n".join(ctes) + f"\nSELECT {select} FROM {last}"
        else:
            if singles:
                cols = ", ".join(f"{s} AS {quote_ident('_s_' + n)}" for n, s in singles.items())
                ctes.append(f"_b AS (SELECT *, {cols} FROM {last})")
                last = "_b"
            owner: dict[str, str] = {n: quote_ident("_s_" + n) for n in singles}
            for k, m in enumerate(multis, start=1):
                alias = f"_u{k}"
                ctes.append(f"{alias} AS (SELECT *, unnest({m.rows}) AS {alias} FROM {last})")
                last = alias
                for n in m.names:
                    owner[n] = _field(alias, n)
            select = ", ".join(f"{owner[n]} AS {quote_ident(n)}" for n in names)
            sql = "WITH " + ",\n".join(ctes) + f"\nSELECT {select} FROM {last}"
        columns = tuple(OutputColumn(n, types[n]) for n in names)
        return CompiledView(view, sql, columns, source=source, column_info=self.columns)


def fallback_columns(view: ViewDefinition) -> tuple[OutputColumn, ...]:
    """Output columns of a view evaluated by the fallback (types from declarations)."""
    out: list[OutputColumn] = []
    for col in view.iter_columns():
        base = sql_type(col.type)
        out.append(OutputColumn(col.name, base + "[]" if col.collection else base))
    return tuple(out)


def compile_view(
    view: ViewDefinition | Mapping[str, Any] | str | Path,
    source: str = "resources",
    *,
    fallback: bool = False,
) -> CompiledView:
    """Compile a ViewDefinition to DuckDB SQL.

    Parameters
    ----------
    view : ViewDefinition, Mapping, str or Path
        The view (validated with :func:`~cardiobox.store.views.model.load_view`).
    source : str
        Table or view with columns ``resource_type``, ``id`` and ``resource`` (JSON).
    fallback : bool
        Evaluate with the fhirpathpy fallback even when SQL could (to check one against
        the other, or to measure the difference). Default ``False``.

    Returns
    -------
    CompiledView
        With ``.sql``, ``.columns`` and ``.uses_fallback``.

    Raises
    ------
    ViewDefinitionError
        When the view is invalid (including a non-boolean ``where`` and
        ``collection: false`` on a path that can repeat).
    """
    vd = load_view(view)
    try:
        compiled = _ViewCompiler(vd).compile(source)
    except UnsupportedError as exc:
        # Column types come from the declarations; undeclared ones from the values.
        return _fallback(vd, source, str(exc), fallback_columns(vd), infer_types=True)
    if fallback:
        return _fallback(vd, source, "fallback requested", compiled.columns, infer_types=False)
    return compiled


def _fallback(
    vd: ViewDefinition,
    source: str,
    reason: str,
    columns: tuple[OutputColumn, ...],
    infer_types: bool,
) -> CompiledView:
    sql = (
        f"SELECT resource FROM {quote_relation(source)} "
        f"WHERE resource_type = {sql_str(vd.resource)}"
    )
    return CompiledView(
        vd,
        sql,
        columns,
        uses_fallback=True,
        fallback_reason=reason,
        source=source,
        column_info={c.name: c for c in vd.iter_columns()},
        infer_types=infer_types,
    )

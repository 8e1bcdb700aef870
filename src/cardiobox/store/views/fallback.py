"""The fallback: evaluate a ViewDefinition resource by resource with fhirpathpy.

The SQL compiler covers the FHIRPath subset listed in
:mod:`cardiobox.store.views.fhirpath_sql`. A view that uses anything else is evaluated here
instead, transparently (the list is in :mod:`cardiobox.store.views.compiler`: functions
outside the subset, quantity literals, ``$index``/``$total``, non-constant indexers and
function arguments where a constant is needed, ``iif`` over collections, ``ofType`` or the
boundary functions on values of unknown type, and a ``repeat`` deeper than the SQL walk).
:func:`~cardiobox.store.views.run.run_view` reads the view's resources from DuckDB, runs this
evaluator and returns an Arrow table of the same shape.

This follows the specification's reference algorithm: ``where`` filters (a non-boolean
result is an error), then ``select`` as the cross join of columns, nested selects and
``unionAll``; ``forEach``/``forEachOrNull``/``repeat`` iterate, with ``%rowIndex`` bound
to the item's 0-based position. FHIRPath functions the specification adds
(``getResourceKey``, ``getReferenceKey``, ``lowBoundary``, ``highBoundary``) are provided
to fhirpathpy as user functions. Values are converted to the same types the SQL path
produces (see :mod:`cardiobox.store.views.types`).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

import fhirpathpy.engine as _engine
import fhirpathpy.engine.util as _util
import orjson
from fhirpathpy.engine.invocations.constants import constants as _constants
from fhirpathpy.engine.nodes import FP_Type, ResourceNode
from fhirpathpy.models import models

from cardiobox.errors import Location, ViewDefinitionError
from cardiobox.store.views.fhirpath import parse
from cardiobox.store.views.fhirpath_sql import REFERENCE_PATTERN
from cardiobox.store.views.model import Column, Select, ViewDefinition
from cardiobox.store.views.types import column_kind

# fhirpathpy's engine has no type hints; handle its functions as Any.
_do_eval: Any = _engine.do_eval
_arraify: Any = _util.arraify
_get_data: Any = _util.get_data
_create_node: Any = ResourceNode.create_node
_constants_state: Any = _constants
_REF = re.compile(REFERENCE_PATTERN)
_MODEL = models["r5"]
Row = dict[str, Any]


def _absent(value: Any) -> bool:
    # None, or a primitive's extension-only sibling ({"extension": [...]}).
    return value is None or (isinstance(value, Mapping) and list(value) == ["extension"])


def _plain(value: Any) -> Any:
    data = _get_data(value)
    if isinstance(data, ResourceNode):
        return data.data
    return data


def _items(inputs: list[Any]) -> list[tuple[Any, str | None]]:
    """(plain value, FHIR type name) of each input node."""
    out = []
    for item in inputs:
        path = item.path if isinstance(item, ResourceNode) else None
        out.append((_plain(item), path.rsplit(".", 1)[-1] if isinstance(path, str) else None))
    return out


def _reference_key(ctx: Any, inputs: list[Any], rtype: Any = None) -> list[Any]:
    wanted = getattr(rtype, "name", rtype)
    out = []
    for item, _ in _items(inputs):
        ref = item.get("reference") if isinstance(item, Mapping) else None
        if not isinstance(ref, str):
            continue
        m = _REF.search(ref)
        if m and (wanted is None or m.group(1) == wanted):
            out.append(m.group(2))
    return out


def _resource_key(ctx: Any, inputs: list[Any]) -> list[Any]:
    return [i["id"] for i, _ in _items(inputs) if isinstance(i, Mapping) and "id" in i]


def _join(ctx: Any, inputs: list[Any], sep: Any = None) -> list[Any]:
    # fhirpathpy returns nothing for an empty input; the specification returns ''.
    return [("" if not sep else str(sep)).join(str(v) for v, _ in _items(inputs))]


def _boundary(value: Any, ftype: str | None, high: bool) -> Any:
    if isinstance(value, FP_Type):
        value = str(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        text = str(value)
        prec = len(text.split(".", 1)[1]) if "." in text else 0
        delta = Decimal(5) / Decimal(10) ** (prec + 1)
        return float(Decimal(text) + (delta if high else -delta))
    text = str(value)
    if ftype == "time" or re.fullmatch(r"\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?", text):
        return _time_boundary(text, high)
    m = re.fullmatch(r"(\d{4}(?:-\d{2}(?:-\d{2})?)?)(?:T([\d:.]+))?(Z|[+-]\d{2}:\d{2})?", text)
    if not m:
        return None
    date, time, tz = m.groups()
    day = _date_boundary(date, high)
    if ftype == "date" or (ftype is None and time is None and tz is None):
        return day
    return f"{day}T{_time_boundary(time or '', high)}{tz or ('-12:00' if high else '+14:00')}"


def _date_boundary(text: str, high: bool) -> str:
    if len(text) == 4:
        return text + ("-12-31" if high else "-01-01")
    if len(text) == 7:
        if not high:
            return text + "-01"
        year, month = int(text[:4]), int(text[5:7])
        return f"{text}-{calendar.monthrange(year, month)[1]:02d}"
    return text


def _time_boundary(text: str, high: bool) -> str:
    fill = (
        {2: ":59:59.999", 5: ":59.999", 8: ".999"}
        if high
        else {2: ":00:00.000", 5: ":00.000", 8: ".000"}
    )
    if not text:
        return "23:59:59.999" if high else "00:00:00.000"
    if len(text) in fill:
        return text + fill[len(text)]
    return text.ljust(12, "9" if high else "0")


def _boundaries(high: bool) -> Any:
    def fn(ctx: Any, inputs: list[Any]) -> list[Any]:
        found = (_boundary(v, t, high) for v, t in _items(inputs))
        return [b for b in found if b is not None]

    return fn


# Called with fhirpathpy's context and the raw input nodes (their path is the FHIR type).
_FUNCTIONS: dict[str, Any] = {
    "getResourceKey": {"fn": _resource_key, "arity": {0: []}},
    "getReferenceKey": {"fn": _reference_key, "arity": {0: [], 1: ["TypeSpecifier"]}},
    "lowBoundary": {"fn": _boundaries(False), "arity": {0: []}},
    "highBoundary": {"fn": _boundaries(True), "arity": {0: []}},
    "join": {"fn": _join, "arity": {0: [], 1: ["String"]}},
}


def _apply(node: Any, parsed: dict[str, Any], env: dict[str, Any]) -> list[Any]:
    """Evaluate like fhirpathpy's ``apply_parsed_path``, with raw results and functions."""
    _constants_state.reset()
    root = _arraify(node)
    variables = {
        "context": node,
        "ucum": "http://unitsofmeasure.org",
        "sct": "http://snomed.info/sct",
        "loinc": "http://loinc.org",
    }
    variables.update(env)
    ctx = {"dataRoot": root, "vars": variables, "model": _MODEL, "userInvocationTable": _FUNCTIONS}
    result: list[Any] = _arraify(_do_eval(ctx, root, parsed["children"][0]))
    return result


@lru_cache(maxsize=1024)
def _parsed(path: str) -> dict[str, Any]:
    # fhirpathpy reads ``$this`` from its context only inside a function; wrapping the
    # expression in select() gives it a focus at the top level too.
    text = f"select({path})" if "$this" in path else path
    parse(text)  # strict syntax check (fhirpathpy's own parser is lenient)
    import fhirpathpy.parser as fp_parser

    fp_parse: Any = fp_parser.parse
    parsed: dict[str, Any] = fp_parse(text)
    return parsed


class _Evaluator:
    def __init__(self, view: ViewDefinition) -> None:
        self.view = view
        self.env: dict[str, Any] = {}
        for const in view.constants.values():
            value = const.value
            if const.type == "decimal":
                value = Decimal(str(value))
            self.env[const.name] = value

    def eval(self, node: Any, path: str, resource: Mapping[str, Any], index: int) -> list[Any]:
        if node is None:
            return []
        env = dict(self.env)
        env.update({"rowIndex": index, "resource": resource, "rootResource": resource})
        try:
            result = _apply(node, _parsed(path), env)
        except ViewDefinitionError:
            raise
        except Exception as exc:
            raise ViewDefinitionError(
                f"cannot evaluate {path!r}: {exc}", rule="fhirpath-eval"
            ) from exc
        return [r for r in result if not _absent(_plain(r))]

    def rows(self, resource: Mapping[str, Any]) -> list[Row]:
        root = _create_node(resource, resource.get("resourceType"))
        for w in self.view.where:
            got = [_plain(v) for v in self.eval(root, w.path, resource, 0)]
            if len(got) > 1 or any(not isinstance(g, bool) for g in got):
                raise ViewDefinitionError(
                    f"where path {w.path!r} must evaluate to a boolean, got {got!r}",
                    rule="where-boolean",
                    location=Location(element=f"{w.element}.path"),
                )
            if got != [True]:
                return []
        return self.select(self.view.select, root, resource, 0)

    def select(self, sel: Select, node: Any, resource: Mapping[str, Any], index: int) -> list[Row]:
        if sel.for_each is not None or sel.for_each_or_null is not None or sel.repeat:
            if sel.repeat:
                items = self.repeat(sel.repeat, node, resource, index)
            else:
                path = sel.for_each if sel.for_each is not None else sel.for_each_or_null
                assert path is not None
                items = self.eval(node, path, resource, index)
            if not items and sel.for_each_or_null is not None:
                items = [{}]  # the null row: paths give nothing, %rowIndex is 0
            inner = Select(sel.columns, sel.selects, sel.union_all, None, None, None, sel.element)
            out: list[Row] = []
            for i, item in enumerate(items):
                out.extend(self.select(inner, item, resource, i))
            return out
        parts: list[list[Row]] = []
        if sel.columns:
            parts.append([{c.name: self.column(c, node, resource, index) for c in sel.columns}])
        for sub in sel.selects:
            parts.append(self.select(sub, node, resource, index))
        if sel.union_all:
            union: list[Row] = []
            for branch in sel.union_all:
                union.extend(self.select(branch, node, resource, index))
            parts.append(union)
        rows: list[Row] = [{}]
        for part in parts:
            rows = [{**a, **b} for a in rows for b in part]
        return rows

    def repeat(
        self, paths: tuple[str, ...], node: Any, resource: Mapping[str, Any], index: int
    ) -> list[Any]:
        out: list[Any] = []

        def walk(current: Any) -> None:
            for path in paths:
                for child in self.eval(current, path, resource, index):
                    out.append(child)
                    walk(child)

        walk(node)
        return out

    def column(self, col: Column, node: Any, resource: Mapping[str, Any], index: int) -> Any:
        values = [_convert(_plain(v), col) for v in self.eval(node, col.path, resource, index)]
        if col.collection:
            return values
        if len(values) > 1:
            raise ViewDefinitionError(
                f"column {col.name!r} ({col.path!r}) returned more than one value; set "
                "collection: true or pick one with first()",
                rule="collection",
                location=Location(element=f"{col.element}.path"),
            )
        return values[0] if values else None


def _convert(value: Any, col: Column) -> Any:
    """Convert a fhirpathpy value to what the SQL path outputs."""
    kind = column_kind(col.type, "unknown")
    if isinstance(value, FP_Type):
        value = str(value)
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind == "int":
        return int(value)
    if kind == "dec":
        return float(value)
    if col.type is None and isinstance(value, bool | int | float | Decimal):
        return float(value) if isinstance(value, Decimal) else value
    if isinstance(value, Mapping | list):
        return orjson.dumps(value, default=str).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal | float):
        return str(value)
    return str(value)


def evaluate_view(view: ViewDefinition, resources: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Evaluate a view over resources, one resource at a time, with fhirpathpy.

    Parameters
    ----------
    view : ViewDefinition
        The validated view.
    resources : iterable of Mapping
        FHIR resources as parsed JSON; resources of other types are skipped.

    Returns
    -------
    list of dict
        One dict per output row, keyed by column name.

    Raises
    ------
    ViewDefinitionError
        When a ``where`` is not boolean, a single-valued column gets several values, or a
        path cannot be evaluated.
    """
    ev = _Evaluator(view)
    names = view.column_names
    out: list[Row] = []
    for resource in resources:
        if resource.get("resourceType") != view.resource:
            continue
        for row in ev.rows(resource):
            out.append({n: row.get(n) for n in names})
    return out


__all__ = ["evaluate_view"]

"""Run a compiled view on a DuckDB connection and return an Arrow table."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from cardiobox.duck import sql_str
from cardiobox.errors import InputError, Location, ViewDefinitionError
from cardiobox.store.views.compiler import (
    REPEAT_TOO_DEEP,
    CompiledView,
    OutputColumn,
    compile_view,
    quote_relation,
)
from cardiobox.store.views.fallback import evaluate_view
from cardiobox.store.views.model import ViewDefinition
from cardiobox.store.views.sqlvalue import ERROR_MARK
from cardiobox.store.views.types import arrow_type


def _infer(values: list[Any], declared: str) -> str:
    """DuckDB type for a fallback column without a declared type, from its values."""
    items = [v for v in values if v is not None]
    if declared.endswith("[]"):
        items = [x for v in items for x in v if x is not None]
    base = "VARCHAR"
    if items and all(isinstance(v, bool) for v in items):
        base = "BOOLEAN"
    elif items and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        base = "BIGINT"
    elif items and all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
        base = "DOUBLE"
    return base + "[]" if declared.endswith("[]") else base


def _coerce(value: Any, base: str) -> Any:
    """A fallback value in the Python type of DuckDB type ``base`` (as the SQL gives it)."""
    if value is None:
        return None
    if isinstance(value, list):
        return [_coerce(v, base) for v in value]
    if base == "BOOLEAN":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if base == "BIGINT" and not isinstance(value, bool):
        return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if base == "DOUBLE" and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def run_fallback(con: duckdb.DuckDBPyConnection, compiled: CompiledView) -> pa.Table:
    """Evaluate a view with the fhirpathpy fallback over the resources in ``con``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection holding the view's source relation.
    compiled : CompiledView
        The compiled view (its ``sql`` reads the resources when ``uses_fallback``).

    Returns
    -------
    pyarrow.Table
    """
    source = (
        f"SELECT resource FROM {quote_relation(compiled.source)} "
        f"WHERE resource_type = {sql_str(compiled.view.resource)}"
    )
    resources = (orjson.loads(r[0]) for r in con.execute(source).fetchall())
    rows = evaluate_view(compiled.view, resources)
    fields = []
    arrays = []
    for col in compiled.columns:
        values = [row[col.name] for row in rows]
        dtype = col.type
        info = compiled.column_info.get(col.name)
        if compiled.infer_types and info is not None and info.type is None:
            dtype = _infer(values, col.type)
        values = [_coerce(v, dtype.removesuffix("[]")) for v in values]
        fields.append(pa.field(col.name, arrow_type(dtype)))
        arrays.append(pa.array(values, type=arrow_type(dtype)))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _to_arrow(rel: duckdb.DuckDBPyRelation) -> pa.Table:
    # DuckDB 2 names it to_arrow_table (fetch_arrow_table is deprecated); 1.x has the latter.
    fetch = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    table: pa.Table = fetch()
    return table


def _runtime_error(exc: duckdb.Error) -> ViewDefinitionError:
    text = str(exc)
    message = text.split(ERROR_MARK, 1)[1].strip()
    return ViewDefinitionError(message, rule="runtime")


def run_view(
    con: duckdb.DuckDBPyConnection,
    view: CompiledView | ViewDefinition | Mapping[str, Any] | str | Path,
    source: str = "resources",
) -> pa.Table:
    """Run a ViewDefinition over a site store and return its rows.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection holding ``source``.
    view : CompiledView, ViewDefinition, Mapping, str or Path
        The view; anything but a :class:`CompiledView` is compiled first.
    source : str
        Relation with columns ``resource_type``, ``id`` and ``resource`` (JSON).

    Returns
    -------
    pyarrow.Table
        One column per view column, in order.

    Raises
    ------
    ViewDefinitionError
        When the view is invalid or the data breaks one of its rules (several values in a
        single-valued column, a non-boolean ``where``).
    InputError
        When ``source`` does not exist.
    """
    compiled = view if isinstance(view, CompiledView) else compile_view(view, source)
    try:
        if compiled.uses_fallback:
            return run_fallback(con, compiled)
        return _to_arrow(con.sql(compiled.sql))
    except duckdb.CatalogException as exc:
        raise InputError(
            f"cannot read {compiled.source!r}: {exc}",
            rule="no-source",
            location=Location(file=compiled.source),
        ) from exc
    except duckdb.Error as exc:
        text = str(exc)
        if REPEAT_TOO_DEEP in text:
            return run_fallback(con, compiled)
        if ERROR_MARK in text:
            raise _runtime_error(exc) from exc
        if isinstance(exc, duckdb.ConversionException):
            raise ViewDefinitionError(
                f"a value does not fit its column's declared type: {text}", rule="column-type"
            ) from exc
        raise


__all__ = ["OutputColumn", "run_fallback", "run_view"]

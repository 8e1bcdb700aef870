"""Standard views of the cardiology data model, as ViewDefinition JSON files.

One row per resource, first coding of each coded element, keys from
``getResourceKey()``/``getReferenceKey(Type)``. Resources are in the store's R5 shape
(``Encounter.actualPeriod``, ``Encounter.class`` as a list, ``medication.concept``,
``Procedure.occurrence[x]``).

``medication`` is a group: the union of ``medication_request`` and
``medication_statement`` (a ViewDefinition reads one resource type, so the two share
their columns and a ``source`` column says which is which).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from cardiobox.errors import Location, ViewDefinitionError
from cardiobox.store.views.compiler import CompiledView, compile_view
from cardiobox.store.views.model import ViewDefinition, load_view
from cardiobox.store.views.run import run_view

STANDARD_DIR = Path(__file__).parent

#: Names that stand for several views with the same columns (rows concatenated).
GROUPS: dict[str, tuple[str, ...]] = {
    "medication": ("medication_request", "medication_statement"),
}


@dataclass(frozen=True)
class StandardView:
    """A standard view (or group of views) and what it reads.

    Parameters
    ----------
    name : str
        Name to use on the command line (``observation``, ``medication``...).
    resources : tuple of str
        Resource types read.
    title : str
        One-line description.
    columns : tuple of str
        Output columns.
    members : tuple of str
        For a group, the views it unions; otherwise ``(name,)``.
    """

    name: str
    resources: tuple[str, ...]
    title: str
    columns: tuple[str, ...]
    members: tuple[str, ...]


def _file_names() -> list[str]:
    return sorted(p.stem for p in STANDARD_DIR.glob("*.json"))


def standard_view_names() -> list[str]:
    """Names of the standard views and groups, sorted."""
    return sorted({*_file_names(), *GROUPS})


def is_standard_view(name: str) -> bool:
    """Whether ``name`` names a standard view or group."""
    return name in GROUPS or (STANDARD_DIR / f"{name}.json").is_file()


def load_standard_view(name: str) -> ViewDefinition:
    """Load one standard view (not a group) by name.

    Raises
    ------
    ViewDefinitionError
        When there is no such view.
    """
    path = STANDARD_DIR / f"{name}.json"
    if not path.is_file():
        raise ViewDefinitionError(
            f"no standard view {name!r}; use one of {', '.join(standard_view_names())}",
            rule="unknown-view",
            location=Location(file=name),
        )
    return load_view(path)


def members(name: str) -> list[ViewDefinition]:
    """The views behind a standard name (one, or each member of a group)."""
    return [load_standard_view(m) for m in GROUPS.get(name, (name,))]


def list_standard_views() -> list[StandardView]:
    """Every standard view and group, with the resources it reads and its columns."""
    out: list[StandardView] = []
    for name in standard_view_names():
        views = members(name)
        title = f"union of {', '.join(GROUPS[name])}" if name in GROUPS else (views[0].title or "")
        out.append(
            StandardView(
                name=name,
                resources=tuple(v.resource for v in views),
                title=title,
                columns=tuple(views[0].column_names),
                members=GROUPS.get(name, (name,)),
            )
        )
    return out


def union_sql(compiled: list[CompiledView]) -> str:
    """One query returning the rows of several compiled views with the same columns."""
    if len(compiled) == 1:
        return compiled[0].sql
    return "\nUNION ALL\n".join(f"SELECT * FROM (\n{c.sql}\n)" for c in compiled)


def compile_standard_view(name: str, source: str = "resources") -> list[CompiledView]:
    """Compile a standard view or each member of a group."""
    return [compile_view(v, source) for v in members(name)]


def run_standard_view(
    con: duckdb.DuckDBPyConnection, name: str, source: str = "resources"
) -> pa.Table:
    """Run a standard view (a group's members are concatenated)."""
    tables = [run_view(con, c) for c in compile_standard_view(name, source)]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")


def materialise_standard_view(
    con: duckdb.DuckDBPyConnection, name: str, table: str, source: str = "resources"
) -> None:
    """Create the temporary table ``table`` holding a standard view's rows.

    In SQL when the view compiles to SQL; through the fallback evaluator (and Arrow)
    otherwise.
    """
    compiled = compile_standard_view(name, source)
    if any(c.uses_fallback for c in compiled):
        arrow = run_standard_view(con, name, source)
        con.register("_standard_view_arrow", arrow)
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM _standard_view_arrow"
            )
        finally:
            con.unregister("_standard_view_arrow")
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {union_sql(compiled)}")


__all__ = [
    "GROUPS",
    "STANDARD_DIR",
    "StandardView",
    "compile_standard_view",
    "is_standard_view",
    "list_standard_views",
    "load_standard_view",
    "materialise_standard_view",
    "members",
    "run_standard_view",
    "standard_view_names",
    "union_sql",
]

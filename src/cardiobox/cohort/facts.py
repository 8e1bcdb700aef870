"""The fact tables that cohorts and feature sets read, on an extraction's connection.

Compiled cohorts and feature sets read ``c_patients``, ``c_encounters`` and ``c_facts``: views
of the store's fact tables (:mod:`cardiobox.store.facts`, kept up to date by every load), so
that an extraction parses no JSON. A store written by an older cardiobox has no fact tables,
or out-of-date ones: they are then rebuilt in the store first (one transaction, as long as a
load of the whole store takes to index), and later extractions are fast again. When the store
cannot be written (another process has it open, read-only media), the tables are computed in
memory for this extraction only, and the result says so in a warning.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from cardiobox.errors import CardioboxError, InputError, Location
from cardiobox.store import SiteStore
from cardiobox.store.facts import ENCOUNTERS, FACTS, PATIENTS, build_facts, facts_status

#: Names the compiled SQL reads, for each of the store's fact tables.
NAMES = {PATIENTS: "c_patients", ENCOUNTERS: "c_encounters", FACTS: "c_facts"}


def _attach(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Attach the store read-only as ``site``, with a ``resources`` view over it."""
    quoted = "'" + str(path).replace("'", "''") + "'"
    try:
        con.execute(f"ATTACH {quoted} AS site (READ_ONLY)")
    except duckdb.Error as exc:
        raise InputError(
            f"cannot open site store: {exc}", rule="store-open", location=Location(file=str(path))
        ) from exc
    found = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = 'site' AND schema_name = 'main' "
        "AND table_name = 'resources'"
    ).fetchall()
    if not found:
        con.execute("DETACH site")
        raise InputError(
            "not a cardiobox site store (no resources table)",
            rule="store-open",
            location=Location(file=str(path)),
        )
    con.execute("CREATE OR REPLACE TEMP VIEW resources AS SELECT * FROM site.resources")


def _reindex(path: Path, reason: str) -> str | None:
    """Rebuild the store's fact tables; ``None``, or why they could not be rebuilt."""
    try:
        with SiteStore(path) as store:
            store.reindex()
    except (duckdb.Error, CardioboxError, OSError) as exc:
        return f"{reason}, and they could not be rebuilt in the store ({exc})"
    return None


def open_facts(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """Attach the store read-only as ``site`` and make the fact tables readable on ``con``.

    When the store's fact tables are missing or out of date, they are rebuilt in the store
    first; when that fails, they are computed in memory for ``con`` alone.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection of its own (in memory).
    path : Path
        The site store.

    Returns
    -------
    list of str
        Warnings (the fact tables were computed in memory, and why).

    Raises
    ------
    InputError
        When ``path`` cannot be opened or is not a site store.
    """
    _attach(con, path)
    problem = facts_status(con, "site")
    if problem is not None:
        con.execute("DETACH site")  # the store is opened for writing while it is rebuilt
        problem = _reindex(path, problem)
        _attach(con, path)
        if problem is None:
            problem = facts_status(con, "site")
    if problem is None:
        for table, name in NAMES.items():
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM site.{table}")
        return []
    build_facts(con, NAMES)
    return [
        f"the fact tables were computed in memory for this extraction: {problem}; "
        "SiteStore(path).reindex() on the store, once, makes later extractions fast"
    ]

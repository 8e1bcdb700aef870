"""Concept maps: local codes → standard codes, loaded into DuckDB tables ``_cm_<name>``.

A CSV concept map has the header ``local_code,system,code,display``; ``system`` may be a URI or
an alias (``loinc``, ``snomed``, ``icd-10``, ``atc``, ...). Inline maps give ``code`` and
optionally ``system`` and ``display`` per local code. A target that names a data-model variable
gets that variable's id in the table's ``variable`` column, which decides units and value
types for Observations.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cardiobox.cdm import load_dictionary
from cardiobox.cdm.codes import canonical_system
from cardiobox.duck import temp_table
from cardiobox.errors import InputError, Location
from cardiobox.ingest.mapping import ConceptMapSpec

COLUMNS = ("local_code", "system", "code", "display")
#: A FHIR code: no whitespace at the ends, single whitespace characters inside.
_CODE = re.compile(r"\S+(\s\S+)*")


@dataclass(frozen=True)
class LoadedMap:
    """A concept map as loaded: its table name and how codes are matched."""

    name: str
    table: str
    match: str
    case: str
    entries: int
    origin: str


def table_name(name: str) -> str:
    """The DuckDB table holding concept map ``name``."""
    return '"_cm_' + name.replace('"', "") + '"'


def _read_csv(path: Path) -> list[tuple[str, str | None, str, str | None, int]]:
    rows: list[tuple[str, str | None, str, str | None, int]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("local_code", "code") if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(
                    f"a concept map needs the columns local_code,system,code,display; "
                    f"missing {missing}",
                    rule="concept-map",
                    location=Location(file=str(path), line=1),
                )
            for row in reader:
                rows.append(
                    (
                        (row.get("local_code") or "").strip(),
                        (row.get("system") or "").strip() or None,
                        (row.get("code") or "").strip(),
                        (row.get("display") or "").strip() or None,
                        reader.line_num,
                    )
                )
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(
            f"cannot read the concept map: {exc}",
            rule="concept-map",
            location=Location(file=str(path)),
        ) from exc
    return rows


def load_concept_map(
    con: duckdb.DuckDBPyConnection, name: str, spec: ConceptMapSpec, base: Path
) -> LoadedMap:
    """Load one concept map into ``_cm_<name>(local_code, system, code, display, variable)``.

    Raises
    ------
    InputError
        For a missing file, a row without local code or code, or one local code mapped to two
        different targets; the location names the CSV line.
    """
    if spec.file is not None:
        path = base / spec.file
        if not path.is_file():
            raise InputError(
                f"concept map {name!r}: no such file {path}",
                rule="missing-input",
                location=Location(file=str(path)),
            )
        rows = _read_csv(path)
        origin = str(path)
    else:
        origin = f"concept_maps.{name} (inline)"
        rows = [
            (k.strip(), v.get("system"), str(v.get("code", "")).strip(), v.get("display"), 0)
            for k, v in (spec.inline or {}).items()
        ]
    dictionary = load_dictionary()
    seen: dict[str, tuple[str | None, str]] = {}
    entries: list[tuple[str, str | None, str, str | None, str | None]] = []
    for local, system, code, display, line in rows:
        where = Location(file=origin, line=line or None)
        if not local or not code:
            raise InputError(
                f"concept map {name!r}: every row needs a local_code and a code",
                rule="concept-map",
                location=where,
            )
        if not _CODE.fullmatch(code) or (system and " " in system):
            raise InputError(
                f"concept map {name!r}: {code!r} is not a valid code (no spaces at the ends, "
                "single spaces inside) or the system has spaces",
                rule="concept-map",
                location=where,
            )
        key = local.lower() if spec.case == "insensitive" else local
        uri = canonical_system(system) if system else None
        if key in seen and seen[key] != (uri, code):
            raise InputError(
                f"concept map {name!r}: local code {local!r} is mapped twice, to "
                f"{seen[key][0]}|{seen[key][1]} and {uri}|{code}",
                rule="concept-map",
                location=where,
            )
        seen[key] = (uri, code)
        variable = dictionary.find_code(uri, code) if uri else None
        entries.append((key, uri, code, display, variable.id if variable else None))
    table = table_name(name)
    temp_table(con, "_cm_rows", [(c, "VARCHAR") for c in (*COLUMNS, "variable")], entries)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT DISTINCT * FROM _cm_rows; "
        "DROP TABLE _cm_rows"
    )
    return LoadedMap(name, table, spec.match, spec.case, len(seen), origin)


def lookup_key_sql(loaded: LoadedMap, value_sql: str) -> str:
    """The SQL text compared with ``local_code`` for a value."""
    v = f"trim(CAST({value_sql} AS VARCHAR))"
    return f"lower({v})" if loaded.case == "insensitive" else v


def join_condition(loaded: LoadedMap, alias: str, value_sql: str) -> str:
    """ON condition joining the map (as ``alias``) to a row's value."""
    key = lookup_key_sql(loaded, value_sql)
    if loaded.match == "prefix":
        return f"starts_with({key}, {alias}.local_code)"
    return f"{alias}.local_code = {key}"

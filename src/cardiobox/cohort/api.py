"""Count, explain and extract cohorts from a site store (the Python API behind the CLI).

Example
-------
>>> from cardiobox.cohort import extract
>>> result = extract("cohort.yaml", "site.duckdb", features="features.yaml",
...                  out="table.parquet")                                    # doctest: +SKIP
>>> result.table.num_rows, result.metadata["columns"][0]["name"]              # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from cardiobox.cdm import load_dictionary
from cardiobox.cohort.compile import (
    CompiledCohort,
    CompiledFeatures,
    compile_cohort,
    compile_features,
)
from cardiobox.cohort.definition import (
    CohortDefinition,
    FeatureSet,
    Outcome,
    load_definition,
)
from cardiobox.cohort.facts import open_facts
from cardiobox.cohort.metadata import describe_table
from cardiobox.errors import InputError, Location

Definition = CohortDefinition | FeatureSet | str | Path


def _cohort(d: Definition) -> CohortDefinition:
    loaded = load_definition(d) if isinstance(d, str | Path) else d
    if not isinstance(loaded, CohortDefinition):
        raise InputError(
            "expected a cohort definition, got a feature set",
            rule="definition-schema",
            location=Location(file=str(d)) if isinstance(d, str | Path) else None,
        )
    return loaded


def _features(d: Definition) -> FeatureSet:
    loaded = load_definition(d) if isinstance(d, str | Path) else d
    if not isinstance(loaded, FeatureSet):
        raise InputError(
            "expected a feature set, got a cohort definition",
            rule="definition-schema",
            location=Location(file=str(d)) if isinstance(d, str | Path) else None,
        )
    return loaded


@dataclass
class AttritionRow:
    """Rows and patients left after one step."""

    step: int
    kind: str
    label: str
    rows: int
    patients: int


@dataclass
class CohortResult:
    """What ``count``, ``explain`` and ``extract`` return."""

    name: str
    site: str
    rows: int
    patients: int
    attrition: list[AttritionRow]
    sql: str = ""
    table: pa.Table | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output (the table itself is not included)."""
        return {
            "name": self.name,
            "site": self.site,
            "rows": self.rows,
            "patients": self.patients,
            "attrition": [vars(a) for a in self.attrition],
            "sql": self.sql or None,
            "warnings": self.warnings,
            "out": self.out,
            "columns": len(self.table.schema) if self.table is not None else None,
        }


def _open(site: str | Path) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """A connection reading the store and its fact tables; with warnings about them."""
    path = Path(site)
    if not path.exists():
        raise InputError(
            "no such site store", rule="missing-input", location=Location(file=str(path))
        )
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    try:
        warnings = open_facts(con, path)
    except BaseException:
        con.close()
        raise
    return con, warnings


def _prepare(con: duckdb.DuckDBPyConnection, cohort: CompiledCohort) -> None:
    for k, step in enumerate(cohort.steps):
        con.execute(f"CREATE OR REPLACE TEMP TABLE cohort_{k} AS {step.sql}")


def _follow_up_extent(con: duckdb.DuckDBPyConnection) -> None:
    """``c_extent``: the site's follow-up end when a feature set does not give it.

    The latest dated record, leaving out records dated after their patient's death (always
    errors). Only outcomes read it.
    """
    con.execute(
        """CREATE OR REPLACE TEMP TABLE c_extent AS SELECT max(d)::DATE AS last_day FROM (
            SELECT max(f.t) AS d FROM c_facts f LEFT JOIN c_patients p USING (patient_id)
                WHERE p.death_date IS NULL OR f.t::DATE <= p.death_date
            UNION ALL SELECT max(greatest(e.start, e."end")) FROM c_encounters e
                LEFT JOIN c_patients p USING (patient_id)
                WHERE p.death_date IS NULL OR e.start::DATE <= p.death_date
            UNION ALL SELECT max(death_date)::TIMESTAMP FROM c_patients)"""
    )


def _attrition(con: duckdb.DuckDBPyConnection, cohort: CompiledCohort) -> list[AttritionRow]:
    rows = []
    for k, step in enumerate(cohort.steps):
        n, p = con.execute(
            f"SELECT count(*), count(DISTINCT patient_id) FROM cohort_{k}"
        ).fetchall()[0]
        rows.append(AttritionRow(k, step.kind, step.label, int(n), int(p)))
    return rows


def count(definition: Definition, site: str | Path) -> CohortResult:
    """Count a cohort at a site, with its attrition table.

    Parameters
    ----------
    definition : CohortDefinition, str or Path
        The cohort (or its YAML file).
    site : str or Path
        The site store.

    Returns
    -------
    CohortResult
    """
    d = _cohort(definition)
    compiled = compile_cohort(d, load_dictionary())
    con, warnings = _open(site)
    try:
        _prepare(con, compiled)
        attrition = _attrition(con, compiled)
    finally:
        con.close()
    last = attrition[-1]
    if not last.rows:
        warnings.append(f"the cohort {d.name} selects nobody at this site")
    return CohortResult(d.name, str(site), last.rows, last.patients, attrition, warnings=warnings)


def explain(
    definition: Definition, site: str | Path, features: Definition | None = None
) -> CohortResult:
    """Like :func:`count`, with the SQL of the cohort (and of the feature set)."""
    d = _cohort(definition)
    compiled = compile_cohort(d, load_dictionary())
    sql = compiled.script()
    if features is not None:  # compiled first: a mistake in it is reported before any work
        fs = compile_features(
            _features(features), load_dictionary(), dated=d.entry.event != "patient"
        )
        sql += ";\n\n-- features\n" + fs.sql(compiled.final)
    result = count(d, site)
    result.sql = sql
    return result


def extract(
    definition: Definition,
    site: str | Path,
    features: Definition | None = None,
    out: str | Path | None = None,
    min_cell: int = 10,
) -> CohortResult:
    """Extract a cohort's analysis table (and write it as Parquet with a metadata JSON).

    Parameters
    ----------
    definition : CohortDefinition, str or Path
        The cohort.
    site : str or Path
        The site store.
    features : FeatureSet, str or Path, optional
        Columns to compute; without it the table has the cohort's keys only.
    out : str or Path, optional
        Parquet file to write; ``<out>.metadata.json`` is written beside it.
    min_cell : int
        Counts below this are suppressed in the metadata's summaries (default 10).

    Returns
    -------
    CohortResult
        With ``table`` and ``metadata``.
    """
    d = _cohort(definition)
    dictionary = load_dictionary()
    compiled = compile_cohort(d, dictionary)
    dated = d.entry.event != "patient"
    fs_def = _features(features) if features is not None else None
    fs = compile_features(fs_def, dictionary, dated) if fs_def is not None else CompiledFeatures()
    con, warnings = _open(site)
    try:
        _prepare(con, compiled)
        _follow_up_extent(con)
        attrition = _attrition(con, compiled)
        table = con.sql(fs.sql(compiled.final)).to_arrow_table()
        last_day = con.execute("SELECT last_day FROM c_extent").fetchall()[0][0]
        present = {
            v
            for (v,) in con.execute(
                "SELECT DISTINCT variable FROM c_facts f JOIN "
                f"(SELECT DISTINCT patient_id FROM {compiled.final}) USING (patient_id)"
            ).fetchall()
        }
    finally:
        con.close()
    if not table.num_rows:
        warnings.append(f"the cohort {d.name} selects nobody at this site")
    for col in fs.columns:
        if col.kind == "feature" and col.variable not in present and table.num_rows:
            warnings.append(
                f"column {col.name}: no record of {col.variable} for this cohort at this site "
                "(the column is empty, not zero)"
            )
    outcomes = [i for i in fs_def.features if isinstance(i, Outcome)] if fs_def else []
    if table.num_rows and any(o.follow_up_end is None for o in outcomes):
        warnings.append(
            f"follow-up is taken to end on {last_day}, the site's latest dated record; give "
            "follow_up_end in the outcomes if the site knows its follow-up end"
        )
    if fs_def is not None and table.num_rows and "cause_of_death" not in present:
        for item in fs_def.features:
            if isinstance(item, Outcome) and item.outcome == "cv_death":
                warnings.append(
                    f"column {item.name}: no cause of death is recorded for this cohort at "
                    "this site, so every death counts as of unknown cause (NULL)"
                )
    metadata = describe_table(
        table,
        fs.columns,
        min_cell=min_cell,
        extra={
            "cohort": d.name,
            "feature_set": fs_def.name if fs_def else None,
            "site": Path(site).name,
            "attrition": [vars(a) for a in attrition],
            "warnings": warnings,
        },
    )
    last = attrition[-1]
    result = CohortResult(
        d.name,
        str(site),
        last.rows,
        last.patients,
        attrition,
        table=table,
        metadata=metadata,
        warnings=warnings,
    )
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        meta_path = path.with_name(path.name + ".metadata.json")
        meta_path.write_bytes(orjson.dumps(metadata, option=orjson.OPT_INDENT_2))
        result.out = str(path)
    return result

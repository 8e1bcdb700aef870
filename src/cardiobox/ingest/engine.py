"""Run a mapping: read the source, build the resources in SQL, validate, store or quarantine.

The load goes through the site store's own import machinery
(:meth:`cardiobox.store.SiteStore.load_staged`): the resources of one source row are a group,
stored together or quarantined together (the quarantine keeps the source row itself), in one
transaction, idempotently. The resources are built, hashed and numbered by one query into a
table that the store takes over as its table of items, without a copy. With each Observation
go the values that the store's fact tables and the data model's rules read of it, so that
they are not parsed back out of the text just built.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from cardiobox.duck import temp_table
from cardiobox.errors import InputError, Location
from cardiobox.ingest.compile import (
    BlockCompiler,
    Compiled,
    Problem,
    conversion_table,
    dictionary_tables,
    lit,
)
from cardiobox.ingest.concept_maps import LoadedMap, load_concept_map
from cardiobox.ingest.mapping import Mapping, load_mapping
from cardiobox.ingest.pseudonym import SiteKey, key_path_for, load_or_create_key, pseudonym_sql
from cardiobox.ingest.sources import SourceInfo, load_source, quote
from cardiobox.store import SiteStore

Progress = Callable[[str, int, int | None], None]


@dataclass
class IngestReport:
    """What a mapping run did (``rows_read == rows_loaded + rows_quarantined``)."""

    mapping: str
    source: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    resources_created: int = 0
    resources_updated: int = 0
    resources_unchanged: int = 0
    resources_by_type: dict[str, int] = field(default_factory=dict)
    quarantine_by_rule: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    warnings: int = 0
    dry_run: bool = False
    key_file: str | None = None
    key_created: bool = False
    seconds: float = 0.0
    load_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        out = dict(vars(self))
        out["seconds"] = round(self.seconds, 3)
        out["rows_per_second"] = round(self.rows_read / self.seconds) if self.seconds else None
        return out


def _check_key(store: SiteStore, key: SiteKey, record: bool = True) -> None:
    """The store remembers the fingerprint of the key its pseudonyms were made with."""
    row = store.con.execute(
        "SELECT value FROM store_info WHERE key = 'pseudonym_key_fingerprint'"
    ).fetchall()
    if not row and record:
        store.con.execute(
            "INSERT INTO store_info VALUES ('pseudonym_key_fingerprint', ?)", [key.fingerprint]
        )
    elif row and row[0][0] != key.fingerprint:
        raise InputError(
            f"this store's pseudonyms were made with another site key (fingerprint {row[0][0]}, "
            f"given {key.fingerprint}); use the site's key file",
            rule="site-key",
            location=Location(file=str(key.path)),
        )


def _pseudonyms(
    con: duckdb.DuckDBPyConnection, table: str, kind: str, exprs: list[str], key: SiteKey
) -> None:
    """Create ``table(local, pseudo)`` for the distinct local ids of ``exprs``.

    The HMAC runs in DuckDB, once per distinct id (the key travels as query parameters).
    """
    ids = " UNION ALL ".join(f"SELECT {expr} AS local FROM _srcx s" for expr in exprs)
    if not ids:
        ids = "SELECT NULL::VARCHAR AS local"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {table} AS
        SELECT local, {pseudonym_sql(kind, "local")} AS pseudo
        FROM (SELECT DISTINCT local FROM ({ids})) WHERE local IS NOT NULL AND local <> ''""",
        key.sql_parameters(),
    )


class MappingRun:
    """Prepares and stages one mapping run on a store connection."""

    def __init__(
        self,
        mapping: Mapping,
        mapping_path: Path,
        source_override: str | Path | None,
        key: SiteKey,
        progress: Progress,
    ):
        self.mapping = mapping
        self.base = mapping_path.parent
        self.path = mapping_path
        self.override = source_override
        self.key = key
        self.progress = progress
        self.info: SourceInfo | None = None
        self.instances = 0

    def fill(self, con: duckdb.DuckDBPyConnection) -> None:
        """Fill the store's staging tables (``_stage``, ``_groups``, ``_rejected``)."""
        self.prepare(con, hashed=True)
        assert self.info is not None
        self._stage(con, self.info)

    def prepare(self, con: duckdb.DuckDBPyConnection, hashed: bool = False) -> BlockCompiler:
        """Read the source and build every resource into ``_stage_data`` (nothing is stored).

        ``_stage_data`` has the columns of the store's ``_stage`` (``hash``: the md5 of the
        resource's text when ``hashed``, else NULL), ``errs``, the problems found in the
        row's values (NULL when there are none), ``facts_x``: for an Observation, the values
        its fact rows are made of, from the typed columns its text was built from (see
        :func:`cardiobox.store.facts.refresh_facts`), and ``profile_x``: likewise the values
        the data model's rules read (:func:`cardiobox.cdm.profile.observation_rule_paths`).
        """
        m = self.mapping
        self.progress("reading source", 0, None)
        info = load_source(con, m.source, self.base, self.override)
        self.info = info
        self.progress("reading source", info.rows + len(info.bad_rows), None)
        maps: dict[str, LoadedMap] = {
            name: load_concept_map(con, name, spec, self.base)
            for name, spec in m.concept_maps.items()
        }
        dictionary_tables(con)
        compiler = BlockCompiler(con, m, maps, info.columns)
        self._bind_check(con, compiler)
        patient = compiler.compile(m.patient)
        patient.problems.append(_missing_patient(patient))
        row_key = self._row_key(info)
        instances = []
        names = []
        for block in m.resources:
            for suffix, fields in block.instances():
                instances.append(compiler.instance_sql(block, suffix, fields, patient, row_key))
                names.append(f"{block.id}#{suffix}" if suffix else block.id)
        compiler.materialise()
        compiler.build_lookups()
        _pseudonyms(con, "_pid", "Patient", [patient.raw], self.key)
        _pseudonyms(con, "_eid", "Encounter", sorted(compiler.encounter_exprs), self.key)
        conversion_table(
            con, [(var, unit, joins) for _sql, convs, joins in instances for var, unit in convs]
        )
        self.progress("building resources", 0, None)
        self.instances = n = len(instances)
        source = lit(info.path)
        provenance = lit(orjson.dumps({"mapping": m.name}).decode()[:-1])
        # The k-th instance of source row r is item r * n + k; each block's provenance is a
        # constant.
        union = " UNION ALL ".join(
            f"""(SELECT _row * {n} + {k} AS seq, {source} AS file, _row AS line,
                NULL::INTEGER AS entry, doc AS raw, _row AS grp, shape,
                {provenance} || ',"block":' || to_json({lit(name)}) || '}}' AS provenance,
                patient, rt, __rid AS rid, errs, facts_x, profile_x FROM ({sql}))"""
            for k, ((sql, _c, _j), name) in enumerate(zip(instances, names, strict=True))
        )
        # The text is hashed as it is built, for the store's content hash.
        digest = "md5(raw)" if hashed else "NULL::VARCHAR"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _stage_data AS
            SELECT seq, file, line, entry, raw, grp, shape, provenance, patient, rt, rid,
                {digest} AS hash, errs, facts_x, profile_x
            FROM ({union})"""
        )
        return compiler

    def _bind_check(self, con: duckdb.DuckDBPyConnection, compiler: BlockCompiler) -> None:
        """Every expression must bind to the source's columns (a clear error otherwise)."""
        for where, expr in _expressions(self.mapping):
            try:
                con.execute(f"SELECT {expr} FROM _src s LIMIT 0").fetchall()
            except duckdb.Error as exc:
                first = str(exc).splitlines()[0]
                raise InputError(
                    f"{where}: the expression {expr!r} does not work on this source: {first} "
                    f"(columns: {', '.join(compiler.columns)}){_delimiter_hint(compiler.columns)}",
                    rule="unknown-column",
                    location=Location(file=str(self.path)),
                ) from exc

    def _row_key(self, info: SourceInfo) -> str:
        cols = self.mapping.source.key or info.columns
        missing = [c for c in cols if c not in info.columns and c != "_row"]
        if missing:
            raise InputError(
                f"source.key names columns the source lacks: {missing}",
                rule="unknown-column",
                location=Location(file=str(self.path)),
            )
        parts = ", ".join(f"coalesce(s.{quote(c)}, chr(0))" for c in cols)
        return f"concat_ws(chr(31), {parts})"

    def _stage(self, con: duckdb.DuckDBPyConnection, info: SourceInfo) -> None:
        source = lit(info.path)
        # Rows with problems in their values are rejected before validation.
        con.execute(
            """INSERT INTO _rejected
            SELECT -row_number() OVER (), file, line, NULL, rt, NULL, e.rule, e.column,
                e.message, NULL, NULL, grp
            FROM (SELECT file, line, grp, rt, unnest(errs) AS e FROM _stage_data
                  WHERE errs IS NOT NULL)"""
        )
        # The rest becomes the store's _stage as it is, which the store takes over as its
        # table of items: the resources are never copied.
        con.execute(
            """DELETE FROM _stage_data WHERE errs IS NOT NULL;
            ALTER TABLE _stage_data DROP COLUMN errs;
            DROP TABLE _stage;
            ALTER TABLE _stage_data RENAME TO _stage"""
        )
        # Each source row, as JSON of its columns, for the quarantine (only rejected rows are
        # ever read from this view).
        cols = ", ".join(f"{lit(c)}: s.{quote(c)}" for c in info.columns)
        con.execute(
            f"""DROP TABLE IF EXISTS _groups; CREATE TEMP VIEW _groups AS
            SELECT _row AS grp, {source} AS file, _row AS line, to_json({{{cols}}})::VARCHAR AS raw
            FROM _src s"""
        )
        if info.bad_rows:
            temp_table(
                con,
                "_bad_rows",
                [("line", "BIGINT"), ("message", "VARCHAR"), ("raw", "VARCHAR")],
                [(b.line, b.message, b.raw) for b in info.bad_rows],
            )
            con.execute(
                f"""INSERT INTO _rejected SELECT -1000000000 - line, {source}, line, NULL, NULL,
                    NULL, 'malformed-row', NULL, message, NULL, raw, NULL FROM _bad_rows;
                DROP TABLE _bad_rows"""
            )


#: Field separators that text extracts use.
_DELIMITERS = (",", ";", "\t", "|")


def _delimiter_hint(columns: list[str]) -> str:
    """A hint when the header was read as one column holding another field separator."""
    if len(columns) != 1:
        return ""
    most = max(_DELIMITERS, key=columns[0].count)
    if not columns[0].count(most):
        return ""
    return (
        f"; the header was read as one column, which holds {most!r}: "
        "is the source's delimiter right?"
    )


def _missing_patient(patient: Compiled) -> Problem:
    """Every row needs a patient: a row without one is quarantined."""
    return Problem(
        f"{patient.raw} IS NULL",
        "missing-patient",
        "patient",
        "'the row has no patient identifier'",
        "NULL",
    )


def _expressions(mapping: Mapping) -> list[tuple[str, str]]:
    """(where, SQL) of every expression of a mapping, for binding checks."""
    out = [("patient", str(mapping.patient.expr))] if mapping.patient.expr else []
    for block in mapping.resources:
        for suffix, fields in block.instances():
            where = f"resources[{block.id}{'#' + suffix if suffix else ''}]"
            for name in fields.model_fields_set:
                value = getattr(fields, name)
                expr = getattr(value, "expr", None)
                if expr:
                    out.append((f"{where}.{name.rstrip('_')}", expr))
            if fields.when:
                out.append((f"{where}.when", fields.when))
    return out


@dataclass
class CheckReport:
    """What ``ingest check`` found.

    The problems that would quarantine rows, and the concept-map work still to do.
    """

    mapping: str
    source: str
    rows: int
    malformed_rows: int
    resources: int
    problems: list[dict[str, Any]]
    unmapped_codes: list[dict[str, Any]]
    unit_problems: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        """True when no row would be quarantined by the mapping step."""
        return not (self.problems or self.malformed_rows)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {**vars(self), "ok": self.ok}


def check_mapping(mapping_path: str | Path, source: str | Path | None = None) -> CheckReport:
    """Lint a mapping against its source without touching any store.

    Reports expressions that do not bind to the source's columns (as an error), unknown
    variables (as an error), and, per rule and column, the rows whose values would be
    quarantined, with examples; the local codes missing from each concept map with their
    counts; and the units that cannot be converted.
    """
    path = Path(mapping_path)
    mapping = load_mapping(path)
    key = SiteKey(secrets.token_bytes(32), path)  # ids do not matter here
    run = MappingRun(mapping, path, source, key, lambda _p, _n, _t: None)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        compiler = run.prepare(con)
        info = run.info
        assert info is not None
        problems = [
            {"rule": rule, "column": column, "rows": int(n), "examples": list(examples)}
            for rule, column, n, examples in con.execute(
                """SELECT e.rule, e.column, count(DISTINCT grp),
                    list(DISTINCT 'row ' || line || ': ' || e.message)[1:3]
                FROM (SELECT grp, line, unnest(errs) AS e FROM _stage_data
                      WHERE errs IS NOT NULL)
                GROUP BY ALL ORDER BY 3 DESC, 1, 2"""
            ).fetchall()
        ]
        unmapped = []
        for lk in compiler.lookups:
            for value, n in con.execute(
                f"""SELECT {lk.expr} AS v, count(*) FROM _srcx s
                LEFT JOIN {lk.table} x ON x.val = {lk.expr}
                WHERE {lk.expr} IS NOT NULL AND x.code IS NULL GROUP BY 1 ORDER BY 2 DESC"""
            ).fetchall():
                unmapped.append({"concept_map": lk.loaded.name, "local_code": value, "rows": n})
        units_bad = [
            {"variable": v, "unit": u, "message": e}
            for v, u, e in con.execute(
                "SELECT variable, unit, error FROM _conv WHERE error IS NOT NULL ORDER BY 1, 2"
            ).fetchall()
        ]
        resources = int(con.execute("SELECT count(*) FROM _stage_data").fetchall()[0][0])
    finally:
        con.close()
    return CheckReport(
        mapping.name,
        info.path,
        info.rows,
        len(info.bad_rows),
        resources,
        problems,
        unmapped,
        units_bad,
    )


def run_mapping(
    mapping_path: str | Path,
    site: str | Path,
    source: str | Path | None = None,
    dry_run: bool = False,
    key_file: str | Path | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Apply a mapping to its source and load the result into a site store.

    Parameters
    ----------
    mapping_path : str or Path
        The mapping YAML file.
    site : str or Path
        The site store (created if missing).
    source : str or Path, optional
        A file to read instead of the mapping's ``source.path``.
    dry_run : bool
        Do everything, report what would be created and the first errors, then roll back.
    key_file : str or Path, optional
        The site's secret key for pseudonyms (default: ``$CARDIOBOX_SITE_KEY`` or
        ``<store>.key``, created on first use).
    progress : callable, optional
        ``progress(phase, n, total)``.

    Returns
    -------
    IngestReport
    """
    started = time.perf_counter()
    path = Path(mapping_path)
    mapping = load_mapping(path)
    site_path = Path(site)
    key_path = key_path_for(site_path, key_file)
    if dry_run and not key_path.exists():
        # A dry run writes nothing, not even a new key: it uses a throw-away one.
        key = SiteKey(secrets.token_bytes(32), key_path, created=False)
    else:
        key = load_or_create_key(key_path)
    report = IngestReport(
        mapping.name,
        str(mapping.source.path or mapping.source.url),
        dry_run=dry_run,
        key_file=str(key.path),
        key_created=key.created,
    )
    prog = progress or (lambda _p, _n, _t: None)
    run = MappingRun(mapping, path, source, key, prog)
    with SiteStore(site_path) as store:
        if not (dry_run and not key_path.exists()):
            _check_key(store, key, record=not dry_run)
        load = store.load_staged(
            run.fill, str(path), "ingest", dry_run=dry_run, progress=prog, trusted_shapes=True
        )
    info = run.info
    assert info is not None
    report.source = info.path
    report.rows_read = info.rows + len(info.bad_rows)
    report.rows_quarantined = load.quarantined
    report.rows_loaded = report.rows_read - report.rows_quarantined
    report.resources_created = load.created
    report.resources_updated = load.updated
    report.resources_unchanged = load.unchanged
    report.resources_by_type = {t: c["stored"] for t, c in load.by_type.items() if c["stored"]}
    report.quarantine_by_rule = load.quarantine_by_rule
    report.examples = load.examples
    report.warnings = load.warnings
    report.load_id = None if dry_run else load.load_id
    report.seconds = time.perf_counter() - started
    return report

"""SiteStore: one DuckDB file per hospital site.

Example
-------
>>> from cardiobox.store import SiteStore
>>> with SiteStore("hospital_a.duckdb") as store:            # doctest: +SKIP
...     report = store.import_fhir(["bulk_export/"])
...     report.read == report.stored + report.quarantined
True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import orjson

from cardiobox import __version__
from cardiobox.cdm.fhir_versions import R4, R4B, R5
from cardiobox.cdm.r4_to_r5 import PROFILED_TYPES
from cardiobox.errors import InputError, Location
from cardiobox.store.db import one
from cardiobox.store.facts import FactsRefresh, refresh_facts
from cardiobox.store.importer import Importer, ImportReport, Progress
from cardiobox.store.readers import MANIFEST
from cardiobox.store.schema import create_schema

RELEASE_NAMES = {R4: "R4", R4B: "R4B", R5: "R5"}


class SiteStore:
    """A hospital site's store of FHIR resources in one DuckDB file.

    Parameters
    ----------
    path : str or Path
        The DuckDB file; created (with its tables) when it does not exist.
    read_only : bool
        Open without write access (several readers may share a file).
    """

    def __init__(self, path: str | Path, read_only: bool = False):
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise InputError(
                f"no site store at {self.path}",
                rule="missing-store",
                location=Location(file=str(self.path)),
            )
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise InputError(
                f"cannot open site store: {exc}",
                rule="store-open",
                location=Location(file=str(self.path)),
            ) from exc
        self.con.execute("SET enable_progress_bar = false")
        if not read_only:
            create_schema(self.con)
        else:
            tables = {r[0] for r in self.con.execute("SHOW TABLES").fetchall()}
            if "resources" not in tables:
                raise InputError(
                    f"{self.path} is not a cardiobox site store",
                    rule="store-open",
                    location=Location(file=str(self.path)),
                )

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    def __enter__(self) -> SiteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- import ----------------------------------------------------------------------------
    def import_fhir(
        self,
        paths: Sequence[str | Path] | str | Path,
        fhir_version: str | None = None,
        progress: Progress | None = None,
    ) -> ImportReport:
        """Import FHIR NDJSON files, bulk-export folders, Bundles or single resources.

        The import is one transaction: if it fails or is killed, the store is unchanged.

        Parameters
        ----------
        paths : path or list of paths
            Files (``.ndjson``, ``.jsonl``, ``.json``, optionally gzipped) or folders.
        fhir_version : str, optional
            ``R4``, ``R4B`` or ``R5`` (or ``4.0.1``, ...). When omitted, each file's release
            is read from the ``meta.profile`` of its resources (US Core → R4,
            DataTools4Heart → R5); a file with no known profile is an error.
        progress : callable, optional
            ``progress(phase, n_done, total)``.

        Returns
        -------
        ImportReport
            ``read == stored + quarantined`` always holds.
        """
        if isinstance(paths, str | Path):
            paths = [paths]
        started = time.perf_counter()
        importer = Importer(self.con, fhir_version, progress)
        try:
            # Staging only fills temporary tables; the store changes in one transaction.
            files, versions = importer.stage(paths)
        except BaseException:
            self._drop_temp()
            raise
        return self._judge_and_write(importer, files, versions, started, dry_run=False)

    def load_staged(
        self,
        fill: Callable[[duckdb.DuckDBPyConnection], None],
        source: str,
        kind: str,
        dry_run: bool = False,
        progress: Progress | None = None,
        trusted_shapes: bool = False,
    ) -> ImportReport:
        """Load resources that a producer (the ingestion engine) stages itself.

        ``fill(con)`` inserts into the temporary tables ``_stage`` (the resources, FHIR R5,
        with ``grp`` = their source row, ``shape`` and ``provenance``), ``_groups`` (each source
        row: file, line, raw text) and ``_rejected`` (rows the producer already rejected). It
        may instead replace ``_stage`` by a table of its own with the same columns, every item
        with its ``rt`` and ``rid`` and with ``hash`` the md5 of ``raw``: the store then takes
        that table over as its table of items instead of copying it. Such a table may add a
        column ``facts_x``, each Observation's values at
        :data:`cardiobox.store.facts.OBSERVATION_PATHS` as ``json_extract_string`` gives them
        (NULL: not given), which the fact tables' refresh then reads instead of the text.
        Validation, quarantine and the single-transaction write are then those of
        :meth:`import_fhir`; the items of a source row are stored or quarantined together.

        Parameters
        ----------
        fill : callable
            Fills the staging tables on the store's connection.
        source : str
            Description of the source, recorded in ``loads``.
        kind : str
            Kind of load recorded in ``loads`` (``ingest``).
        dry_run : bool
            Validate everything, then roll back: the store is not changed.
        progress : callable, optional
            ``progress(phase, n_done, total)``.
        trusted_shapes : bool
            The producer guarantees that items of one ``shape`` come from one template with
            validly formatted values: one item per shape is validated structurally (the data
            model's profile rules still run on every item).
        """
        started = time.perf_counter()
        importer = Importer(self.con, R5, progress, kind=kind, trusted_shapes=trusted_shapes)
        try:
            importer.begin()
            fill(self.con)
            files = self.con.execute("SELECT DISTINCT file FROM _stage").fetchall()
            versions = {str(f): R5 for (f,) in files}
        except BaseException:
            self._drop_temp()
            raise
        return self._judge_and_write(importer, [source], versions, started, dry_run)

    def _judge_and_write(
        self,
        importer: Importer,
        files: list[str],
        versions: dict[str, str],
        started: float,
        dry_run: bool,
    ) -> ImportReport:
        """Validate the staged items and write them, all in one transaction.

        A failure (or a dry run) rolls the transaction back: the store is as it was.
        """
        self.con.begin()
        try:
            importer.judge(versions)
            report = importer.write(files, versions, started)
            if dry_run:
                self.con.rollback()
            else:
                # The fact tables follow the resources in the same transaction.
                importer.progress("indexing facts", 0, None)
                refresh_facts(self.con, importer.load_id, written="_written")
                self._commit()
        except BaseException:
            self.con.rollback()
            raise
        finally:
            self._drop_temp()
            self.con.execute("RESET preserve_insertion_order")
        report.seconds = time.perf_counter() - started
        return report

    def reindex(self) -> FactsRefresh:
        """Rebuild the fact tables that cohorts read from every resource, in one transaction.

        Loads keep the tables up to date themselves; this is for a store written by an older
        cardiobox, or filled by other means than :meth:`import_fhir` and :meth:`load_staged`.

        Returns
        -------
        FactsRefresh
            What was done, and how long it took.
        """
        self.con.begin()
        try:
            refresh = refresh_facts(self.con)
            self._commit()
        except BaseException:
            self.con.rollback()
            raise
        finally:
            self._drop_temp()
        return refresh

    def _commit(self) -> None:
        self.con.commit()

    def _drop_temp(self) -> None:
        """Drop the import's temporary views and tables (they can hold gigabytes)."""
        for (name,) in self.con.execute(
            "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal"
        ).fetchall():
            self.con.execute(f'DROP VIEW IF EXISTS temp."{name}"')
        for (name,) in self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary"
        ).fetchall():
            self.con.execute(f'DROP TABLE IF EXISTS temp."{name}"')

    # -- reading ---------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counts per resource type, patients, quarantine and loads."""
        con = self.con
        by_type = {
            rt: {"resources": int(n), "patients": int(p)}
            for rt, n, p in con.execute(
                "SELECT resource_type, count(*), count(DISTINCT patient_id) FROM resources "
                "GROUP BY 1 ORDER BY 1"
            ).fetchall()
        }
        versions = dict(
            con.execute(
                "SELECT fhir_version, count(*) FROM resources GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        q_rules = dict(
            con.execute(
                "SELECT rule, count(*) FROM quarantine GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
        )

        def scalar(sql: str) -> int:
            row = one(con.execute(sql))
            return int(row[0]) if row and row[0] is not None else 0

        return {
            "store": str(self.path),
            "resources": scalar("SELECT count(*) FROM resources"),
            "patients": scalar("SELECT count(*) FROM resources WHERE resource_type = 'Patient'"),
            "by_type": by_type,
            "fhir_versions": versions,
            "converted_to_r5": scalar(
                "SELECT count(*) FROM resources WHERE source_resource IS NOT NULL"
            ),
            "history": scalar("SELECT count(*) FROM resource_history"),
            "quarantined": scalar("SELECT count(*) FROM quarantine"),
            "quarantine_by_rule": q_rules,
            "warnings": scalar("SELECT count(*) FROM findings"),
            "loads": scalar("SELECT count(*) FROM loads"),
        }

    def quarantine(self, limit: int | None = 100) -> list[dict[str, Any]]:
        """Rejected items, most recent first."""
        sql = (
            "SELECT source_file, source_line, source_entry, resource_type, resource_id, rule, "
            "element, message, load_id FROM quarantine ORDER BY quarantined_at DESC, "
            "source_file, source_line, source_entry"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        cols = [
            "file",
            "line",
            "entry",
            "resource_type",
            "resource_id",
            "rule",
            "element",
            "message",
            "load_id",
        ]
        return [dict(zip(cols, row, strict=True)) for row in self.con.execute(sql).fetchall()]

    def get(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """The current version of one resource, or ``None``."""
        row = one(
            self.con.execute(
                "SELECT resource FROM resources WHERE resource_type = ? AND id = ?",
                [resource_type, resource_id],
            )
        )
        return orjson.loads(row[0]) if row else None

    def export_ndjson(self, folder: str | Path, original: bool = False) -> dict[str, int]:
        """Write the store as a bulk-export folder: NDJSON per type, and ``manifest.json``.

        Resources of the data model's types are written as stored, in R5; other resources in
        the release they came in. When a type holds several releases, each gets its own file
        (``Device.R4.ndjson``). The manifest follows the FHIR Bulk Data format and gives each
        file's ``fhirVersion``, so that importing the folder again needs no options.

        Parameters
        ----------
        folder : str or Path
            Output folder (created).
        original : bool
            Write each resource as it was received (R4 stays R4) instead of as stored.

        Returns
        -------
        dict
            Resources written per type.
        """
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        profiled = "[" + ", ".join(f"'{t}'" for t in sorted(PROFILED_TYPES)) + "]"
        if original:
            column, version = "coalesce(source_resource, resource)", "fhir_version"
        else:
            column = "resource"
            version = (
                f"CASE WHEN list_contains({profiled}, resource_type) THEN '{R5}' "
                "ELSE fhir_version END"
            )
        groups = self.con.execute(
            f"SELECT resource_type, {version} AS v, count(*) FROM resources "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        per_type: dict[str, int] = {}
        for rt, _v, _n in groups:
            per_type[rt] = per_type.get(rt, 0) + 1
        counts: dict[str, int] = {}
        outputs = []
        for rt, v, n in groups:
            name = f"{rt}.ndjson" if per_type[rt] == 1 else f"{rt}.{RELEASE_NAMES[v]}.ndjson"
            cur = self.con.execute(
                f"SELECT {column} FROM resources WHERE resource_type = ? AND {version} = ? "
                "ORDER BY id",
                [rt, v],
            )
            with (out / name).open("w", encoding="utf-8") as fh:
                while batch := cur.fetchmany(10_000):
                    fh.write("\n".join(r[0] for r in batch))
                    fh.write("\n")
            counts[rt] = counts.get(rt, 0) + int(n)
            outputs.append({"type": rt, "url": name, "count": int(n), "fhirVersion": v})
        manifest = {
            "transactionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "requiresAccessToken": False,
            "output": outputs,
            "error": [],
            "generator": f"cardiobox {__version__}",
        }
        (out / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        return counts

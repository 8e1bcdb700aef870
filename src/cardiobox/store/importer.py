"""Import FHIR data into a site store: read, validate, convert, store or quarantine.

Everything happens inside one DuckDB transaction, so an import is atomic: a killed import
leaves the store as it was. Items are staged, then judged in bulk:

1. JSON syntax, resourceType and id (vectorised);
2. structure, in the release the data is written in (:mod:`cardiobox.store.validate`);
3. conversion of the data model's resource types from R4/R4B to R5;
4. the data model's profile rules (:mod:`cardiobox.cdm.profile`);
5. the same (type, id) twice in one import with different content: the later item wins,
   the earlier one is quarantined (``duplicate-id``);
6. merge into ``resources``: new → created; same content as stored → unchanged (nothing is
   written, which makes imports idempotent); different content → updated, and the previous
   version moves to ``resource_history``.

For every import: items read = stored (created + updated + unchanged) + quarantined.

A producer that builds the resources itself (the ingestion engine) may stage them as a table
of its own, each item with its type, id and md5: that table becomes the table of items as it
is, without a copy, and the same checks run on it. Its column ``profile_x``, where present,
holds each Observation's values that the data model's rules read (checked on those instead
of parsing the text, same findings), and ``facts_x`` those that the fact tables read.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from cardiobox import __version__
from cardiobox.cdm.dictionary import load_dictionary
from cardiobox.cdm.fhir_versions import (
    R4,
    R5,
    normalise_version,
    resource_types,
    version_from_profiles,
)
from cardiobox.cdm.findings import Finding
from cardiobox.cdm.jsontext import dumps, loads_exact
from cardiobox.cdm.profile import GIVEN_X as RULES_X
from cardiobox.cdm.profile import dictionary_tables, profile_rules_sql
from cardiobox.cdm.r4_to_r5 import CONVERTERS, convert_r4_to_r5
from cardiobox.cdm.structure import structural_findings
from cardiobox.duck import sql_str, temp_table
from cardiobox.errors import InputError, Location
from cardiobox.store import readers
from cardiobox.store.db import one, scalar_int
from cardiobox.store.facts import GIVEN_X as FACTS_X
from cardiobox.store.validate import StructureValidator

#: Callback for progress: (phase description, items done in this step, total or None).
Progress = Callable[[str, int, int | None], None]

_ID_RULE = r"^[A-Za-z0-9\-\.]{1,64}$"

#: The patient an item belongs to: given by the producer, the Patient itself, or its subject.
_PATIENT_REF = """CASE WHEN patient IS NOT NULL THEN patient
    WHEN rt = 'Patient' THEN rid ELSE regexp_extract(
        list_filter(json_extract_string(doc, ['$.subject.reference', '$.patient.reference']),
                    lambda r: r IS NOT NULL)[1],
        '(?:^|/)Patient/([A-Za-z0-9\\-\\.]{1,64})$', 1) END"""

# The first basic problem of an item (rule, element, message), over ``i`` (ok: the text is
# JSON; jt: its JSON type; rt, rid: type and id when strings; rt_type, id_type: their JSON
# types; fhir_version) and ``k`` (the release's resource types).
_EARLY_RULE = f"""CASE WHEN NOT ok THEN 'invalid-json'
    WHEN jt <> 'OBJECT' THEN 'not-a-resource'
    WHEN i.rt IS NULL THEN 'missing-resourceType'
    WHEN k.rt IS NULL THEN 'unknown-resource-type'
    WHEN rid IS NULL THEN 'missing-id'
    WHEN NOT regexp_matches(rid, '{_ID_RULE}') THEN 'invalid-id'
END"""
_EARLY_ELEMENT = """CASE WHEN NOT ok OR jt <> 'OBJECT' THEN NULL
    WHEN i.rt IS NULL OR k.rt IS NULL THEN 'resourceType'
    ELSE i.rt || '.id' END"""
_EARLY_MESSAGE = """CASE WHEN NOT ok THEN 'invalid JSON'
    WHEN jt <> 'OBJECT' THEN format(
        'expected a JSON object (a FHIR resource), found a JSON {}', lower(jt))
    WHEN i.rt IS NULL AND rt_type IS NULL THEN
        'the item has no resourceType, so it is not a FHIR resource'
    WHEN i.rt IS NULL THEN 'resourceType must be a string'
    WHEN k.rt IS NULL THEN format('{} is not a resource type of FHIR {}', i.rt, i.fhir_version)
    WHEN rid IS NULL AND id_type IS NULL THEN
        'the resource has no id; every stored resource needs one'
    WHEN rid IS NULL THEN 'id must be a string'
    ELSE format('id {} is not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)', to_json(rid))
END"""


@dataclass
class ImportReport:
    """What an import did.

    Attributes
    ----------
    read : int
        Items read (NDJSON lines, Bundle entries, single resources; blank lines excluded).
    stored : int
        Items whose resource is in the store after the import (created + updated + unchanged).
    quarantined : int
        Items rejected, each with a reason in the ``quarantine`` table.
    """

    load_id: str
    files: list[str]
    fhir_versions: dict[str, str]
    read: int = 0
    stored: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    warnings: int = 0
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)
    quarantine_by_rule: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {
            "load_id": self.load_id,
            "files": self.files,
            "fhir_versions": self.fhir_versions,
            "read": self.read,
            "stored": self.stored,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "quarantined": self.quarantined,
            "warnings": self.warnings,
            "by_type": self.by_type,
            "quarantine_by_rule": self.quarantine_by_rule,
            "examples": self.examples,
            "seconds": round(self.seconds, 3),
            "resources_per_second": round(self.read / self.seconds) if self.seconds else None,
        }


# ``grp``: items of one source row (ingestion) are stored or rejected together; ``shape``: a
# key that the producer guarantees equal for items of equal JSON structure (generated
# resources), saving the structure computation; ``provenance``: JSON kept with the resource;
# ``hash``: the md5 of ``raw``, when the producer hashed the text as it built it.
STAGE_DDL = """
CREATE OR REPLACE TEMP TABLE _stage (
    seq BIGINT, file VARCHAR, line BIGINT, entry INTEGER, raw VARCHAR,
    grp BIGINT, shape VARCHAR, provenance VARCHAR, patient VARCHAR, rt VARCHAR, rid VARCHAR,
    hash VARCHAR
);
CREATE OR REPLACE TEMP TABLE _rejected (
    seq BIGINT, file VARCHAR, line BIGINT, entry INTEGER, rt VARCHAR, rid VARCHAR,
    rule VARCHAR, element VARCHAR, message VARCHAR, findings JSON, raw VARCHAR, grp BIGINT
);
CREATE OR REPLACE TEMP TABLE _groups (
    grp BIGINT, file VARCHAR, line BIGINT, raw VARCHAR
);
CREATE OR REPLACE TEMP TABLE _warnings (
    seq BIGINT, rule VARCHAR, element VARCHAR, message VARCHAR
);
"""


class Importer:
    """Runs one import into an open store connection (inside a transaction).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection to the site store, with a transaction open.
    fhir_version : str, optional
        Release of the input; when omitted it is read from ``meta.profile`` of the data.
    progress : callable, optional
        Progress callback.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        fhir_version: str | None = None,
        progress: Progress | None = None,
        kind: str = "fhir-import",
        trusted_shapes: bool = False,
    ):
        self.con = con
        self.kind = kind
        self.trusted_shapes = trusted_shapes
        self.fhir_version = normalise_version(fhir_version) if fhir_version else None
        self.progress = progress or (lambda _phase, _n, _total: None)
        self.load_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]

    # -- staging ---------------------------------------------------------------------------
    def begin(self) -> None:
        """Create the (empty) staging tables."""
        self.con.execute(STAGE_DDL)

    def stage(self, paths: Sequence[str | Path]) -> tuple[list[str], dict[str, str]]:
        """Read every input into ``_stage``; return the files and each file's FHIR release."""
        self.begin()
        files = [f for p in paths for f in readers.discover(p)]
        self._manifest: dict[str, str] = {}
        for p in paths:
            if Path(p).is_dir():
                self._manifest.update(readers.manifest_versions(Path(p)))
        total = sum(readers.count_lines(f) for f in files) or None
        seq = 0
        for f in files:
            if readers.is_plain_ndjson(f):
                n = self._stage_ndjson_fast(f, seq)
                if n is not None:
                    seq += n
                    self.progress("reading", n, total)
                    continue
            seq = self._stage_python(f, seq, total)
        return [str(f) for f in files], self._versions([str(f) for f in files])

    def _stage_ndjson_fast(self, path: Path, seq: int) -> int | None:
        """Stage an NDJSON file with DuckDB's reader; ``None`` if it needs the careful path.

        Each line is read as one text value (no CSV parsing: the delimiter and quote are
        disabled); the reader keeps blank lines, so line numbers stay exact.
        """
        try:
            self.con.execute(
                f"""INSERT INTO _stage
                SELECT {seq} + line - 1, ?, line, NULL,
                    CASE WHEN suffix(raw, chr(13)) THEN rtrim(raw, chr(13)) ELSE raw END,
                    NULL, NULL, NULL, NULL, NULL, NULL, NULL
                FROM (
                    SELECT row_number() OVER () AS line, raw FROM read_csv(?,
                        columns = {{'raw': 'VARCHAR'}}, header = false, delim = chr(1),
                        quote = '', escape = '', auto_detect = false,
                        new_line = '{readers.newline_option(path)}',
                        strict_mode = false, parallel = false, max_line_size = 536870912)
                ) WHERE raw IS NOT NULL AND NOT regexp_full_match(raw, '\\s*')""",
                [str(path), str(path)],
            ).fetchall()
        except duckdb.Error:
            return None  # not UTF-8, a line too long...: read it line by line
        last = one(
            self.con.execute(
                "SELECT coalesce(max(line), 0) FROM _stage WHERE file = ?", [str(path)]
            )
        )
        return int(last[0]) if last else 0

    def _stage_python(self, path: Path, seq: int, total: int | None) -> int:
        con = self.con
        for chunk in readers.read_items(path):
            n = len(chunk.raws)
            if n:
                table = pa.table(
                    {
                        "seq": pa.array(range(seq, seq + n), pa.int64()),
                        "file": pa.array([chunk.file] * n, pa.string()),
                        "line": pa.array(chunk.lines, pa.int64()),
                        "entry": pa.array(chunk.entries, pa.int32()),
                        "raw": pa.array(chunk.raws, pa.string()),
                    }
                )
                con.register("_chunk", table)
                con.execute(
                    "INSERT INTO _stage SELECT *, NULL, NULL, NULL, NULL, NULL, NULL, NULL "
                    "FROM _chunk"
                )
                con.unregister("_chunk")
                seq += n
            for r in chunk.rejected:
                con.execute(
                    "INSERT INTO _rejected VALUES "
                    "(?, ?, ?, ?, NULL, NULL, ?, NULL, ?, NULL, ?, NULL)",
                    [seq, r.file, r.line, r.entry, r.rule, r.message, r.raw],
                )
                seq += 1
            self.progress("reading", n + len(chunk.rejected), total)
        return seq

    def _versions(self, files: list[str]) -> dict[str, str]:
        """Each file's FHIR release: given, or read from meta.profile.

        A file without a recognised profile (a bulk export's log file, a file of resources
        without meta) takes the release of the other files of the import when they agree.
        """
        if self.fhir_version:
            return dict.fromkeys(files, self.fhir_version)
        found = {f: self._manifest.get(f) or self._file_version(f) for f in files}
        known = {v for v in found.values() if v}
        out: dict[str, str] = {}
        for f, v in found.items():
            if v is None and len(known) != 1:
                raise InputError(
                    "cannot tell which FHIR release this file is written in (no known profile "
                    "in meta.profile"
                    + (f"; other files of the import disagree: {sorted(known)}" if known else "")
                    + "); pass --fhir-version R4, R4B or R5",
                    rule="fhir-version",
                    location=Location(file=f),
                )
            out[f] = v or next(iter(known))
        return out

    def _file_version(self, file: str) -> str | None:
        profiles = [
            r[0]
            for r in self.con.execute(
                # The release is a property of the file: its first 10,000 items tell it.
                "SELECT DISTINCT unnest(json_extract_string(raw, '$.meta.profile[*]')) "
                "FROM (SELECT raw FROM _stage WHERE file = ? LIMIT 10000) WHERE json_valid(raw)",
                [file],
            ).fetchall()
            if r[0]
        ]
        try:
            return version_from_profiles(profiles)
        except InputError as exc:
            raise InputError(exc.message, exc.rule, Location(file=file)) from None

    # -- judging ---------------------------------------------------------------------------
    def judge(self, versions: dict[str, str]) -> None:
        """Validate and convert staged items.

        Afterwards ``_items`` holds the accepted items (its ``doc`` is the text as received,
        or the R5 form when converted), ``_rejected`` the rejected ones with their reasons,
        ``_warnings`` the warnings on accepted items.
        """
        con = self.con
        temp_table(
            con,
            "_versions",
            [("file", "VARCHAR"), ("fhir_version", "VARCHAR")],
            list(versions.items()),
        )
        known = [(v, t) for v in set(versions.values()) for t in resource_types(v)]
        temp_table(con, "_known", [("fhir_version", "VARCHAR"), ("rt", "VARCHAR")], known)
        self.progress("checking JSON", 0, None)
        # Line numbers are fixed now; the rest needs no particular row order.
        con.execute("SET preserve_insertion_order = false")
        if self._adoptable(versions):
            self._adopt_stage(next(iter(versions.values())))
        else:
            self._copy_stage()
        self._structure()
        self._convert()
        self._profile()

    def _adoptable(self, versions: dict[str, str]) -> bool:
        """True when ``_stage`` is a producer's own table of built resources.

        Such a table (every item with its type given, one FHIR release) becomes the table of
        items as it is, instead of being copied.
        """
        if len(set(versions.values())) != 1:
            return False
        is_table = scalar_int(
            self.con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = '_stage'"
            )
        )
        untyped = one(
            self.con.execute("SELECT count(*) FILTER (WHERE rt IS NULL), count(*) FROM _stage")
        )
        return bool(is_table) and untyped is not None and untyped[0] == 0 and untyped[1] > 0

    def _adopt_stage(self, version: str) -> None:
        """Take the producer's ``_stage`` over as ``_items``; reject its items' basic problems."""
        con = self.con
        con.execute(
            f"""ALTER TABLE _stage RENAME TO _items;
            ALTER TABLE _items RENAME COLUMN raw TO doc;
            ALTER TABLE _items ADD COLUMN fhir_version VARCHAR DEFAULT {sql_str(version)};
            ALTER TABLE _items ADD COLUMN source_doc VARCHAR"""
        )
        con.execute("DROP TABLE IF EXISTS _stage_data")
        # A built resource is a JSON object whose type and id are strings.
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _failed AS
            SELECT seq, rule, element, message, NULL AS findings FROM (
                SELECT i.seq, {_EARLY_RULE} AS rule, {_EARLY_ELEMENT} AS element,
                    {_EARLY_MESSAGE} AS message
                FROM (SELECT seq, rt, rid, fhir_version, true AS ok, 'OBJECT' AS jt,
                          'VARCHAR' AS rt_type, 'VARCHAR' AS id_type FROM _items) i
                LEFT JOIN _known k ON k.rt = i.rt AND k.fhir_version = i.fhir_version
            ) WHERE rule IS NOT NULL"""
        )
        self._move_failed()

    def _copy_stage(self) -> None:
        """Create ``_items`` from ``_stage``, with each item's type, id and basic problem."""
        con = self.con
        # One pass: validity, resource type and id, and the first basic problem of each item.
        # The text is kept exactly as received: re-serialising would rewrite decimals (1.50).
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _items AS
            WITH keyed AS (
                SELECT s.seq, s.file, s.line, s.entry, s.grp, s.shape, s.provenance, s.patient,
                    v.fhir_version, s.raw AS doc, coalesce(s.hash, md5(s.raw)) AS hash,
                    -- try(): NULL for text that is not JSON, so each item is parsed twice;
                    -- a producer that built the resource gives its type and id itself.
                    CASE WHEN s.rt IS NULL
                         THEN try(json_type(s.raw, ['$', '$.resourceType', '$.id']))
                         ELSE ['OBJECT', 'VARCHAR', 'VARCHAR'] END AS kt,
                    CASE WHEN s.rt IS NULL
                         THEN try(json_extract_string(s.raw, ['$.resourceType', '$.id']))
                         ELSE [s.rt, s.rid] END AS kv
                FROM _stage s JOIN _versions v USING (file)
            ), typed AS (
                SELECT * EXCLUDE (kt, kv), kt IS NOT NULL AS ok, kt[1] AS jt,
                    CASE WHEN kt[2] = 'VARCHAR' THEN kv[1] END AS rt,
                    CASE WHEN kt[3] = 'VARCHAR' THEN kv[2] END AS rid,
                    kt[2] AS rt_type, kt[3] AS id_type
                FROM keyed
            )
            SELECT i.seq, i.file, i.line, i.entry, i.grp, i.shape, i.provenance, i.patient,
                i.fhir_version, i.doc, i.hash, NULL::VARCHAR AS source_doc, i.rt, i.rid,
                {_EARLY_RULE} AS early_rule, {_EARLY_ELEMENT} AS early_element,
                {_EARLY_MESSAGE} AS early_message
            FROM typed i LEFT JOIN _known k ON k.rt = i.rt AND k.fhir_version = i.fhir_version"""
        )
        # The staged text now lives in _items; free it (a producer's view and its table too).
        is_view = con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = '_stage'"
        ).fetchall()[0][0]
        con.execute(f"DROP {'VIEW' if is_view else 'TABLE'} _stage")
        con.execute("DROP TABLE IF EXISTS _stage_data")
        con.execute(
            """INSERT INTO _rejected
            SELECT seq, file, line, entry, rt, rid, early_rule, early_element, early_message,
                NULL, doc, grp
            FROM _items WHERE early_rule IS NOT NULL"""
        )
        self._describe_bad_json()
        con.execute("DELETE FROM _items WHERE early_rule IS NOT NULL")

    def _describe_bad_json(self) -> None:
        """Replace 'invalid JSON' by the parser's own message, for the (few) bad items."""
        bad = self.con.execute(
            "SELECT seq, raw FROM _rejected "
            "WHERE rule = 'invalid-json' AND message = 'invalid JSON'"
        ).fetchall()
        rows = []
        for seq, raw in bad:
            try:
                orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                rows.append((f"invalid JSON: {exc.msg} at column {exc.colno}", seq))
        if rows:
            self.con.executemany("UPDATE _rejected SET message = ? WHERE seq = ?", rows)

    def _reject(self, failures: dict[int, list[Finding]], rule: str | None = None) -> None:
        """Move failed items from ``_items`` to ``_rejected`` with their findings."""
        if not failures:
            return
        rows = []
        for seq, findings in failures.items():
            errors = [f for f in findings if f.severity == "error"] or findings
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            rows.append(
                (
                    seq,
                    rule or first.rule,
                    first.element,
                    first.message + more,
                    orjson.dumps([f.to_dict() for f in errors]).decode(),
                )
            )
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _failed (seq BIGINT, rule VARCHAR, element VARCHAR, "
            "message VARCHAR, findings VARCHAR)"
        )
        self.con.executemany("INSERT INTO _failed VALUES (?, ?, ?, ?, ?)", rows)
        self._move_failed()

    def _move_failed(self) -> None:
        """Move the items listed in ``_failed`` from ``_items`` to ``_rejected``."""
        self.con.execute(
            """INSERT INTO _rejected
            SELECT i.seq, i.file, i.line, i.entry, i.rt, i.rid, f.rule, f.element, f.message,
                f.findings, coalesce(i.source_doc, i.doc), i.grp
            FROM _failed f JOIN _items i USING (seq)"""
        )
        self.con.execute("DELETE FROM _items WHERE seq IN (SELECT seq FROM _failed)")

    def _structure(self) -> None:
        con = self.con
        validator = StructureValidator(con)
        for (version,) in con.execute("SELECT DISTINCT fhir_version FROM _items").fetchall():
            con.execute(
                "CREATE OR REPLACE TEMP VIEW _to_check AS SELECT seq, rt, doc, shape FROM _items "
                f"WHERE fhir_version = '{version}'"
            )
            self.progress(f"validating FHIR {version} structure", 0, None)
            failures = validator.validate(
                "_to_check",
                version,
                lambda n: self.progress("validating (exact)", n, None),
                trusted_shapes=self.trusted_shapes,
            )
            self._hint_other_release(failures, version)
            self._reject(failures)

    def _hint_other_release(self, failures: dict[int, list[Finding]], version: str) -> None:
        """Say so when invalid resources are valid in the other release.

        The declared release is then probably wrong. Checks at most 50 resources.
        """
        other = R4 if version == R5 else R5
        seqs = list(failures)[:50]
        if not seqs:
            return
        docs = self.con.execute(
            "SELECT seq, doc FROM _items WHERE seq IN (SELECT unnest(?))", [seqs]
        ).fetchall()
        valid_elsewhere = {
            seq for seq, doc in docs if not structural_findings(orjson.loads(doc), other)
        }
        if len(valid_elsewhere) * 2 < len(seqs):
            return
        name = {R4: "R4", R5: "R5"}[other]
        for seq in failures:
            f = failures[seq][0]
            failures[seq][0] = Finding(
                f.resource_type,
                f.resource_id,
                f.element,
                f.rule,
                f"{f.message} [the resources are valid FHIR {name}: is the FHIR release "
                f"right? (--fhir-version)]",
            )

    def _convert(self) -> None:
        """Convert R4/R4B resources of the data model's types to R5 (kept: the original)."""
        con = self.con
        triggers = [(rt, key) for rt, (_f, keys) in CONVERTERS.items() for key in keys]
        temp_table(con, "_triggers", [("rt", "VARCHAR"), ("k", "VARCHAR")], triggers)
        todo = con.execute(
            """SELECT seq, doc FROM _items i
            WHERE fhir_version <> ? AND rt IN (SELECT rt FROM _triggers)
              AND list_has_any(json_keys(doc), (SELECT list(k) FROM _triggers t WHERE t.rt = i.rt))
            ORDER BY seq""",
            [R5],
        ).fetchall()
        if not todo:
            return
        self.progress("converting R4 → R5", 0, len(todo))
        converted = pa.table(
            {
                "seq": [s for s, _ in todo],
                "new_doc": [dumps(convert_r4_to_r5(loads_exact(d))) for _, d in todo],
            }
        )
        con.register("_converted_arrow", converted)
        con.execute(
            """UPDATE _items SET source_doc = doc, doc = c.new_doc, hash = md5(c.new_doc)
            FROM _converted_arrow c WHERE _items.seq = c.seq"""
        )
        con.unregister("_converted_arrow")
        self.progress("converting R4 → R5", len(todo), len(todo))
        # The converted resources must be valid R5.
        con.execute(
            "CREATE OR REPLACE TEMP VIEW _to_check AS SELECT seq, rt, doc, NULL AS shape "
            "FROM _items WHERE source_doc IS NOT NULL"
        )
        failures = StructureValidator(con).validate("_to_check", R5)
        self._reject(failures, rule="conversion")

    def _profile(self) -> None:
        con = self.con
        self.progress("checking the data model's rules", 0, None)
        dictionary_tables(con, load_dictionary())
        # A producer's values of the rules, where it gave them, are read instead of the text.
        given = self._has_column(RULES_X)
        con.execute(
            "CREATE OR REPLACE TEMP VIEW items AS SELECT seq, rt AS resource_type, doc"
            + (f", {RULES_X} FROM _items" if given else " FROM _items")
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE _profile AS {profile_rules_sql(given)}")
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _failed AS
            SELECT seq, first(rule ORDER BY element) AS rule,
                first(element ORDER BY element) AS element,
                first(message ORDER BY element)
                    || CASE WHEN count(*) > 1 THEN format(' (and {} more)', count(*) - 1)
                            ELSE '' END AS message,
                to_json(list({'resource_type': NULL, 'element': element, 'rule': rule,
                              'message': message, 'severity': severity}))::VARCHAR AS findings
            FROM _profile WHERE severity = 'error' GROUP BY seq"""
        )
        self._move_failed()
        con.execute(
            "INSERT INTO _warnings SELECT seq, rule, element, message FROM _profile "
            "WHERE severity = 'warning' AND seq IN (SELECT seq FROM _items)"
        )
        if given:  # nothing reads the given values again: free them before the writing
            con.execute(f"DROP VIEW items; ALTER TABLE _items DROP COLUMN {RULES_X}")

    # -- writing ---------------------------------------------------------------------------
    def write(self, files: list[str], versions: dict[str, str], started: float) -> ImportReport:
        """Merge accepted items into the store and record rejects; return the report.

        Afterwards the view ``_written(resource_type, id, patient_id, resource)`` holds the
        resources this import created or updated, for the fact tables' refresh.
        """
        con = self.con
        load = self.load_id
        self._reject_groups()
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW _keyed AS SELECT seq, rt, rid, hash, {_PATIENT_REF} "
            "AS patient_ref FROM _items"
        )
        winners = "_keyed" if self._ids_distinct() else self._pick_winners()
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _merge AS
            SELECT w.seq, w.rt, w.rid, w.hash, w.patient_ref,
                CASE WHEN r.content_hash IS NULL THEN 'created'
                     WHEN r.content_hash = w.hash THEN 'unchanged' ELSE 'updated' END AS action
            FROM {winners} w
            LEFT JOIN resources r ON r.resource_type = w.rt AND r.id = w.rid"""
        )
        con.execute(
            """INSERT INTO resource_history
            SELECT r.*, ?, now()::TIMESTAMP FROM resources r
            JOIN _merge m ON r.resource_type = m.rt AND r.id = m.rid
            WHERE m.action = 'updated'""",
            [load],
        )
        for table in ("resources", "findings"):
            con.execute(
                f"""DELETE FROM {table} WHERE (resource_type, id) IN
                (SELECT (rt, rid) FROM _merge WHERE action = 'updated')"""
            )
        self.progress("writing", 0, None)
        given_x = f", {FACTS_X}" if self._has_column(FACTS_X) else ""
        if winners == "_keyed" and self._all_created():
            # Every item is new and its own winner: all of _items goes in, no join needed.
            con.execute(
                f"""INSERT INTO resources
                SELECT rt, rid, {_PATIENT_REF}, fhir_version, doc, source_doc, hash, ?,
                    file, line, entry, provenance
                FROM _items""",
                [load],
            )
            written = f"SELECT rt, rid, {_PATIENT_REF}, doc{given_x} FROM _items"
        else:
            con.execute(
                """INSERT INTO resources
                SELECT i.rt, i.rid, m.patient_ref, i.fhir_version, i.doc, i.source_doc, m.hash,
                    ?, i.file, i.line, i.entry, i.provenance
                FROM _items i JOIN _merge m USING (seq)
                WHERE m.action IN ('created', 'updated')""",
                [load],
            )
            written = f"""SELECT i.rt, i.rid, m.patient_ref, i.doc{given_x} FROM _items i
                JOIN _merge m USING (seq) WHERE m.action IN ('created', 'updated')"""
        # What was written, as the fact tables read it (the text not read back from the store;
        # a producer's values of the facts when it gave them).
        names = "resource_type, id, patient_id, resource" + given_x
        con.execute(f"CREATE OR REPLACE TEMP VIEW _written ({names}) AS {written}")
        con.execute(
            """INSERT INTO findings
            SELECT m.rt, m.rid, ?, 'warning', w.rule, w.element, w.message
            FROM _warnings w JOIN _merge m USING (seq)
            WHERE m.action IN ('created', 'updated')""",
            [load],
        )
        self._quarantine()
        return self._report(files, versions, started)

    def _has_column(self, column: str) -> bool:
        """True when the producer gave ``_items`` a column (``facts_x``, ``profile_x``)."""
        return bool(
            scalar_int(
                self.con.execute(
                    "SELECT count(*) FROM duckdb_columns() WHERE database_name = 'temp' "
                    "AND table_name = '_items' AND column_name = ?",
                    [column],
                )
            )
        )

    def _all_created(self) -> bool:
        """True when the merge plan creates every resource (none is stored yet)."""
        return not scalar_int(
            self.con.execute("SELECT count(*) FROM _merge WHERE action <> 'created'")
        )

    def _ids_distinct(self) -> bool:
        """True when no (type, id) occurs twice among the items.

        Checked on a 64-bit hash of the pair, cheaper than grouping by the strings: distinct
        hashes mean distinct pairs (a collision only sends the load the longer way).
        """
        row = one(self.con.execute("SELECT count(DISTINCT hash(rt, rid)) = count(*) FROM _items"))
        return bool(row and row[0])

    def _pick_winners(self) -> str:
        """Within this import the last occurrence of a (type, id) wins: ``_winner``.

        An earlier occurrence with other content is rejected (``duplicate-id``); one with the
        same content stays, and counts as unchanged.
        """
        con = self.con
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _winner AS
            SELECT rt, rid, max(seq) AS seq, arg_max(hash, seq) AS hash,
                arg_max(patient_ref, seq) AS patient_ref, count(*) AS n
            FROM _keyed GROUP BY rt, rid"""
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _failed AS
            SELECT a.seq, 'duplicate-id' AS rule, a.rt || '.id' AS element,
                format('{}/{} appears again later in this import ({}) with different content; '
                       'the later one was stored', a.rt, a.rid,
                       coalesce(i.file || coalesce(':' || i.line, '')
                                || coalesce(' entry ' || i.entry, ''), '?')) AS message,
                NULL AS findings
            FROM _items a JOIN (SELECT * FROM _winner WHERE n > 1) w
                ON a.rt = w.rt AND a.rid = w.rid
            JOIN _items i ON i.seq = w.seq
            WHERE a.seq <> w.seq AND a.hash <> w.hash"""
        )
        self._move_failed()
        return "_winner"

    def _reject_groups(self) -> None:
        """An item of a rejected source row takes the rest of the row with it."""
        self.con.execute(
            """CREATE OR REPLACE TEMP TABLE _failed AS
            SELECT seq, 'row-rejected' AS rule, NULL AS element,
                'another resource of the same source row was rejected' AS message,
                NULL AS findings
            FROM _items
            WHERE grp IN (SELECT grp FROM _rejected WHERE grp IS NOT NULL)"""
        )
        self._move_failed()

    def _quarantine(self) -> None:
        con = self.con
        load = self.load_id
        # Ungrouped items are quarantined one by one; a source row (group) once, with all
        # the problems of its resources.
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _q AS
            SELECT md5(coalesce(file, '') || '|' || coalesce(line::VARCHAR, '') || '|'
                       || coalesce(entry::VARCHAR, '') || '|' || coalesce(raw, '')) AS item_hash,
                file, line, entry, rt, rid, rule, element, message, findings, raw
            FROM _rejected WHERE grp IS NULL
            UNION ALL
            SELECT md5(coalesce(g.file, '') || '|' || coalesce(g.line::VARCHAR, '') || '|'
                       || coalesce(g.raw, '')),
                g.file, g.line, NULL, NULL, NULL,
                first(r.rule ORDER BY r.rule = 'row-rejected', r.seq),
                first(r.element ORDER BY r.rule = 'row-rejected', r.seq),
                first(r.message ORDER BY r.rule = 'row-rejected', r.seq)
                    || CASE WHEN count(*) FILTER (WHERE r.rule <> 'row-rejected') > 1
                            THEN format(' (and {} more)',
                                        count(*) FILTER (WHERE r.rule <> 'row-rejected') - 1)
                            ELSE '' END,
                to_json(list({'resource_type': r.rt, 'resource_id': r.rid,
                              'element': r.element, 'rule': r.rule, 'message': r.message}
                             ORDER BY r.seq) FILTER (WHERE r.rule <> 'row-rejected')),
                g.raw
            FROM _rejected r JOIN _groups g USING (grp)
            GROUP BY g.grp, g.file, g.line, g.raw"""
        )
        # Re-importing the same rejected item adds nothing; it only marks it seen again.
        con.execute(
            """UPDATE quarantine SET last_load_id = ?
            WHERE item_hash IN (SELECT item_hash FROM _q)""",
            [load],
        )
        con.execute(
            """INSERT INTO quarantine
            SELECT item_hash, ?, ?, file, line, entry, rt, rid, rule, element, message,
                findings, raw, now()::TIMESTAMP
            FROM _q WHERE item_hash NOT IN (SELECT item_hash FROM quarantine)""",
            [load, load],
        )

    def _report(self, files: list[str], versions: dict[str, str], started: float) -> ImportReport:
        con = self.con
        rep = ImportReport(self.load_id, files, versions)

        def count(sql: str) -> int:
            return scalar_int(con.execute(sql))

        accepted = count("SELECT count(*) FROM _items")
        rep.quarantined = count("SELECT count(*) FROM _q")
        rep.read = accepted + rep.quarantined
        actions = dict(
            con.execute("SELECT action, count(*) FROM _merge GROUP BY action").fetchall()
        )
        rep.created = int(actions.get("created", 0))
        rep.updated = int(actions.get("updated", 0))
        # Items identical to a later item of the same import count as unchanged.
        duplicates = accepted - count("SELECT count(*) FROM _merge")
        rep.unchanged = int(actions.get("unchanged", 0)) + duplicates
        rep.stored = rep.created + rep.updated + rep.unchanged
        rep.warnings = count("SELECT count(*) FROM _warnings WHERE seq IN (SELECT seq FROM _merge)")
        rep.quarantine_by_rule = dict(
            con.execute("SELECT rule, count(*) FROM _q GROUP BY rule ORDER BY 2 DESC").fetchall()
        )
        # The first three problems of each rule, as "file:line element: message".
        for rule, example in con.execute(
            """SELECT rule, coalesce(file, '?') || coalesce(':' || line, '')
                   || coalesce(' entry ' || entry, '') || coalesce(' ' || element, '')
                   || ': ' || message
            FROM (SELECT *, row_number() OVER (PARTITION BY rule ORDER BY line, entry) AS k
                  FROM _q) WHERE k <= 3 ORDER BY rule, k"""
        ).fetchall():
            rep.examples.setdefault(rule, []).append(example)
        by_type: dict[str, dict[str, int]] = {}
        for rt, n in con.execute(
            "SELECT rt, count(*) FROM _items GROUP BY rt ORDER BY rt"
        ).fetchall():
            by_type.setdefault(rt, {"stored": 0, "quarantined": 0})["stored"] = int(n)
        for rt, n in con.execute(
            "SELECT coalesce(rt, '(unknown)'), count(*) FROM _q GROUP BY 1 ORDER BY 1"
        ).fetchall():
            by_type.setdefault(rt, {"stored": 0, "quarantined": 0})["quarantined"] = int(n)
        rep.by_type = by_type
        rep.seconds = time.perf_counter() - started
        if rep.read != rep.stored + rep.quarantined:  # a bug, never bad input
            raise RuntimeError(
                f"import accounting is off: read {rep.read} != stored {rep.stored} + "
                f"quarantined {rep.quarantined}; nothing was written"
            )
        con.execute(
            """INSERT INTO loads VALUES (?, ?, now()::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?, ?,
                ?, ?, ?)""",
            [
                self.load_id,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - rep.seconds)),
                self.kind,
                "; ".join(files),
                orjson.dumps(versions).decode(),
                rep.read,
                rep.stored,
                rep.created,
                rep.updated,
                rep.unchanged,
                rep.quarantined,
                rep.warnings,
                __version__,
            ],
        )
        return rep

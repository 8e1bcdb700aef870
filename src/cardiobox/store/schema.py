"""Tables of a site store (one DuckDB file per hospital site).

``resources``
    The current version of every accepted resource: type, id, patient id, the FHIR release it
    came in, the resource as JSON (R5 shape for the data model's types), the original when it
    was converted, a content hash, and provenance (load, file, line or Bundle entry).
``resource_history``
    Earlier versions replaced by a later load with different content.
``quarantine``
    Every rejected input item, with the rule, element and message, and the raw text.
``findings``
    Warnings on stored resources (they do not reject a resource).
``loads``
    One row per import, with its counts.

(type, id) is unique in ``resources``; the importer enforces it (DuckDB primary keys make
bulk replacement slow, so there is no index).
"""

from __future__ import annotations

import duckdb

from cardiobox.store.db import one

SCHEMA_VERSION = "1"

#: Columns of ``resources``, in table order; ``resource_history`` adds two more.
RESOURCE_COLUMNS = (
    ("resource_type", "VARCHAR NOT NULL"),
    ("id", "VARCHAR NOT NULL"),
    ("patient_id", "VARCHAR"),
    ("fhir_version", "VARCHAR NOT NULL"),
    ("resource", "JSON NOT NULL USING COMPRESSION zstd"),
    ("source_resource", "JSON USING COMPRESSION zstd"),
    ("content_hash", "VARCHAR NOT NULL"),
    ("load_id", "VARCHAR NOT NULL"),
    ("source_file", "VARCHAR"),
    ("source_line", "BIGINT"),
    ("source_entry", "INTEGER"),
    ("provenance", "JSON"),
)
_HISTORY_EXTRA = (("replaced_by_load", "VARCHAR NOT NULL"), ("replaced_at", "TIMESTAMP NOT NULL"))


def _columns(cols: tuple[tuple[str, str], ...]) -> str:
    return ",\n".join(f"    {name} {sql_type}" for name, sql_type in cols)


DDL = f"""
CREATE TABLE IF NOT EXISTS store_info (key VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS loads (
    load_id VARCHAR NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    kind VARCHAR,
    source VARCHAR,
    fhir_versions VARCHAR,
    items_read BIGINT,
    stored BIGINT,
    created BIGINT,
    updated BIGINT,
    unchanged BIGINT,
    quarantined BIGINT,
    warnings BIGINT,
    tool_version VARCHAR
);
CREATE TABLE IF NOT EXISTS resources (
{_columns(RESOURCE_COLUMNS)}
);
CREATE TABLE IF NOT EXISTS resource_history (
{_columns(RESOURCE_COLUMNS + _HISTORY_EXTRA)}
);
CREATE TABLE IF NOT EXISTS quarantine (
    item_hash VARCHAR NOT NULL,
    load_id VARCHAR NOT NULL,
    last_load_id VARCHAR NOT NULL,
    source_file VARCHAR,
    source_line BIGINT,
    source_entry INTEGER,
    resource_type VARCHAR,
    resource_id VARCHAR,
    rule VARCHAR NOT NULL,
    element VARCHAR,
    message VARCHAR NOT NULL,
    findings JSON,
    raw VARCHAR USING COMPRESSION zstd,
    quarantined_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (
    resource_type VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    load_id VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,
    element VARCHAR,
    message VARCHAR NOT NULL
);
"""


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the store's tables if they do not exist and record the schema version."""
    con.execute(DDL)
    row = one(con.execute("SELECT value FROM store_info WHERE key = 'schema_version'"))
    if row is None:
        con.execute("INSERT INTO store_info VALUES ('schema_version', ?)", [SCHEMA_VERSION])
    elif row[0] != SCHEMA_VERSION:
        raise RuntimeError(
            f"store schema version {row[0]} is not supported by this cardiobox "
            f"(expects {SCHEMA_VERSION})"
        )

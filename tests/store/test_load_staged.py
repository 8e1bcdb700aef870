"""Loads staged by a producer: its own table of built resources is taken over, not copied.

A producer (the ingestion engine) may leave ``_stage`` as a table of resources it built, with
each resource's type, id and md5; the store then adopts the table as its table of items. The
result must be the store an ordinary staging (text only, parsed by the store) gives.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from cardiobox.store import SiteStore


def patient(pid: str, gender: str = "female") -> dict[str, object]:
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": "1950-02-03"}


def observation(oid: str, value: float) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-01T10:00:00Z",
        "valueQuantity": {
            "value": value,
            "unit": "mmol/L",
            "system": "http://unitsofmeasure.org",
            "code": "mmol/L",
        },
    }


#: (type, id, resource): duplicates with equal and with other content, an invalid id, an
#: unknown type, a value outside the data model's range.
ITEMS: list[tuple[str, str, dict[str, object]]] = [
    ("Patient", "p1", patient("p1")),
    ("Patient", "p2", patient("p2")),
    ("Patient", "p2", patient("p2")),  # again, same content: unchanged
    ("Patient", "p3", patient("p3")),
    ("Patient", "p3", patient("p3", "male")),  # again, other content: the first is rejected
    ("Patient", "bad id!", patient("bad id!")),
    ("Nonsense", "n1", {"resourceType": "Nonsense", "id": "n1"}),
    ("Observation", "o1", observation("o1", 4.1)),
    ("Observation", "o2", observation("o2", 41.0)),  # implausible potassium
]

Fill = Callable[[duckdb.DuckDBPyConnection], None]


def built(items: list[tuple[str, str, dict[str, object]]]) -> Fill:
    """A producer that builds its own ``_stage`` table, type, id and hash included."""

    def fill(con: duckdb.DuckDBPyConnection) -> None:
        rows = [(k, rt, rid, orjson.dumps(doc).decode()) for k, (rt, rid, doc) in enumerate(items)]
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _built (seq BIGINT, rt VARCHAR, rid VARCHAR,
                raw VARCHAR)"""
        )
        con.executemany("INSERT INTO _built VALUES (?, ?, ?, ?)", rows)
        con.execute(
            """DROP TABLE _stage;
            CREATE TEMP TABLE _stage AS
            SELECT seq, 'extract.csv' AS file, seq + 2 AS line, NULL::INTEGER AS entry, raw,
                NULL::BIGINT AS grp, NULL AS shape, '{"mapping":"m"}' AS provenance,
                NULL AS patient, rt, rid, md5(raw) AS hash
            FROM _built;
            DROP TABLE _built"""
        )

    return fill


def as_text(items: list[tuple[str, str, dict[str, object]]]) -> Fill:
    """The same resources staged as text alone, for the store to parse."""

    def fill(con: duckdb.DuckDBPyConnection) -> None:
        con.executemany(
            """INSERT INTO _stage (seq, file, line, raw, provenance)
            VALUES (?, 'extract.csv', ?, ?, '{"mapping":"m"}')""",
            [(k, k + 2, orjson.dumps(doc).decode()) for k, (_rt, _rid, doc) in enumerate(items)],
        )

    return fill


def contents(store: SiteStore) -> dict[str, list[Any]]:
    """The store's tables, without load ids and times."""
    queries = {
        "resources": "SELECT resource_type, id, patient_id, fhir_version, resource, "
        "source_resource, content_hash, source_file, source_line, provenance FROM resources",
        "quarantine": "SELECT item_hash, source_file, source_line, resource_type, resource_id, "
        "rule, element, message, findings, raw FROM quarantine",
        "findings": "SELECT resource_type, id, severity, rule, element, message FROM findings",
    }
    return {k: store.con.execute(q + " ORDER BY ALL").fetchall() for k, q in queries.items()}


def load(path: Path, fill: Fill) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    with SiteStore(path) as store:
        report = store.load_staged(fill, "extract.csv", "ingest", trusted_shapes=False)
        return report.to_dict(), contents(store)


def test_adopted_table_gives_the_store_of_a_text_staging(tmp_path: Path) -> None:
    rep_built, built_store = load(tmp_path / "built.duckdb", built(ITEMS))
    rep_text, text_store = load(tmp_path / "text.duckdb", as_text(ITEMS))
    assert built_store == text_store
    for key in ("read", "stored", "created", "updated", "unchanged", "quarantined"):
        assert rep_built[key] == rep_text[key], key
    assert rep_built["read"] == len(ITEMS) == rep_built["stored"] + rep_built["quarantined"]
    assert rep_built["quarantine_by_rule"] == {
        "duplicate-id": 1,
        "invalid-id": 1,
        "unknown-resource-type": 1,
        "range": 1,
    }
    assert rep_built["unchanged"] == 1  # p2's identical twin
    # The content hash is the md5 of the stored text.
    with SiteStore(tmp_path / "built.duckdb", read_only=True) as store:
        assert store.con.execute(
            "SELECT count(*) FROM resources WHERE content_hash <> md5(resource::VARCHAR)"
        ).fetchall() == [(0,)]


@pytest.mark.parametrize("fill", [built, as_text])
def test_reload_is_idempotent_and_changes_are_versions(
    tmp_path: Path, fill: Callable[[list[tuple[str, str, dict[str, object]]]], Fill]
) -> None:
    db = tmp_path / "s.duckdb"
    first = [("Patient", "p1", patient("p1")), ("Patient", "p2", patient("p2"))]
    load(db, fill(first))
    rep, _ = load(db, fill(first))
    assert rep["unchanged"] == 2 and rep["created"] == rep["updated"] == 0
    rep, _ = load(db, fill([("Patient", "p1", patient("p1", "male"))]))
    assert rep["updated"] == 1
    with SiteStore(db, read_only=True) as store:
        assert store.con.execute("SELECT count(*) FROM resource_history").fetchall() == [(1,)]
        current = store.get("Patient", "p1")
    assert current is not None and current["gender"] == "male"

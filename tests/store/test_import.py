"""Import into the site store: accounting, idempotence, history, provenance, export."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from cardiobox.store import SiteStore


def write_ndjson(path: Path, items: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n", encoding="utf-8")
    return path


def patient(pid: str, **extra: object) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "gender": "female",
        "birthDate": "1950-02-03",
        **extra,
    }


def observation(oid: str, value: float = 4.1, unit: str = "mmol/L") -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-01T10:00:00Z",
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


def test_synthea_every_item_stored_or_quarantined(synthea_store: Path) -> None:
    with SiteStore(synthea_store, read_only=True) as store:
        s = store.stats()
        q = store.quarantine(None)
    assert s["patients"] == 13
    assert s["by_type"]["Condition"]["resources"] == 555
    assert s["by_type"]["Encounter"]["resources"] == 1215
    assert s["by_type"]["MedicationRequest"]["resources"] == 1745
    assert s["by_type"]["Procedure"]["resources"] == 2056
    assert s["by_type"]["Condition"]["patients"] == 13
    # The export's log.ndjson lines are not resources: quarantined, with the reason.
    assert s["quarantined"] == 4
    assert {r["rule"] for r in q} == {"missing-resourceType"}
    assert all(r["file"].endswith("log.ndjson.gz") and r["line"] in (1, 2, 3, 4) for r in q)
    assert s["resources"] + s["quarantined"] == 7164
    assert s["fhir_versions"] == {"4.0.1": 7160}


def test_synthea_r4_converted_to_r5_original_kept(synthea_store: Path) -> None:
    with SiteStore(synthea_store, read_only=True) as store:
        row = store.con.execute(
            "SELECT resource, source_resource FROM resources WHERE resource_type = 'Encounter' "
            "LIMIT 1"
        ).fetchone()
        med = store.con.execute(
            "SELECT resource FROM resources WHERE resource_type = 'MedicationRequest' LIMIT 1"
        ).fetchone()
    assert row is not None and med is not None
    r5, r4 = orjson.loads(row[0]), orjson.loads(row[1])
    assert "actualPeriod" in r5 and "period" not in r5 and "period" in r4
    assert isinstance(r5["class"], list)
    assert "concept" in orjson.loads(med[0])["medication"]


def test_report_accounting_and_idempotence(tmp_path: Path, synthea_dir: Path) -> None:
    db = tmp_path / "s.duckdb"
    with SiteStore(db) as store:
        first = store.import_fhir(synthea_dir)
        hashes = store.con.execute(
            "SELECT string_agg(content_hash, ',' ORDER BY resource_type, id) FROM resources"
        ).fetchone()
        second = store.import_fhir(synthea_dir)
        hashes2 = store.con.execute(
            "SELECT string_agg(content_hash, ',' ORDER BY resource_type, id) FROM resources"
        ).fetchone()
        s = store.stats()
    assert first.read == first.stored + first.quarantined == 7164
    assert first.created == 7160
    assert second.read == second.stored + second.quarantined
    assert second.created == 0 and second.updated == 0 and second.unchanged == 7160
    assert hashes == hashes2
    assert s["quarantined"] == 4  # the same rejects are not added twice
    assert s["history"] == 0
    assert s["loads"] == 2


def test_update_keeps_previous_version_in_history(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with SiteStore(db) as store:
        store.import_fhir(write_ndjson(tmp_path / "a.ndjson", [patient("p1")]), "R5")
        rep = store.import_fhir(
            write_ndjson(tmp_path / "b.ndjson", [patient("p1", gender="male")]), "R5"
        )
        current = store.get("Patient", "p1")
        hist = store.con.execute(
            "SELECT resource, replaced_by_load FROM resource_history"
        ).fetchall()
    assert rep.updated == 1
    assert current is not None and current["gender"] == "male"
    assert len(hist) == 1 and orjson.loads(hist[0][0])["gender"] == "female"
    assert hist[0][1] == rep.load_id


def test_same_id_twice_in_one_import_later_wins(tmp_path: Path) -> None:
    src = write_ndjson(
        tmp_path / "dup.ndjson",
        [patient("p1"), patient("p1", gender="male"), patient("p2"), patient("p2")],
    )
    with SiteStore(tmp_path / "s.duckdb") as store:
        rep = store.import_fhir(src, "R5")
        q = store.quarantine(None)
        current = store.get("Patient", "p1")
    assert rep.read == 4 and rep.stored == 3 and rep.quarantined == 1
    assert current is not None and current["gender"] == "male"
    assert q[0]["rule"] == "duplicate-id" and q[0]["line"] == 1
    assert "dup.ndjson:2" in q[0]["message"]


def test_provenance_file_and_line(tmp_path: Path) -> None:
    src = write_ndjson(tmp_path / "p.ndjson", [patient("a"), patient("b")])
    with SiteStore(tmp_path / "s.duckdb") as store:
        rep = store.import_fhir(src, "R5")
        rows = store.con.execute(
            "SELECT id, source_file, source_line, load_id, patient_id, fhir_version "
            "FROM resources ORDER BY id"
        ).fetchall()
    assert rows == [
        ("a", str(src), 1, rep.load_id, "a", "5.0.0"),
        ("b", str(src), 2, rep.load_id, "b", "5.0.0"),
    ]


def test_bundle_entries_and_urn_uuid_references(tmp_path: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b2c9c6e-6a8f-4e4c-9a6b-0f3d1f2a4b5c",
                "resource": {"resourceType": "Patient", "gender": "male"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:1c3d0d7f-7b90-4f5d-8b7c-1a4e2a3b5c6d",
                "resource": observation("o1")
                | {
                    "id": "o1",
                    "subject": {"reference": "urn:uuid:0b2c9c6e-6a8f-4e4c-9a6b-0f3d1f2a4b5c"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {"request": {"method": "DELETE", "url": "Patient/old"}},
        ],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    with SiteStore(tmp_path / "s.duckdb") as store:
        rep = store.import_fhir(path, "R5")
        obs = store.get("Observation", "o1")
        pat = store.get("Patient", "0b2c9c6e-6a8f-4e4c-9a6b-0f3d1f2a4b5c")
        q = store.quarantine(None)
        pid = store.con.execute(
            "SELECT patient_id, source_entry FROM resources WHERE id = 'o1'"
        ).fetchone()
    assert rep.read == 3 and rep.stored == 2 and rep.quarantined == 1
    assert pat is not None
    assert obs is not None
    assert obs["subject"]["reference"] == "Patient/0b2c9c6e-6a8f-4e4c-9a6b-0f3d1f2a4b5c"
    assert pid == ("0b2c9c6e-6a8f-4e4c-9a6b-0f3d1f2a4b5c", 1)
    assert q[0]["rule"] == "bundle-entry" and q[0]["entry"] == 2
    assert "DELETE" in q[0]["message"]


def test_export_roundtrip(tmp_path: Path, synthea_store: Path) -> None:
    with SiteStore(synthea_store, read_only=True) as store:
        counts = store.export_ndjson(tmp_path / "out")
        before = store.con.execute(
            "SELECT string_agg(content_hash, ',' ORDER BY resource_type, id) FROM resources"
        ).fetchone()
    assert counts["Patient"] == 13 and sum(counts.values()) == 7160
    with SiteStore(tmp_path / "again.duckdb") as store:
        rep = store.import_fhir(tmp_path / "out")  # releases from manifest.json
        after = store.con.execute(
            "SELECT string_agg(content_hash, ',' ORDER BY resource_type, id) FROM resources"
        ).fetchone()
    assert rep.stored == 7160 and rep.quarantined == 0
    assert before == after


def test_export_original_keeps_r4(tmp_path: Path, synthea_store: Path) -> None:
    with SiteStore(synthea_store, read_only=True) as store:
        store.export_ndjson(tmp_path / "r4", original=True)
    enc = orjson.loads((tmp_path / "r4" / "Encounter.ndjson").read_text().splitlines()[0])
    assert "period" in enc and "actualPeriod" not in enc


def test_read_only_store_must_exist(tmp_path: Path) -> None:
    from cardiobox.errors import InputError

    with pytest.raises(InputError, match="no site store"):
        SiteStore(tmp_path / "missing.duckdb", read_only=True)


def test_decimals_keep_their_precision(tmp_path: Path) -> None:
    """FHIR decimals carry precision in their text (1.50 is not 1.5): stored as written."""
    ndjson_obs = json.dumps(observation("o1")).replace('"value": 4.1', '"value": 4.10')
    (tmp_path / "o.ndjson").write_text(ndjson_obs + "\n", encoding="utf-8")
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": observation("o2")}],
    }
    text = json.dumps(bundle).replace('"value": 4.1', '"value": 4.10')
    (tmp_path / "b.json").write_text(text, encoding="utf-8")
    med = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "furosemide"},
        "subject": {"reference": "Patient/p1"},
        "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 2.50, "unit": "mg"}}]}],
    }
    (tmp_path / "m.ndjson").write_text(
        json.dumps(med).replace("2.5", "2.50") + "\n", encoding="utf-8"
    )
    with SiteStore(tmp_path / "s.duckdb") as store:
        store.import_fhir(tmp_path / "o.ndjson", "R5")
        store.import_fhir(tmp_path / "b.json", "R5")
        store.import_fhir(tmp_path / "m.ndjson", "R4")
        rows = dict(store.con.execute("SELECT id, resource FROM resources").fetchall())
    assert '"value": 4.10' in rows["o1"]
    assert '"value":4.10' in rows["o2"]
    assert '"value":2.50' in rows["m1"] and '"medication":{"concept"' in rows["m1"]

"""Bad input: every kind gets a clear reason naming file, line, id, element and rule,
and nothing is lost (read == stored + quarantined)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from cardiobox.errors import InputError
from cardiobox.store import SiteStore

GOOD_PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "gender": "female",
    "birthDate": "1950-02-03",
}


def obs(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-01T10:00:00Z",
        "valueQuantity": {
            "value": 4.2,
            "unit": "mmol/L",
            "system": "http://unitsofmeasure.org",
            "code": "mmol/L",
        },
    }
    base.update(over)
    return base


def import_lines(tmp_path: Path, lines: list[str], version: str | None = "R5") -> tuple:
    src = tmp_path / "input.ndjson"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with SiteStore(tmp_path / "site.duckdb") as store:
        rep = store.import_fhir(src, version)
        q = store.quarantine(None)
    assert rep.read == rep.stored + rep.quarantined
    return rep, sorted(q, key=lambda r: r["line"] or 0)


@pytest.mark.parametrize(
    ("line", "rule", "element", "needle"),
    [
        ('{"resourceType": "Patient", "id": "x",', "invalid-json", None, "column"),
        ("[1, 2]", "not-a-resource", None, "JSON array"),
        ('{"id": "x"}', "missing-resourceType", "resourceType", "no resourceType"),
        (
            '{"resourceType": "Patientt", "id": "x"}',
            "unknown-resource-type",
            "resourceType",
            "Patientt is not a resource type of FHIR 5.0.0",
        ),
        ('{"resourceType": "Patient"}', "missing-id", "Patient.id", "no id"),
        ('{"resourceType": "Patient", "id": "a b"}', "invalid-id", "Patient.id", "not a valid"),
        ('{"resourceType": "Patient", "id": 5}', "missing-id", "Patient.id", "must be a string"),
        (
            json.dumps(obs(effectiveDateTime="2024-13-45")),
            "structure",
            "Observation.effectiveDateTime",
            "is not a valid FHIR dateTime",
        ),
        (json.dumps(obs(bogus=1)), "structure", "Observation.bogus", "unknown element bogus"),
        (json.dumps(obs(status=None)), "empty", "Observation.status", "null"),
        (
            json.dumps(obs(category={"text": "lab"})),
            "json-type",
            "Observation.category",
            "must be a JSON array",
        ),
        (
            json.dumps(obs(valueQuantity={"value": 4.2, "unit": "mg/dL", "code": "mg/dL"})),
            "unit",
            "Observation.valueQuantity",
            "must be in mmol/L, found 'mg/dL'",
        ),
        (
            json.dumps(obs(valueQuantity={"value": 42, "unit": "mmol/L", "code": "mmol/L"})),
            "range",
            "Observation.valueQuantity.value",
            "outside the plausible range",
        ),
        (
            json.dumps(obs(subject={"reference": "Practitioner/x"})),
            "patient-reference",
            "Observation.subject",
            "must reference a Patient",
        ),
        (
            json.dumps({k: v for k, v in obs().items() if k != "subject"}),
            "required",
            "Observation.subject",
            "required by the cardiology data model",
        ),
    ],
)
def test_bad_item_is_quarantined_with_reason(
    tmp_path: Path, line: str, rule: str, element: str | None, needle: str
) -> None:
    rep, q = import_lines(tmp_path, [json.dumps(GOOD_PATIENT), line])
    assert rep.read == 2 and rep.stored == 1 and rep.quarantined == 1
    item = q[0]
    assert item["rule"] == rule, item
    assert item["line"] == 2
    assert item["file"].endswith("input.ndjson")
    assert item["element"] == element
    assert needle in item["message"], item["message"]


def test_quarantine_keeps_raw_text(tmp_path: Path) -> None:
    bad = '{"resourceType": "Patient", "id": "x",'
    import_lines(tmp_path, [bad])
    with SiteStore(tmp_path / "site.duckdb", read_only=True) as store:
        raw = store.con.execute("SELECT raw FROM quarantine").fetchall()
    assert raw == [(bad,)]


def test_all_errors_of_an_item_are_kept(tmp_path: Path) -> None:
    line = json.dumps(obs(effectiveDateTime="2024-13-45", bogus=1))
    import_lines(tmp_path, [line])
    with SiteStore(tmp_path / "site.duckdb", read_only=True) as store:
        row = store.con.execute("SELECT message, findings FROM quarantine").fetchall()[0]
    findings = json.loads(row[1])
    assert {f["element"] for f in findings} == {
        "Observation.effectiveDateTime",
        "Observation.bogus",
    }
    assert "(and 1 more)" in row[0]


def test_blank_lines_are_not_items(tmp_path: Path) -> None:
    rep, q = import_lines(tmp_path, [json.dumps(GOOD_PATIENT), "", "   "])
    assert rep.read == 1 and rep.stored == 1 and not q


def test_invalid_utf8_line(tmp_path: Path) -> None:
    src = tmp_path / "bad.ndjson"
    src.write_bytes(json.dumps(GOOD_PATIENT).encode() + b"\n\xff\xfe{}\n")
    with SiteStore(tmp_path / "s.duckdb") as store:
        rep = store.import_fhir(src, "R5")
        q = store.quarantine(None)
    assert rep.read == 2 and rep.stored == 1 and rep.quarantined == 1
    assert q[0]["rule"] == "invalid-utf8" and q[0]["line"] == 2


def test_gzipped_ndjson(tmp_path: Path) -> None:
    src = tmp_path / "p.ndjson.gz"
    with gzip.open(src, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps(GOOD_PATIENT) + "\n" + '{"resourceType": 1}\n')
    with SiteStore(tmp_path / "s.duckdb") as store:
        rep = store.import_fhir(src, "R5")
        q = store.quarantine(None)
    assert (rep.read, rep.stored, rep.quarantined) == (2, 1, 1)
    assert q[0]["line"] == 2


def test_missing_fhir_version_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "noversion.ndjson"
    src.write_text(json.dumps(GOOD_PATIENT) + "\n", encoding="utf-8")
    with SiteStore(tmp_path / "s.duckdb") as store:
        with pytest.raises(InputError, match="cannot tell which FHIR release") as err:
            store.import_fhir(src)
        assert err.value.rule == "fhir-version"
        assert err.value.location.file == str(src)
        assert store.stats()["resources"] == 0 and store.stats()["loads"] == 0


def test_unsupported_fhir_version(tmp_path: Path) -> None:
    src = tmp_path / "p.ndjson"
    src.write_text(json.dumps(GOOD_PATIENT) + "\n", encoding="utf-8")
    with SiteStore(tmp_path / "s.duckdb") as store, pytest.raises(InputError, match=r"3\.0\.2"):
        store.import_fhir(src, "3.0.2")


def test_wrong_fhir_version_names_the_element(tmp_path: Path, synthea_dir: Path) -> None:
    """R4 Encounters declared as R5: quarantined, naming the R4-only elements."""
    with SiteStore(tmp_path / "s.duckdb") as store:
        rep = store.import_fhir(synthea_dir / "Encounter.000.ndjson.gz", "R5")
        q = store.quarantine(3)
        findings = json.loads(
            store.con.execute("SELECT findings FROM quarantine LIMIT 1").fetchall()[0][0]
        )
    assert rep.quarantined == rep.read == 1215
    assert "valid FHIR R4" in q[0]["message"] and "--fhir-version" in q[0]["message"]
    messages = {f["element"]: f["message"] for f in findings}
    assert messages["Encounter.period"] == "unknown element period for FHIR 5.0.0 Encounter"


def test_missing_input_path(tmp_path: Path) -> None:
    with SiteStore(tmp_path / "s.duckdb") as store, pytest.raises(InputError, match="no such"):
        store.import_fhir(tmp_path / "nope.ndjson")


def test_unsupported_file_type(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n", encoding="utf-8")
    with SiteStore(tmp_path / "s.duckdb") as store, pytest.raises(InputError, match="expected"):
        store.import_fhir(tmp_path / "x.csv")


def test_invalid_json_file(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text('{"resourceType": "Bundle", ', encoding="utf-8")
    with SiteStore(tmp_path / "s.duckdb") as store:
        rep = store.import_fhir(tmp_path / "b.json", "R5")
        q = store.quarantine(None)
    assert (rep.read, rep.quarantined) == (1, 1)
    assert q[0]["rule"] == "invalid-json"

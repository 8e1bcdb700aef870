"""The data model's rules give the same verdicts on a mapping's given values as on its text.

With each Observation the engine hands the store the values the rules read of it
(``profile_x``), computed from the typed columns its text was built from. They must be what
``json_extract_string`` finds in that text (present where an element is, for the elements
the rules only test for presence), and a load must quarantine and warn exactly as when the
rules parse the text: same rows, rules, elements and messages.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cardiobox.cdm import load_dictionary
from cardiobox.cdm.profile import (
    PRESENCE_PATHS,
    dictionary_tables,
    observation_rule_paths,
    profile_rules_sql,
)
from cardiobox.demo.hospitals import TABLES, HospitalExtract, generate_all
from cardiobox.duck import sql_str
from cardiobox.ingest.engine import MappingRun, run_mapping
from cardiobox.ingest.mapping import load_mapping
from cardiobox.ingest.pseudonym import SiteKey
from cardiobox.store import SiteStore
from cardiobox.store import importer as importer_module

#: Paths holding numbers: JSON may rewrite their text (1.50 → 1.5).
NUMBERS = ("$.valueQuantity.value",)


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HospitalExtract]:
    return generate_all(tmp_path_factory.mktemp("hospitals"), n_patients=25, seed=5)


MAPPING = """cardiobox_mapping: 1
name: dirty
source: {format: csv, path: rows.csv, delimiter: ";", decimal: ","}
timezone: Europe/Madrid
patient: pid
concept_maps: {tests: tests.csv, nyha: nyha.csv}
resources:
  - id: lab
    type: Observation
    code: {expr: test, map: tests}
    value: {expr: result, type: decimal}
    unit: unit
    effective: {expr: day, format: "%d/%m/%Y"}
  - id: nyha
    type: Observation
    variable: nyha_class
    value: {expr: nyha, map: nyha}
    effective: {expr: day, format: "%d/%m/%Y"}
  - id: hr
    type: Observation
    variable: heart_rate
    value: {expr: hr, type: decimal}
    unit: {const: /min}
    effective: {expr: day, format: "%d/%m/%Y"}
  - id: hr_missing
    type: Observation
    variable: heart_rate
    when: "flag = 'y'"
    effective: {expr: day, format: "%d/%m/%Y"}
  - id: note
    type: Observation
    variable: ecg_12_lead
    value: note
"""
TESTS = """local_code,system,code,display
K,http://loinc.org,2823-3,Potassium
CREA,http://loinc.org,2160-0,Creatinine
LOC,http://hospital.example/codes,X1,Local test
NOLOINC,http://loinc.org,99999-9,Not in the dictionary
"""
NYHA = """local_code,system,code,display
I,http://loinc.org,LA28404-4,Class I
II,http://snomed.info/sct,420300004,Class I (SNOMED)
V,http://loinc.org,LA99999-9,Class V
"""
# Values in range and out of it, units that convert and one that does not, unknown local
# codes, a code outside the bound systems, a missing date, a coded answer not allowed, a
# quantity variable without a value, a text value.
ROWS = """pid;day;test;result;unit;nyha;hr;flag;note
p1;01/03/2024;K;4,1;mmol/L;I;72;;
p1;02/03/2024;K;45;mmol/L;II;400;;
p2;03/03/2024;CREA;1,2;mg/dL;V;;y;
p2;04/03/2024;CREA;0,01;mg/dL;;-5;;
p3;05/03/2024;K;4,0;furlongs;;60;;
p3;05/03/2024;K;4,0;mmol/L;Q;60;;
p3;;ZZZ;7;mmol/L;I;61;;
p4;06/03/2024;LOC;3,3;mmol/L;;;;
p4;07/03/2024;NOLOINC;1;mmol/L;;;;free text
p5;08/03/2024;K;;mmol/L;I;;y;
p5;31/03/2024;CREA;9000;umol/L;II;80;;
"""


def _dirty(folder: Path) -> Path:
    for name, text in (("rows.csv", ROWS), ("tests.csv", TESTS), ("nyha.csv", NYHA)):
        (folder / name).write_text(text, encoding="utf-8")
    path = folder / "dirty.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


def _mappings(hospitals: dict[str, HospitalExtract], folder: Path) -> list[Path]:
    return [h.mapping_path(t) for h in hospitals.values() for t in TABLES] + [_dirty(folder)]


def _agree(i: int, path: str) -> str:
    given, parsed = f"profile_x[{i}]", f"x[{i}]"
    if path in PRESENCE_PATHS:
        return f"({given} IS NULL) = ({parsed} IS NULL)"
    if path in NUMBERS:
        given, parsed = f"TRY_CAST({given} AS DOUBLE)", f"TRY_CAST({parsed} AS DOUBLE)"
    return f"{given} IS NOT DISTINCT FROM {parsed}"


def _prepared(path: Path) -> duckdb.DuckDBPyConnection:
    run = MappingRun(
        load_mapping(path), path, None, SiteKey(secrets.token_bytes(32), path), lambda *_: None
    )
    con = duckdb.connect()
    run.prepare(con)
    return con


def test_given_values_are_those_in_the_built_text(
    hospitals: dict[str, HospitalExtract], tmp_path: Path
) -> None:
    paths = observation_rule_paths()
    listed = ", ".join(sql_str(p) for p in paths)
    agree = " AND ".join(_agree(i, p) for i, p in enumerate(paths, 1))
    seen = [0] * len(paths)
    for path in _mappings(hospitals, tmp_path):
        con = _prepared(path)
        rows = f"""(SELECT raw, profile_x, json_extract_string(raw, [{listed}]) AS x
            FROM _stage_data WHERE rt = 'Observation' AND errs IS NULL)"""
        n, given, wrong, *present = con.execute(
            f"SELECT count(*), count(profile_x), count(*) FILTER (WHERE NOT ({agree})), "
            + ", ".join(f"count(x[{i}])" for i in range(1, len(paths) + 1))
            + f" FROM {rows}"
        ).fetchall()[0]
        example = con.execute(f"SELECT raw, profile_x FROM {rows} WHERE NOT ({agree}) LIMIT 1")
        assert given == n, f"{path}: an Observation without its rules' values"
        assert wrong == 0, f"{path}: {paths} {example.fetchall()}"
        seen = [a + b for a, b in zip(seen, present, strict=True)]
        # Other types carry no list.
        assert con.execute(
            "SELECT count(profile_x) FROM _stage_data WHERE rt <> 'Observation'"
        ).fetchall()[0] == (0,)
        con.close()
    found = {p for p, n in zip(paths, seen, strict=True) if n}
    assert {
        "$.code",
        "$.subject.reference",
        "$.valueQuantity.unit",
        "$.valueQuantity.value",
        "$.valueCodeableConcept.coding[0].code",
        "$.valueString",
        "$.effectiveDateTime",
    } <= found, found


def _findings(con: duckdb.DuckDBPyConnection, given: bool) -> list[tuple[Any, ...]]:
    columns = "seq, rt AS resource_type, raw AS doc" + (", profile_x" if given else "")
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW items AS SELECT {columns} FROM _stage_data WHERE errs IS NULL"
    )
    rows = con.execute(f"SELECT * FROM ({profile_rules_sql(given)}) ORDER BY ALL").fetchall()
    return rows


def test_rules_on_given_values_find_what_parsing_finds(
    hospitals: dict[str, HospitalExtract], tmp_path: Path
) -> None:
    rules: set[str] = set()
    for path in _mappings(hospitals, tmp_path):
        con = _prepared(path)
        dictionary_tables(con, load_dictionary())
        parsed, given = _findings(con, False), _findings(con, True)
        con.close()
        assert given == parsed, path
        rules |= {r[2] for r in parsed}
    assert {"required", "binding", "range", "answer", "value-type"} <= rules, rules


def _load(mappings: list[Path], db: Path, key: Path) -> list[dict[str, Any]]:
    reports = []
    for path in mappings:
        rep = run_mapping(path, db, key_file=key).to_dict()
        reports.append(
            {k: rep[k] for k in ("rows_read", "rows_loaded", "rows_quarantined")}
            | {k: rep[k] for k in ("quarantine_by_rule", "examples", "warnings")}
        )
    return reports


def _tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with SiteStore(db) as store:
        con = store.con
        return {
            "quarantine": con.execute(
                "SELECT item_hash, source_file, source_line, source_entry, resource_type, "
                "resource_id, rule, element, message, findings, raw FROM quarantine ORDER BY ALL"
            ).fetchall(),
            "findings": con.execute(
                "SELECT resource_type, id, severity, rule, element, message FROM findings "
                "ORDER BY ALL"
            ).fetchall(),
            "resources": con.execute(
                "SELECT resource_type, id, content_hash FROM resources ORDER BY ALL"
            ).fetchall(),
            "loads": con.execute(
                "SELECT items_read, stored, created, updated, unchanged, quarantined, warnings "
                "FROM loads ORDER BY ALL"
            ).fetchall(),
        }


def test_loads_quarantine_and_warn_as_when_parsing_the_text(
    hospitals: dict[str, HospitalExtract], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One hospital's tables (the rules-only test above covers them all), and the dirty one.
    first = next(iter(hospitals.values()))
    mappings = [first.mapping_path(t) for t in TABLES] + [_dirty(tmp_path)]
    key = tmp_path / "site.key"
    given = _load(mappings, tmp_path / "given.duckdb", key)
    # The store's rules no longer see the given values: they parse every text.
    monkeypatch.setattr(importer_module, "RULES_X", "no_such_column")
    parsed = _load(mappings, tmp_path / "parsed.duckdb", key)
    assert given == parsed
    a, b = _tables(tmp_path / "given.duckdb"), _tables(tmp_path / "parsed.duckdb")
    for table in a:
        assert a[table] == b[table], table
    rules = {r[6] for r in a["quarantine"]} | {r[3] for r in a["findings"]}
    assert {"range", "answer", "unknown-code", "unit-conversion", "binding"} <= rules, rules
    assert {"required", "value-type"} <= {r[3] for r in a["findings"]}

"""Shared fixtures: paths to the data shipped with the project, and a Synthea site store."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiobox.store import SiteStore

ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = ROOT / "data" / "synthea_r4_bulk_10patients"


@pytest.fixture(scope="session")
def synthea_dir() -> Path:
    return SYNTHEA


@pytest.fixture(scope="session")
def synthea_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site store holding the Synthea bulk export (built once per test session)."""
    path = tmp_path_factory.mktemp("synthea") / "site.duckdb"
    with SiteStore(path) as store:
        store.import_fhir(SYNTHEA)
    return path


# --- a small hospital lab extract and its mapping (ingestion tests) ---
LABS = """nhc;sexo;fecha;prueba;resultado;unidad
000123;1;03/02/2024 08:15;K;4,1;mEq/L
000123;1;03/02/2024 08:15;NTPRO;1850;pg/mL
000456;0;05/02/2024 10:40;NA;138;mmol/L
000457;0;05/07/2024 23:05;CREA;1,2;mg/dL
000458;0;05/02/2024 10:40;HB;8,1;mmol/L
"""

MAP = """local_code,system,code,display
K,http://loinc.org,2823-3,Potassium
NA,loinc,2951-2,Sodium
NTPRO,http://loinc.org,33762-6,NT-proBNP
CREA,loinc,2160-0,Creatinine
HB,loinc,718-7,Hemoglobin
"""

MAPPING = """cardiobox_mapping: 1
name: hospital-a-labs
description: Laboratory results of Hospital A
source:
  format: csv
  path: labs.csv
  delimiter: ";"
  decimal: ","
  encoding: latin-1
timezone: Europe/Madrid
patient: nhc
concept_maps:
  lab_tests: maps/lab_tests.csv
  sex:
    inline:
      "1": {code: male}
      "0": {code: female}
resources:
  - id: patient
    type: Patient
    gender: {expr: sexo, map: sex}
  - id: lab
    type: Observation
    code: {expr: prueba, map: lab_tests}
    value: {expr: resultado, type: decimal}
    unit: unidad
    effective: {expr: fecha, format: "%d/%m/%Y %H:%M"}
"""


@pytest.fixture
def extract(tmp_path: Path) -> Path:
    """The mapping file of a small lab extract (latin-1, ';', decimal comma)."""
    (tmp_path / "maps").mkdir()
    (tmp_path / "labs.csv").write_bytes(LABS.encode("latin-1"))
    (tmp_path / "maps" / "lab_tests.csv").write_text(MAP, encoding="utf-8")
    mapping = tmp_path / "labs.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    return mapping

"""Small real site stores (a demo hospital, UCI Cleveland) and a hand-made description."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from cardiobox.catalogue.model import (
    Agent,
    CategoryCount,
    Coding,
    ContactPoint,
    DatasetDescription,
    DatePeriod,
    Distribution,
    HistogramBin,
    MonthPeriod,
    QualityAnnotation,
    QuantitySummary,
    TableColumn,
    VariableEntry,
)

ROOT = Path(__file__).resolve().parents[2]
UCI = ROOT / "examples" / "uci_heart_disease"
CLEVELAND_DATA = ROOT / "data" / "uci_heart_disease" / "processed.cleveland.data"
CLEVELAND_PROFILE = UCI / "catalogue" / "cleveland.yaml"
DEMO_PROFILES = ROOT / "src" / "cardiobox" / "demo" / "hospitals" / "data"
#: The demo tables loaded into the test store (the others only add load time).
DEMO_TABLES = ("patients", "encounters", "labs", "echo")


def demo_profile(hospital: str) -> Path:
    return DEMO_PROFILES / hospital / "catalogue.yaml"


def make_demo_store(root: Path, hospital: str = "hospital_es", n_patients: int = 12) -> Path:
    """A demo hospital's store with a few patients and a few tables."""
    from cardiobox.demo.hospitals import generate_hospital
    from cardiobox.ingest.engine import run_mapping

    extract = generate_hospital(hospital, root / hospital, n_patients=n_patients, seed=5)
    store = root / f"{hospital}.duckdb"
    for table in DEMO_TABLES:
        run_mapping(extract.mapping_path(table), store, key_file=root / "site.key")
    return store


def cleveland_lines(rows: int) -> list[list[str]]:
    """The first ``rows`` lines of the Cleveland file, split."""
    lines = CLEVELAND_DATA.read_text(encoding="utf-8").splitlines()[:rows]
    return [line.split(",") for line in lines]


def make_cleveland_store(root: Path, rows: int = 40) -> Path:
    """A store of the first ``rows`` Cleveland patients, through the example mapping."""
    from cardiobox.ingest.engine import run_mapping

    source = root / "cleveland.data"
    text = CLEVELAND_DATA.read_text(encoding="utf-8").splitlines()[:rows]
    source.write_text("\n".join(text) + "\n", encoding="utf-8")
    store = root / "cleveland.duckdb"
    run_mapping(UCI / "cleveland.yaml", store, source=source, key_file=root / "site.key")
    return store


BASE = "https://hospital-x.example/catalogue/"


def sample_description(**changes: Any) -> DatasetDescription:
    """A complete, valid description made by hand (no store needed)."""
    lvef = VariableEntry(
        id="lvef",
        labels={"en": "Left ventricular ejection fraction", "es": "Fracción de eyección"},
        description="LVEF by echocardiography.",
        category="echo",
        value_type="quantity",
        resource="Observation",
        unit="%",
        coding=(Coding(system="http://loinc.org", codes=("10230-1", "18043-0")),),
        patients=120,
        completeness=80.0,
        years=(2019, 2020),
        summary=QuantitySummary(
            n=300, mean=41.5, sd=12.25, p05=20.0, p25=32.0, median=40.0, p75=52.0, p95=62.5
        ),
        histogram=(
            HistogramBin(lower=10.0, upper=20.0, count=None),
            HistogramBin(lower=20.0, upper=30.0, count=90),
            HistogramBin(lower=30.0, upper=40.0, count=None),
            HistogramBin(lower=None, upper=5.0, count=0),
        ),
    )
    nyha = VariableEntry(
        id="nyha_class",
        labels={"en": "NYHA class"},
        category="assessment",
        value_type="code",
        resource="Observation",
        patients=150,
        completeness=100.0,
        categories=(
            CategoryCount(
                code="LA28405-1", system="http://loinc.org", label={"en": "II"}, count=70
            ),
            CategoryCount(
                code="LA28404-4", system="http://loinc.org", label={"en": "I"}, count=None
            ),
        ),
    )
    rare = VariableEntry(
        id="stroke", labels={"en": "Stroke"}, category="phenotype", value_type="presence",
        resource="Condition", patients=None,
    )  # fmt: skip
    fields: dict[str, Any] = {
        "site": "hospital_x",
        "iri": BASE + "dataset",
        "title": {"en": "Heart-failure admissions of Hospital X", "es": "Ingresos del Hospital X"},
        "description": {"en": "Adults admitted with heart failure."},
        "publisher": Agent(
            iri="https://hospital-x.example/",
            name="Hospital X",
            homepage="https://hospital-x.example/",
            email="info@hospital-x.example",
            type="http://purl.org/adms/publishertype/NonProfitOrganisation",
        ),
        "contact_point": ContactPoint(name="Research office", email="research@hospital-x.example"),
        "issued": date(2024, 1, 15),
        "modified": date(2024, 6, 1),
        "keywords": {"en": ("heart failure", "cardiology"), "es": ("insuficiencia cardiaca",)},
        "themes": ("http://publications.europa.eu/resource/authority/data-theme/HEAL",),
        "temporal": MonthPeriod(start="2018-01", end="2024-05"),
        "spatial": ("http://publications.europa.eu/resource/authority/country/ESP",),
        "languages": ("http://publications.europa.eu/resource/authority/language/SPA",),
        "access_rights": "http://publications.europa.eu/resource/authority/access-right/NON_PUBLIC",
        "conforms_to": ("https://cardiobox.org/cdm",),
        "applicable_legislation": ("http://data.europa.eu/eli/reg/2025/327/oj",),
        "distributions": (
            Distribution(
                iri=BASE + "distribution/store",
                title={"en": "Site store"},
                description={"en": "Federated access only."},
                access_url="https://hospital-x.example/data-access",
                media_type="http://www.iana.org/assignments/media-types/application/fhir+json",
                format="http://publications.europa.eu/resource/authority/file-type/JSON",
            ),
            Distribution(
                iri=BASE + "distribution/features/hf",
                title={"en": "Analysis table hf"},
                description={"en": "One row per admission."},
                access_url="https://hospital-x.example/data-access",
                format="http://publications.europa.eu/resource/authority/file-type/PARQUET",
                rows=150,
                columns=(
                    TableColumn(name="row_id", kind="key", missing_share=0.0),
                    TableColumn(name="lvef", variable="lvef", unit="%", missing_share=0.2),
                    TableColumn(name="age", variable="age_at_index", unit="a", missing_share=None),
                ),
            ),
        ),
        "health_categories": ("http://13.81.34.152:1101/resource/authority/healthcategories/EHRS",),
        "health_themes": ("http://www.wikidata.org/entity/Q181754",),
        "coding_systems": ("http://www.wikidata.org/entity/P4338", "http://www.wikidata.org/entity/P494"),
        "number_of_records": 5000,
        "number_of_unique_individuals": 150,
        "population_coverage": {"en": "Adults admitted with heart failure since 2018."},
        "min_typical_age": 50,
        "max_typical_age": 90,
        "personal_data": ("https://w3id.org/dpv/dpv-pd#Age", "https://w3id.org/dpv/dpv-pd#HealthRecord"),
        "legal_basis": ("https://w3id.org/dpv/legal/eu/gdpr#A9-2-j",),
        "purpose": ("https://w3id.org/dpv#AcademicResearch",),
        "retention_period": DatePeriod(start=date(2018, 1, 1), end=date(2040, 12, 31)),
        "hdab": Agent(iri="https://hdab.example/", name="Health data access body"),
        "quality_annotations": (
            QualityAnnotation(
                text="240 checks passed, 3 failed.",
                report="https://hospital-x.example/quality.html",
                checks={"pass": 240, "fail": 3, "not-applicable": 10},
                generated=date(2024, 5, 30),
            ),
        ),
        "min_cell_count": 10,
        "variables": (lvef, nyha, rare),
    }  # fmt: skip
    fields.update(changes)
    return DatasetDescription(**fields)

"""Fixtures for the cohort tests: small site stores written from a compact description.

A test adds patients, stays and records to a :class:`Site` (FHIR R5 resources written as
NDJSON, imported with :meth:`SiteStore.import_fhir`), builds it, and extracts a feature set
over a cohort::

    store = (
        site.patient("p1", "female", born="1950-01-01")
        .stay("e1", "p1", "2020-06-01T10:00", "2020-06-05T10:00")
        .obs("p1", "creatinine", 88.42, "2020-06-01T12:00")
        .build()
    )
    assert store.values({"name": "x", "variable": "creatinine"}) == [88.42]

Times are written ``YYYY-MM-DD`` (a FHIR date, midnight local) or ``YYYY-MM-DDTHH:MM``
(written as UTC; the fact tables keep the wall-clock time, so 10:00 stays 10:00).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cardiobox.cdm import load_dictionary
from cardiobox.cohort import CohortDefinition, CohortResult, FeatureSet, count, extract
from cardiobox.store import SiteStore

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ATC = "http://www.whocc.no/atc"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
PRIMARY = "https://cardiobox.org/fhir/StructureDefinition/primary-diagnosis"

#: The cohort used when a test names none: every encounter's patient, first encounter.
DEFAULT_ENTRY: dict[str, Any] = {"event": "encounter"}


def fhir_time(text: str) -> str:
    """``2020-06-01`` stays a date; ``2020-06-01T10:00`` becomes ``2020-06-01T10:00:00Z``."""
    if len(text) == 10:
        return text
    if len(text) == 16:
        text += ":00"
    return text + "Z"


def cohort_def(**fields: Any) -> CohortDefinition:
    """A cohort definition from its fields (``entry`` defaults to every encounter)."""
    body = {"cardiobox_cohort": 1, "name": "test", "entry": DEFAULT_ENTRY, **fields}
    return CohortDefinition.model_validate(body)


def feature_set(*items: dict[str, Any]) -> FeatureSet:
    """A feature set from its items."""
    return FeatureSet.model_validate({"cardiobox_features": 1, "name": "test", "features": items})


class Store:
    """A built site store, with shortcuts to count and extract cohorts from it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self, **cohort: Any) -> CohortResult:
        """Count the cohort given by its fields."""
        return count(cohort_def(**cohort), self.path)

    def extract(
        self,
        *features: dict[str, Any],
        cohort: dict[str, Any] | None = None,
        **kw: Any,
    ) -> CohortResult:
        """Extract a feature set over a cohort (default: every patient's first encounter)."""
        fs = feature_set(*features) if features else None
        return extract(cohort_def(**(cohort or {})), self.path, features=fs, **kw)

    def rows(
        self, *features: dict[str, Any], cohort: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The analysis table as a list of dicts (in row order)."""
        table = self.extract(*features, cohort=cohort).table
        assert table is not None
        return list(table.to_pylist())

    def values(self, feature: dict[str, Any], cohort: dict[str, Any] | None = None) -> list[Any]:
        """The values of one feature column, one per cohort row."""
        return [r[feature["name"]] for r in self.rows(feature, cohort=cohort)]


class Site:
    """A site store under construction: add resources, then :meth:`build` it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.resources: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._dictionary = load_dictionary()

    def _add(self, resource: dict[str, Any]) -> Site:
        resource.setdefault("id", f"{resource['resourceType'][:3].lower()}{next(self._ids)}")
        self.resources.append(resource)
        return self

    def patient(
        self, pid: str, sex: str = "female", born: str = "1950-01-01", died: str | None = None
    ) -> Site:
        """A patient (``died``: the deceasedDateTime)."""
        r: dict[str, Any] = {"resourceType": "Patient", "id": pid, "gender": sex, "birthDate": born}
        if died is not None:
            r["deceasedDateTime"] = fhir_time(died)
        return self._add(r)

    def stay(
        self, eid: str, pid: str, start: str, end: str | None = None, cls: str = "IMP"
    ) -> Site:
        """An encounter of class ``cls`` (inpatient by default)."""
        period = {"start": fhir_time(start)}
        if end is not None:
            period["end"] = fhir_time(end)
        return self._add(
            {
                "resourceType": "Encounter",
                "id": eid,
                "status": "completed",
                "subject": {"reference": f"Patient/{pid}"},
                "class": [{"coding": [{"system": ACT, "code": cls}]}],
                "actualPeriod": period,
            }
        )

    def obs(
        self,
        pid: str,
        variable: str,
        value: float | bool | str | None = None,
        at: str | None = None,
        *,
        encounter: str | None = None,
        oid: str | None = None,
    ) -> Site:
        """An Observation of a data-model variable, in its canonical unit.

        ``value``: a number (quantity in the variable's canonical unit, or an integer), a
        boolean, or an answer code (its system is read from the dictionary's answers, else
        ICD-10).
        """
        v = self._dictionary[variable]
        cs = v.codes[0]
        r: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": cs.system, "code": cs.codes[0]}]},
        }
        if oid is not None:
            r["id"] = oid
        if at is not None:
            r["effectiveDateTime"] = fhir_time(at)
        if encounter is not None:
            r["encounter"] = {"reference": f"Encounter/{encounter}"}
        if isinstance(value, bool):
            r["valueBoolean"] = value
        elif isinstance(value, str):
            systems = {a.code: a.system for a in v.answers}
            coding = {"system": systems.get(value, ICD10), "code": value}
            r["valueCodeableConcept"] = {"coding": [coding]}
        elif value is not None and v.value_type == "integer":
            r["valueInteger"] = int(value)
        elif value is not None:
            assert v.unit is not None, f"{variable} has no canonical unit"
            r["valueQuantity"] = {"value": value, "unit": v.unit, "system": UCUM, "code": v.unit}
        return self._add(r)

    def condition(
        self,
        pid: str,
        icd: str,
        at: str | None = None,
        *,
        encounter: str | None = None,
        primary: bool | None = None,
        cid: str | None = None,
    ) -> Site:
        """A Condition coded in ICD-10 (``primary``: the primary-diagnosis extension)."""
        r: dict[str, Any] = {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{pid}"},
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "code": {"coding": [{"system": ICD10, "code": icd}]},
        }
        if cid is not None:
            r["id"] = cid
        if at is not None:
            r["onsetDateTime"] = fhir_time(at)
        if encounter is not None:
            r["encounter"] = {"reference": f"Encounter/{encounter}"}
        if primary is not None:
            r["extension"] = [{"url": PRIMARY, "valueBoolean": primary}]
        return self._add(r)

    def med(self, pid: str, atc: str, at: str | None = None) -> Site:
        """A MedicationStatement coded in ATC."""
        r: dict[str, Any] = {
            "resourceType": "MedicationStatement",
            "status": "recorded",
            "subject": {"reference": f"Patient/{pid}"},
            "medication": {"concept": {"coding": [{"system": ATC, "code": atc}]}},
        }
        if at is not None:
            r["effectiveDateTime"] = fhir_time(at)
        return self._add(r)

    def cause_of_death(self, pid: str, icd: str, at: str | None = None) -> Site:
        """The underlying cause of death (LOINC 79378-6) as an ICD-10 code."""
        return self.obs(pid, "cause_of_death", icd, at)

    def build(self) -> Store:
        """Write the resources as NDJSON (one file per type) and import them (R5)."""
        fhir = self.folder / "fhir"
        fhir.mkdir(parents=True, exist_ok=True)
        by_type: dict[str, list[str]] = {}
        for r in self.resources:
            by_type.setdefault(r["resourceType"], []).append(json.dumps(r))
        for rtype, lines in by_type.items():
            (fhir / f"{rtype}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
        path = self.folder / "site.duckdb"
        with SiteStore(path) as store:
            report = store.import_fhir([fhir], fhir_version="R5")
        assert report.quarantined == 0, report.examples
        assert report.stored == len(self.resources)
        return Store(path)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """An empty site to describe (one per test)."""
    return Site(tmp_path / "site")


@pytest.fixture(scope="session")
def new_site(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Site]:
    """A factory of empty sites, for module-scoped stores shared by several tests."""
    names: Iterator[int] = itertools.count(1)

    def make() -> Site:
        return Site(tmp_path_factory.mktemp(f"site{next(names)}"))

    return make

"""Realistic synthetic FHIR R5 Observations for benchmarks (labs and vital signs).

Codes, units and plausible ranges come from the data dictionary; values are drawn inside the
plausible range, dates over ten years, patients and encounters from fixed pools.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from cardiobox.cdm import load_dictionary

CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
UCUM = "http://unitsofmeasure.org"


def observations(n: int, seed: int = 7, patients: int = 20_000) -> Iterator[dict[str, object]]:
    """Yield ``n`` Observations of the dictionary's quantity variables."""
    rng = random.Random(seed)
    variables = [
        v
        for v in load_dictionary()
        if v.resource == "Observation" and v.value_type == "quantity" and v.codes
    ]
    start = datetime(2015, 1, 1, tzinfo=UTC)
    for i in range(n):
        v = variables[i % len(variables)]
        cs = v.codes[0]
        lo, hi = v.range or (0.0, 100.0)
        centre = lo + (hi - lo) * 0.25
        value = round(min(hi, max(lo, rng.gauss(centre, (hi - lo) / 12))), 2)
        when = start + timedelta(minutes=rng.randrange(10 * 365 * 24 * 60))
        pid = rng.randrange(patients)
        obs: dict[str, object] = {
            "resourceType": "Observation",
            "id": f"obs-{i}",
            "meta": {
                "profile": ["https://datatools4heart.eu/fhir/StructureDefinition/HFR-LabResult"]
            },
            "status": "final",
            "category": [
                {
                    "coding": [
                        {"system": CATEGORY_SYSTEM, "code": v.observation_category or "laboratory"}
                    ]
                }
            ],
            "code": {
                "coding": [{"system": cs.system, "code": cs.codes[0], "display": v.name("en")}]
            },
            "subject": {"reference": f"Patient/p{pid}"},
            "effectiveDateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "valueQuantity": {"value": value, "unit": v.unit, "system": UCUM, "code": v.unit},
        }
        if rng.random() < 0.7:
            obs["encounter"] = {"reference": f"Encounter/e{pid}-{rng.randrange(5)}"}
        yield obs


def write_ndjson(path: Path, n: int, seed: int = 7) -> Path:
    """Write ``n`` Observations to an NDJSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for obs in observations(n, seed):
            fh.write(orjson.dumps(obs))
            fh.write(b"\n")
    return path

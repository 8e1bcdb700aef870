"""The vectorised structural validator gives the same verdicts as validating each resource
exactly, on real data and on data broken in many ways."""

from __future__ import annotations

import copy
import gzip
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from cardiobox.cdm.structure import structural_findings
from cardiobox.store.validate import StructureValidator, plan_checks


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    else:
        yield path, node


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path[:-1]:
        doc = doc[p]
    return doc


def _mutate(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    leaves = [lp for lp in _leaves(doc) if lp[0] != ("resourceType",)]
    path, value = rng.choice(leaves)
    parent = _parent(doc, path)
    kind = rng.choice(["date", "delete", "unknown", "type", "empty", "big", "space", "drop"])
    if kind == "date":
        parent[path[-1]] = "2020-13-45"
    elif kind == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif kind == "unknown" and isinstance(parent, dict):
        parent["bogusElement"] = 1
    elif kind == "type":
        parent[path[-1]] = 5 if isinstance(value, str) else "x"
    elif kind == "empty":
        parent[path[-1]] = ""
    elif kind == "big":
        parent[path[-1]] = 3_000_000_000
    elif kind == "space":
        parent[path[-1]] = f" {value}"
    elif kind == "drop" and len(path) > 1:
        grand = _parent(doc, path[:-1])
        if isinstance(grand, dict):
            del grand[path[-2]]
    return doc


@pytest.fixture(scope="module")
def corpus(synthea_dir: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for f in sorted(synthea_dir.glob("*.ndjson.gz")):
        if f.name.startswith("log"):
            continue
        with gzip.open(f, "rb") as fh:
            docs += [orjson.loads(line) for line in fh]
    rng = random.Random(2024)
    return docs + [_mutate(d, rng) for d in docs if rng.random() < 0.3]


def test_vectorised_equals_exact(corpus: list[dict[str, Any]]) -> None:
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE rel (seq BIGINT, rt VARCHAR, doc VARCHAR, shape VARCHAR)")
    con.executemany(
        "INSERT INTO rel VALUES (?, ?, ?, NULL)",
        [(i, d.get("resourceType"), orjson.dumps(d).decode()) for i, d in enumerate(corpus)],
    )
    validator = StructureValidator(con)
    failures = validator.validate("rel", "4.0.1")
    exact = {i for i, d in enumerate(corpus) if structural_findings(d, "4.0.1")}
    assert len(exact) > 500  # the mutations really break things
    assert set(failures) == exact
    # Most valid resources never need the exact path.
    assert validator.exact_count() < len(exact) + len(corpus) // 10


def test_plan_checks_array_elements() -> None:
    structure = orjson.dumps(
        {
            "resourceType": "VARCHAR",
            "id": "VARCHAR",
            "component": [
                {
                    "code": {"text": "VARCHAR"},
                    "valueQuantity": {"value": "DOUBLE"},
                    "valueString": "VARCHAR",
                }
            ],
            "effectiveDateTime": "VARCHAR",
        }
    ).decode()
    plan = plan_checks("5.0.0", "Observation", structure)
    assert plan is not None
    joined = " ".join(plan.checks)
    assert "$.component[*]" in joined and "valueString" in joined
    assert ("$.effectiveDateTime", "DateTime") in plan.scalars


def test_type_conflicts_go_to_exact_path() -> None:
    assert plan_checks("5.0.0", "Observation", '{"resourceType":"VARCHAR","x":"JSON"}') is None


def test_unicode_whitespace_in_codes_matches_exact() -> None:
    """pydantic's regex treats NBSP and other Unicode spaces as whitespace; so must SQL."""
    base = {"resourceType": "Observation", "id": "x", "code": {"text": "k"}}
    docs = [
        base | {"id": f"o{i}", "status": status}
        for i, status in enumerate(
            ["final", "\u00a0final", "final\u2003", "fi\u00a0nal", "fi  nal"]
        )
    ]
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE rel (seq BIGINT, rt VARCHAR, doc VARCHAR, shape VARCHAR)")
    con.executemany(
        "INSERT INTO rel VALUES (?, ?, ?, NULL)",
        [(i, "Observation", orjson.dumps(d).decode()) for i, d in enumerate(docs)],
    )
    failures = StructureValidator(con).validate("rel", "5.0.0")
    assert set(failures) == {i for i, d in enumerate(docs) if structural_findings(d, "5.0.0")}
    assert set(failures) == {1, 2, 4}

"""JSON that keeps decimals exactly as written.

FHIR decimals carry their precision in their text: ``1.50`` is not ``1.5``. Parsing JSON into
Python floats (or through DuckDB's ``json()``) rewrites such numbers. Where cardiobox has to
rewrite a resource (Bundle entries, R4 → R5 conversion), it parses decimals as
``orjson.Fragment`` objects, which are written back verbatim.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads_exact(text: str | bytes) -> Any:
    """Parse JSON, keeping every decimal's original text (as an ``orjson.Fragment``)."""
    return json.loads(text, parse_float=orjson.Fragment)


def dumps(obj: Any) -> str:
    """Serialise to compact JSON; fragments from :func:`loads_exact` are written verbatim."""
    return orjson.dumps(obj).decode()


def copy_json(obj: Any) -> Any:
    """Deep copy of parsed JSON (dicts and lists copied; scalars and fragments shared)."""
    if isinstance(obj, dict):
        return {k: copy_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [copy_json(v) for v in obj]
    return obj

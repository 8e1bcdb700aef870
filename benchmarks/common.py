"""What every benchmark shares: running a step in a fresh process, the table, the JSON file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MARK = "@@result@@"  # precedes a step's JSON on its standard output

#: a table row: (measure, measured, target, met: True/False, or None for no target)
Row = tuple[str, str, str, bool | None]


def run_step(module: str, name: str, *args: Any) -> dict[str, Any]:
    """Run ``benchmarks.<module>.step_<name>(*args)`` in a fresh Python process.

    A fresh process for each step keeps one step's memory and caches out of the next one's
    figures. The step's return value travels back as JSON.
    """
    code = (
        f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
        f"from benchmarks import {module}; "
        f"print({MARK!r} + json.dumps({module}.step_{name}(*{args!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.rsplit(MARK, 1)[1])


def print_table(rows: Sequence[Row]) -> None:
    """Print the measures as a markdown table, columns sized to their contents."""
    w = [
        max(len(h), *(len(r[i]) for r in rows))
        for i, h in enumerate(("measure", "measured", "target"))
    ]
    print(f"| {'measure':<{w[0]}} | {'measured':>{w[1]}} | {'target':<{w[2]}} | met |")
    print(f"|{'-' * (w[0] + 2)}|{'-' * (w[1] + 2)}|{'-' * (w[2] + 2)}|-----|")
    for name, got, target, ok in rows:
        met = "" if ok is None else ("yes" if ok else "NO")
        print(f"| {name:<{w[0]}} | {got:>{w[1]}} | {target:<{w[2]}} | {met:<3} |")


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` and say so."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
    return path

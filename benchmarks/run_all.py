"""Run every benchmark in this folder (``make bench``); each prints a table and writes JSON."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "views.py",
    "ingest.py",
    "features.py",
    "fed_heart_disease.py",
    "fed_latency.py",
    "synth.py",
    "nlp.py",
    "catalogue.py",
]


def main() -> int:
    status = 0
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        status |= subprocess.run([sys.executable, str(HERE / name), *sys.argv[1:]]).returncode
    return status


if __name__ == "__main__":
    raise SystemExit(main())

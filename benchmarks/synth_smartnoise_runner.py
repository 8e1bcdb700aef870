"""Fit smartnoise-synth's MST and AIM on a table of codes; run in smartnoise's own environment.

Not a cardiobox module: ``benchmarks/synth.py`` runs it with the Python of the virtual
environment ``benchmarks/.venv-smartnoise`` (smartnoise-synth 1.0.8 and its torch, jax and
opendp are no dependency of cardiobox), as::

    python synth_smartnoise_runner.py JOBS.json

``JOBS.json`` holds ``{"train": CSV, "sizes": [...], "jobs": [{"mechanism", "epsilon",
"delta", "n", "seed", "out"}, ...]}``. The CSV holds the training rows already coded with
cardiobox's domain (columns ``c0, c1, ...``, code ``k`` of column ``j`` in ``0..sizes[j]-1``), so
both tools see the same domain: every column is categorical, smartnoise's label transformer
is fitted on the public domain (every code of every column), not on the data, and no budget
goes to preprocessing (``preprocessor_eps=0``). Each job writes its ``n`` sampled rows of codes
to ``out`` and the job's fit seconds (``Synthesizer.fit`` only: imports and the data's
reading are not counted, and an untimed MST fit on the first rows (at most
``WARMUP_ROWS``) runs first, so that one-off set-up costs are not charged to the first job)
are printed as one JSON line per job, as soon as the job is done (the caller caches each one).
"""

from __future__ import annotations

import json
import random
import sys
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

# Rows of the untimed warm-up fit: enough to run every code path, few enough to be quick on
# a 100,000-row table.
WARMUP_ROWS = 500


def _domain_frame(columns: list[str], sizes: list[int]) -> pd.DataFrame:
    """Every code of every column (the public domain), padded by repeating the last code."""
    longest = max(sizes)
    return pd.DataFrame(
        {c: np.minimum(np.arange(longest), s - 1) for c, s in zip(columns, sizes, strict=True)}
    )


def _fitted_transformer(columns: list[str], sizes: list[int]) -> Any:
    from snsynth.transform.label import LabelTransformer  # type: ignore[import-not-found]
    from snsynth.transform.table import TableTransformer  # type: ignore[import-not-found]

    tt = TableTransformer([LabelTransformer(nullable=False) for _ in columns])
    tt.fit(_domain_frame(columns, sizes))  # categories from the public domain, not the data
    return tt


def run_job(train: pd.DataFrame, sizes: list[int], job: dict[str, Any]) -> dict[str, Any]:
    """Fit one synthesizer, sample ``n`` rows, write them, return the fit seconds."""
    from snsynth import Synthesizer  # type: ignore[import-not-found]

    seed = int(job["seed"])
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass
    columns = list(train.columns)
    synth = Synthesizer.create(
        job["mechanism"], epsilon=float(job["epsilon"]), delta=float(job["delta"])
    )
    transformer = _fitted_transformer(columns, sizes)
    started = time.perf_counter()
    synth.fit(
        train,
        transformer=transformer,
        categorical_columns=columns,
        preprocessor_eps=0.0,
    )
    seconds = time.perf_counter() - started
    sample = synth.sample(int(job["n"]))
    sample = pd.DataFrame(sample, columns=columns).astype(np.int64)
    sample.to_csv(job["out"], index=False)
    return {**job, "seconds": seconds, "rows": len(sample)}


def main() -> int:
    """Run every job of the JSON file named on the command line."""
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    train = pd.read_csv(spec["train"]).astype(np.int64)
    sizes = [int(s) for s in spec["sizes"]]
    warnings.simplefilter("ignore")
    # An untimed first fit: the first one in a process pays one-off set-up costs (lazy imports,
    # compilation) that a real user pays once, not per fit.
    warmup = {**spec["jobs"][0], "mechanism": "mst", "n": 10}
    run_job(train.head(WARMUP_ROWS), sizes, warmup)
    for job in spec["jobs"]:
        print(json.dumps(run_job(train, sizes, job)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The Cleveland table coded for the mechanism tests, and the mean k-way TVD they check."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from cardiobox.synth.marginals import marginal

CLEVELAND = Path(__file__).resolve().parents[2] / "data/uci_heart_disease/processed.cleveland.data"
# age, trestbps, chol, thalach, oldpeak: numeric; the other nine columns are categorical.
NUMERIC = {0, 3, 4, 7, 9}


def cleveland_codes() -> tuple[np.ndarray, list[int]]:
    """The Cleveland table coded: 10 equal-width bins, categories in order, missing last."""
    raw = np.genfromtxt(CLEVELAND, delimiter=",", missing_values="?", filling_values=np.nan)
    columns, sizes = [], []
    for j in range(raw.shape[1]):
        values = raw[:, j]
        missing = np.isnan(values)
        if j in NUMERIC:
            low, high = np.nanmin(values), np.nanmax(values)
            filled = np.where(missing, low, values)
            code = np.minimum(np.floor((filled - low) / (high - low) * 10), 9).astype(np.int64)
            size = 10
        else:
            categories = np.unique(values[~missing])
            code = np.searchsorted(categories, np.where(missing, categories[0], values))
            size = len(categories)
        columns.append(np.where(missing, size, code))
        sizes.append(size + int(missing.any()))
    return np.stack(columns, axis=1), sizes


def mean_tvd(real: np.ndarray, synthetic: np.ndarray, sizes: list[int], k: int) -> float:
    distances = []
    for clique in itertools.combinations(range(len(sizes)), k):
        p = marginal(real, sizes, clique)
        q = marginal(synthetic, sizes, clique)
        distances.append(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())
    return float(np.mean(distances))

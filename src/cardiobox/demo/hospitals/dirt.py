"""Planted dirt: errors put into the extracts on purpose, at known rates, in known rows.

Kinds (each a share of the rows of the tables it is planted in):

``impossible_value``
    A value outside the data model's plausible range (potassium 45 mmol/L, LVEF 130 %,
    systolic pressure 1350 mmHg): a decimal point or sign lost at the source. Ingestion
    quarantines the row (rule ``range``).
``unknown_code``
    A laboratory test whose local code is missing from the concept map (troponin, CRP,
    ferritin). Ingestion quarantines the row (rule ``unknown-code``).
``unparsable_date``
    A date-time that does not exist (30 February, month 13). Ingestion quarantines the row.
``duplicate_row``
    An exact copy of the row above it. Ingestion loads it idempotently: it adds nothing.
``event_after_death``
    A laboratory result dated 7 to 120 days after the patient's death. Ingestion accepts it;
    the quality report's temporal checks find it.

Rows are chosen without replacement and the kinds never share a row, so each kind's count
is exact. Counts are ``round(rate x rows)`` of the table before duplicates are added.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

KINDS = (
    "impossible_value",
    "unknown_code",
    "unparsable_date",
    "duplicate_row",
    "event_after_death",
)
#: Kinds that send a row to quarantine at ingestion.
QUARANTINED_KINDS = ("impossible_value", "unknown_code", "unparsable_date")
#: Where each kind is planted.
PLANTED_IN: dict[str, tuple[str, ...]] = {
    "impossible_value": ("labs", "vitals", "echo"),
    "unknown_code": ("labs",),
    "unparsable_date": ("labs",),
    "duplicate_row": ("labs", "vitals"),
    "event_after_death": ("labs",),
}


@dataclass(frozen=True)
class DirtRates:
    """Share of rows that get each kind of dirt (in the tables listed in ``PLANTED_IN``).

    Parameters
    ----------
    impossible_value : float
        Values outside the plausible range (default 1 %).
    unknown_code : float
        Local laboratory codes missing from the concept map (default 1 %).
    unparsable_date : float
        Date-times that do not exist (default 0.5 %).
    duplicate_row : float
        Exact duplicate rows (default 1 %).
    event_after_death : float
        Laboratory results dated after the patient's death (default 1 %).
    """

    impossible_value: float = 0.01
    unknown_code: float = 0.01
    unparsable_date: float = 0.005
    duplicate_row: float = 0.01
    event_after_death: float = 0.01

    def __post_init__(self) -> None:
        for kind in KINDS:
            rate = getattr(self, kind)
            if not 0 <= rate <= 0.2:
                raise ValueError(f"dirt rate {kind}={rate} must be between 0 and 0.2")

    @classmethod
    def none(cls) -> DirtRates:
        """Clean extracts: no dirt at all."""
        return cls(0, 0, 0, 0, 0)

    def as_dict(self) -> dict[str, float]:
        """The rates by kind."""
        return asdict(self)


@dataclass
class Planted:
    """The dirt planted in one table: for each kind, positions in the clean table."""

    base_rows: int
    taken: NDArray[np.bool_]
    kinds: dict[str, NDArray[np.int64]] = field(default_factory=dict)

    @classmethod
    def for_rows(cls, n: int) -> Planted:
        """Nothing planted yet in a table of ``n`` rows."""
        return cls(base_rows=n, taken=np.zeros(n, dtype=np.bool_))

    def pick(
        self,
        rng: np.random.Generator,
        kind: str,
        rate: float,
        eligible: NDArray[np.bool_] | None = None,
    ) -> NDArray[np.int64]:
        """Choose ``round(rate x base_rows)`` rows not yet used, among ``eligible`` ones.

        Returns the chosen positions, sorted; fewer when too few rows are eligible.
        """
        want = round(rate * self.base_rows)
        free = ~self.taken if eligible is None else (~self.taken & eligible)
        pool = np.flatnonzero(free)
        k = min(want, pool.size)
        chosen = np.sort(rng.choice(pool, size=k, replace=False)) if k else pool[:0]
        self.taken[chosen] = True
        self.kinds[kind] = chosen.astype(np.int64)
        return self.kinds[kind]


def with_duplicates(
    n: int, originals: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Row order of a table of ``n`` rows once each of ``originals`` is followed by a copy.

    Returns
    -------
    order : numpy.ndarray
        For each output row, the clean row it shows.
    final_position : numpy.ndarray
        For each clean row, its 0-based position in the output (the original, not the copy).
    """
    keys = np.concatenate([np.arange(n, dtype=np.float64), originals + 0.5])
    source = np.concatenate([np.arange(n), originals]).astype(np.int64)
    perm = np.argsort(keys, kind="stable")
    order = source[perm]
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.size)
    return order, inverse[:n].astype(np.int64)


def record(
    planted: Planted, final_position: NDArray[np.int64], header_lines: int = 1
) -> dict[str, dict[str, Any]]:
    """The manifest entry of one table: per kind, count and 1-based rows and file lines.

    ``rows`` counts records from 1 (the first record after the header); ``lines`` is the
    file line of each record (records of these tables never span lines).
    """
    out: dict[str, dict[str, Any]] = {}
    for kind, positions in planted.kinds.items():
        if kind == "duplicate_row":
            # The copy sits right after its original.
            rows = final_position[positions] + 2
            originals = final_position[positions] + 1
            out[kind] = {
                "count": int(rows.size),
                "rows": rows.tolist(),
                "lines": (rows + header_lines).tolist(),
                "original_rows": originals.tolist(),
            }
        else:
            rows = np.sort(final_position[positions] + 1)
            out[kind] = {
                "count": int(rows.size),
                "rows": rows.tolist(),
                "lines": (rows + header_lines).tolist(),
            }
    return out

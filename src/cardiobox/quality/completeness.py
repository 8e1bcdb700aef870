"""Completeness per data-model variable: share of patients with at least one value.

Per site, for every variable of the dictionary: the stored Patients with at least one value
(a Condition coded in a phenotype's code set, a potassium Observation with a numeric value,
a recorded gender, ...), and, over time, per calendar year of the value's date, the share of
the patients *active* that year (with any dated clinical record that year) who have a value
that year. Patient-level variables (gender, birth date) have no year.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cardiobox.cdm.dictionary import DataDictionary
from cardiobox.quality.tables import Workspace, supported


@dataclass
class SiteCompleteness:
    """Completeness of one site.

    Parameters
    ----------
    patients : int
        Stored Patients (the denominator).
    with_value : dict
        Variable id → patients with at least one value.
    active : dict
        Calendar year → patients active that year.
    by_year : dict
        Variable id → {year → patients with a value dated that year}.
    unsupported : list of str
        Variables whose values cannot be located (no codes, unknown element).
    """

    patients: int
    with_value: dict[str, int] = field(default_factory=dict)
    active: dict[int, int] = field(default_factory=dict)
    by_year: dict[str, dict[int, int]] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)

    def pct(self, variable: str) -> float | None:
        """% of patients with a value (``None`` without patients or for unsupported ones)."""
        if not self.patients or variable in self.unsupported:
            return None
        return 100.0 * self.with_value.get(variable, 0) / self.patients


def measure_completeness(ws: Workspace) -> SiteCompleteness:
    """Compute completeness per variable and per calendar year over one store.

    Parameters
    ----------
    ws : Workspace
        The store's workspace.

    Returns
    -------
    SiteCompleteness
    """
    ws.ensure(["q_presence", "q_events", "v_patient"])
    con = ws.con
    row = con.execute("SELECT count(*) FROM v_patient").fetchone()
    out = SiteCompleteness(patients=int(row[0]) if row else 0)
    out.unsupported = [v.id for v in ws.dictionary if not supported(v)]
    # Only values of stored patients count (a dangling reference is a conformance problem).
    con.execute(
        "CREATE OR REPLACE TEMP TABLE q_presence_p AS SELECT q.variable, q.patient_id, "
        "TRY_CAST(left(q.date, 4) AS INTEGER) AS year FROM q_presence q "
        "SEMI JOIN v_patient p ON p.id = q.patient_id"
    )
    out.with_value = {
        str(v): int(n)
        for v, n in con.execute(
            "SELECT variable, count(DISTINCT patient_id) FROM q_presence_p GROUP BY variable"
        ).fetchall()
    }
    # Active patients: any activity date, and every dated value (so that a value's year is
    # always a year in which its patient is active).
    out.active = {
        int(y): int(n)
        for y, n in con.execute(
            """SELECT year, count(DISTINCT patient_id) FROM (
                SELECT patient_id, TRY_CAST(left(date, 4) AS INTEGER) AS year FROM q_events
                WHERE activity AND patient_id IN (SELECT id FROM v_patient)
                UNION ALL
                SELECT patient_id, year FROM q_presence_p
            ) WHERE year IS NOT NULL GROUP BY year ORDER BY year"""
        ).fetchall()
    }
    for v, y, n in con.execute(
        "SELECT variable, year, count(DISTINCT patient_id) FROM q_presence_p "
        "WHERE year IS NOT NULL GROUP BY ALL ORDER BY ALL"
    ).fetchall():
        out.by_year.setdefault(str(v), {})[int(y)] = int(n)
    return out


def completeness_json(
    sites: dict[str, SiteCompleteness], dictionary: DataDictionary
) -> dict[str, Any]:
    """The ``completeness`` section of the JSON report.

    Parameters
    ----------
    sites : dict
        Site name → its completeness.
    dictionary : DataDictionary
        The data dictionary (variable names and categories).

    Returns
    -------
    dict
        ``patients`` per site, ``variables`` (one entry per dictionary variable with
        ``patients_with_value`` and ``pct`` per site) and ``over_time`` (per site: the
        active patients per year, and per variable the patients with a value per year).
    """
    variables = []
    for v in dictionary:
        per_site: dict[str, Any] = {}
        for name, c in sites.items():
            pct = c.pct(v.id)
            per_site[name] = {
                "patients_with_value": None if pct is None else c.with_value.get(v.id, 0),
                "pct": None if pct is None else round(pct, 4),
            }
        variables.append(
            {
                "variable": v.id,
                "name": v.name(),
                "category": v.category.value,
                "resource": v.resource,
                "supported": all(v.id not in c.unsupported for c in sites.values()),
                "sites": per_site,
            }
        )
    over_time = {
        name: {
            "active_patients": {str(y): n for y, n in c.active.items()},
            "variables": {
                var: {
                    str(y): {
                        "patients_with_value": n,
                        "pct": round(100.0 * n / c.active[y], 4) if c.active.get(y) else None,
                    }
                    for y, n in years.items()
                }
                for var, years in c.by_year.items()
            },
        }
        for name, c in sites.items()
    }
    return {
        "patients": {name: c.patients for name, c in sites.items()},
        "variables": variables,
        "over_time": over_time,
    }

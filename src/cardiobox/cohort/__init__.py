"""Cohorts and feature sets: analysis-ready tables from a site store.

A cohort definition (YAML) names the index events, the inclusion and exclusion criteria,
an observation window and the selection; a feature set names the columns: aggregations of
data-model variables over windows around the index, pivots over code sets, demographics,
derived formulas (eGFR, BMI, MAGGIC) and outcomes at horizons. Both compile to DuckDB SQL.
"""

from cardiobox.cohort.api import CohortResult, count, explain, extract
from cardiobox.cohort.definition import CohortDefinition, FeatureSet, load_definition

__all__ = [
    "CohortDefinition",
    "CohortResult",
    "FeatureSet",
    "count",
    "explain",
    "extract",
    "load_definition",
]

"""Site store: one DuckDB file per hospital site, FHIR import/export and views."""

from cardiobox.store.importer import ImportReport
from cardiobox.store.site_store import SiteStore

__all__ = ["ImportReport", "SiteStore"]

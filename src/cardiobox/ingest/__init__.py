"""Ingestion: declarative mappings from hospital extracts into the data model."""

"""CLI tests reuse the ingestion fixtures."""

from tests.ingest.conftest import extract  # noqa: F401

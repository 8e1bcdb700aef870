"""Pseudonyms computed in DuckDB are the HMAC-SHA256 pseudonyms of Python's hmac module."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

import duckdb
import pytest

from cardiobox.ingest.pseudonym import SiteKey, pseudonym_sql

IDS = ["0001", "NHC-42", "é ü 12", "it's", "x" * 300, "日本", "a|b"]


@pytest.mark.parametrize("key_length", [16, 32, 64, 65, 100])
def test_sql_pseudonyms_equal_python_hmac(key_length: int) -> None:
    key = SiteKey(secrets.token_bytes(key_length), Path("site.key"))
    con = duckdb.connect()
    for kind in ("Patient", "Encounter"):
        got = con.execute(
            f"SELECT local, {pseudonym_sql(kind, 'local')} FROM unnest($ids) AS t(local)",
            {"ids": IDS, **key.sql_parameters()},
        ).fetchall()
        assert len(got) == len(IDS)
        for local, pseudo in got:
            assert pseudo == key.pseudonym(kind, local)
            expected = hmac.new(key.key, f"{kind}|{local}".encode(), hashlib.sha256)
            assert pseudo == expected.hexdigest()[:32]


def test_kinds_are_kept_apart() -> None:
    key = SiteKey(b"k" * 32, Path("site.key"))
    con = duckdb.connect()
    patient, encounter = con.execute(
        f"SELECT {pseudonym_sql('Patient', 'x')}, {pseudonym_sql('Encounter', 'x')} "
        "FROM (SELECT '7' AS x)",
        key.sql_parameters(),
    ).fetchall()[0]
    assert patient != encounter
    assert (patient, encounter) == (key.pseudonym("Patient", "7"), key.pseudonym("Encounter", "7"))

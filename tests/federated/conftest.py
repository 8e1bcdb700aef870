from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]
HF_CSV = (
    ROOT / "data" / "heart_failure_clinical_records" / "heart_failure_clinical_records_dataset.csv"
)


@pytest.fixture
def hf_sites(tmp_path: Path) -> dict[str, Path]:
    """The heart-failure records split into three sites by row number (tables in tmp_path)."""
    con = duckdb.connect()
    sites: dict[str, Path] = {}
    src = str(HF_CSV).replace("'", "''")
    for i, name in enumerate(["north", "south", "west"]):
        out = tmp_path / f"{name}.csv"
        con.execute(
            "COPY (SELECT * EXCLUDE rn FROM (SELECT *, row_number() OVER () AS rn "
            f"FROM read_csv('{src}')) WHERE rn % 3 = {i}) TO '{out}' (HEADER)"
        )
        sites[name] = out
    con.close()
    return sites

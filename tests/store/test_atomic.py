"""A killed import leaves the store exactly as it was before the import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from cardiobox.store import SiteStore


def _digest(db: Path) -> tuple[object, ...]:
    with SiteStore(db, read_only=True) as store:
        return tuple(
            store.con.execute(
                "SELECT (SELECT count(*) FROM resources), "
                "(SELECT string_agg(content_hash, ',' ORDER BY resource_type, id) FROM resources), "
                "(SELECT count(*) FROM quarantine), (SELECT count(*) FROM loads), "
                "(SELECT count(*) FROM resource_history)"
            ).fetchall()[0]
        )


def test_killed_import_changes_nothing(tmp_path: Path, synthea_dir: Path) -> None:
    db = tmp_path / "site.duckdb"
    first = tmp_path / "first.ndjson"
    first.write_text(
        json.dumps({"resourceType": "Patient", "id": "keep", "gender": "male"}) + "\n",
        encoding="utf-8",
    )
    with SiteStore(db) as store:
        store.import_fhir(first, "R5")
    before = _digest(db)
    # A second import is killed (SIGKILL, no cleanup) after all its rows were written into
    # the store's tables but before the transaction committed.
    script = textwrap.dedent(
        f"""
        import os, signal
        from cardiobox.store import SiteStore
        SiteStore._commit = lambda self: os.kill(os.getpid(), signal.SIGKILL)
        with SiteStore({str(db)!r}) as store:
            store.import_fhir({str(synthea_dir)!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()
    assert _digest(db) == before
    # The store still works after the crash.
    with SiteStore(db) as store:
        rep = store.import_fhir(synthea_dir)
    assert rep.created == 7160

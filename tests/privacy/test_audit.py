from pathlib import Path

import duckdb
import pytest

from cardiobox.privacy.audit import AuditLog
from cardiobox.privacy.policy import PolicyRefusal


def test_chain_budget_and_tampering(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    log = AuditLog(path, budget_rho=0.5)
    log.record("r1", "count", 0, {"where": "age > 3"}, "accepted")
    log.record("r1", "count", 1, {"where": "age > 3"}, "released", rho=0.2, digest="ab")
    log.record("r2", "count", 1, {}, "released", rho=0.3)
    assert log.spent() == pytest.approx(0.5) and log.remaining() == pytest.approx(0)
    with pytest.raises(PolicyRefusal) as exc:
        log.record("r3", "count", 1, {}, "released", rho=0.01)
    assert exc.value.rule == "budget-exceeded"
    entries = log.entries()
    assert [e.seq for e in entries] == [1, 2, 3]  # the refused release wrote nothing
    assert entries[1].prev_hash == entries[0].hash
    assert log.verify() is None
    # Reopening keeps the chain going.
    again = AuditLog(path, budget_rho=0.5)
    again.record("r4", "count", 1, {}, "refused", rule="small-cell", reason="too few")
    assert again.verify() is None
    con = duckdb.connect(str(path))
    con.execute("UPDATE audit_log SET rho = 0 WHERE seq = 2")
    con.close()
    assert log.verify() == 2
    con = duckdb.connect(str(path))
    con.execute("UPDATE audit_log SET rho = 0.2 WHERE seq = 2")
    con.execute("DELETE FROM audit_log WHERE seq = 3")
    con.close()
    assert log.verify() == 4


def test_ledger_rows(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "s.duckdb", budget_rho=1)
    log.record("r", "describe", 1, {}, "released", rho=0.25)
    log.record("r", "describe", 2, {}, "released", rho=0.25)
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    rows = con.execute("SELECT rho, spent_after FROM privacy_ledger ORDER BY seq").fetchall()
    con.close()
    assert rows == [(0.25, 0.25), (0.25, 0.5)]

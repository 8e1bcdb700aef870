import ctypes
import errno
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import pytest

from cardiobox.privacy import audit
from cardiobox.privacy.audit import AuditLog, AuditLogError, journal_path_for
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
    log.close()  # folds the journal: other connections see the tables complete
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    rows = con.execute("SELECT rho, spent_after FROM privacy_ledger ORDER BY seq").fetchall()
    con.close()
    assert rows == [(0.25, 0.25), (0.25, 0.5)]


# -- the journal: durable before record returns, folded on read, close or open ------------------
def _journal_lines(log: AuditLog) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in log.journal.read_bytes().splitlines()]


def test_an_entry_is_synced_to_the_journal_before_record_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(tmp_path / "s.duckdb", budget_rho=1)
    synced: list[bytes] = []
    real_sync = audit._sync

    def sync(fd: int) -> None:
        real_sync(fd)
        synced.append(log.journal.read_bytes())  # what the disk holds when the sync returns

    monkeypatch.setattr(audit, "_sync", sync)
    entry = log.record("r", "count", 1, {"where": "age > 3"}, "released", rho=0.1, digest="ab")
    # The journal's file is new: its directory is synced too, then the entry's line.
    line = orjson.loads(synced[-1].splitlines()[-1])
    assert (line["seq"], line["hash"], line["digest"], line["rho"]) == (1, entry.hash, "ab", 0.1)
    assert line["spent_after"] == pytest.approx(0.1)
    # Read back through the log (which folds the journal first): the same entry, chain intact.
    assert [e.hash for e in log.entries()] == [entry.hash] and log.verify() is None
    assert log.journal.read_bytes() == b""


def _syncfs_here(folder: Path) -> bool:
    fd = os.open(folder, os.O_RDONLY)
    try:
        return audit._syncfs_applies(fd)
    finally:
        os.close(fd)


@pytest.fixture(params=[True, False], ids=["syncfs", "one-sync-per-log"])
def syncfs(request: pytest.FixtureRequest, tmp_path: Path) -> bool:
    """Both ways of syncing a round: one ``syncfs``, or one sync per journal."""
    use = bool(request.param)
    if use and not _syncfs_here(tmp_path):
        pytest.skip("syncfs does not apply here (old kernel or a file system not known local)")
    return use


def _count_syncs(monkeypatch: pytest.MonkeyPatch, syncfs: bool) -> list[str]:
    """Count the syncs (``sync`` per journal, ``syncfs`` per file system) from now on."""
    calls: list[str] = []
    real_sync, real_syncfs = audit._sync, audit._syncfs

    def sync(fd: int) -> None:
        calls.append("sync")
        real_sync(fd)

    def counted_syncfs(fd: int) -> None:
        calls.append("syncfs")
        real_syncfs(fd)

    monkeypatch.setattr(audit, "_sync", sync)
    monkeypatch.setattr(audit, "_syncfs", counted_syncfs)
    if not syncfs:
        monkeypatch.setattr(audit, "_syncfs_applies", lambda fd: False)
    return calls


def test_entries_written_unsynced_are_made_durable_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: bool
) -> None:
    logs = [AuditLog(tmp_path / f"s{i}.duckdb", budget_rho=1) for i in range(3)]
    calls = _count_syncs(monkeypatch, syncfs)
    for log in logs:
        log.record("r", "count", 0, {}, "accepted")  # creates the journal (synced)
    calls.clear()
    for log in logs:
        log.record("r", "count", 1, {}, "released", rho=0.2, sync=False)
    assert calls == []  # written, not synced
    audit.sync_together(logs)
    assert calls == (["syncfs"] if syncfs else ["sync"] * 3)  # one file system: one syncfs
    calls.clear()
    audit.sync_together(logs)
    logs[0].sync()
    assert calls == []  # nothing left to sync
    logs[1].record("r", "count", 2, {}, "released", rho=0.1, sync=False)
    logs[1].record("r", "count", 3, {}, "accepted")  # a synced entry covers the one before
    calls.clear()
    audit.sync_together(logs)
    assert calls == []
    for log in logs:
        assert log.verify() is None
    assert [e.round for e in logs[0].entries()] == [0, 1]
    assert [e.round for e in logs[1].entries()] == [0, 1, 2, 3]
    assert logs[1].spent() == pytest.approx(0.3)


def test_after_a_failed_sync_the_log_records_nothing_until_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: bool
) -> None:
    log = AuditLog(tmp_path / "s.duckdb", budget_rho=1)
    log.record("r", "count", 0, {}, "accepted")
    log.record("r", "count", 1, {}, "released", rho=0.2, sync=False)

    def failing(fd: int) -> None:
        raise OSError(5, "syncfs of the audit journals failed: Input/output error")

    monkeypatch.setattr(audit, "_syncfs" if syncfs else "_sync", failing)
    if not syncfs:
        monkeypatch.setattr(audit, "_syncfs_applies", lambda fd: False)
    with pytest.raises(OSError, match="Input/output error"):
        audit.sync_together([log])
    monkeypatch.undo()
    # The entry is not vouched for: no more records, and a later sync fails too.
    with pytest.raises(OSError, match="earlier sync"):
        log.record("r", "count", 2, {}, "released", rho=0.2)
    with pytest.raises(OSError, match="earlier sync"):
        log.sync()
    log.close()  # folds what the journal holds into the tables (committed)
    log.record("r", "count", 2, {}, "released", rho=0.2)
    assert [e.round for e in log.entries()] == [0, 1, 2] and log.verify() is None


def _unsynced_logs(folder: Path, n: int) -> list[AuditLog]:
    """``n`` logs in ``folder``, each with one entry written and not synced."""
    logs = [AuditLog(folder / f"s{i}.duckdb", budget_rho=1) for i in range(n)]
    for log in logs:
        log.record("r", "count", 0, {}, "accepted", sync=False)
    return logs


def test_a_system_that_refuses_syncfs_gets_one_sync_per_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sandbox's filter (ENOSYS, EPERM): no failure, one sync per journal from then on."""
    logs = _unsynced_logs(tmp_path, 2)

    class Refusing:
        def syncfs(self, fd: int) -> int:
            ctypes.set_errno(errno.ENOSYS)
            return -1

    monkeypatch.setattr(audit, "_LIBC", Refusing())
    monkeypatch.setattr(audit, "_syncfs_applies", lambda fd: True)
    monkeypatch.setattr(audit, "_syncfs_disabled", False)
    calls = _count_syncs(monkeypatch, syncfs=True)
    audit.sync_together(logs)
    assert calls == ["syncfs", "sync", "sync"] and audit._syncfs_disabled
    calls.clear()
    logs[0].record("r", "count", 1, {}, "accepted", sync=False)
    audit.sync_together(logs)
    assert calls == ["sync"]  # syncfs is not tried again
    assert all(log.verify() is None for log in logs)


def test_one_journal_that_fails_to_sync_fails_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = _unsynced_logs(tmp_path, 3)
    broken = os.stat(logs[1].journal).st_ino
    real_sync = audit._sync

    def sync(fd: int) -> None:
        if os.fstat(fd).st_ino == broken:
            raise OSError(errno.EIO, "Input/output error")
        real_sync(fd)

    monkeypatch.setattr(audit, "_sync", sync)
    monkeypatch.setattr(audit, "_syncfs_applies", lambda fd: False)
    with pytest.raises(audit.SyncError) as caught:
        audit.sync_together(logs)
    assert caught.value.failed == [logs[1]]
    monkeypatch.undo()
    logs[0].record("r", "count", 1, {}, "accepted")  # the others go on
    with pytest.raises(OSError, match="earlier sync"):
        logs[1].record("r", "count", 1, {}, "accepted")


def test_the_real_syncfs_reports_its_errors(tmp_path: Path) -> None:
    if not _syncfs_here(tmp_path):
        pytest.skip("syncfs does not apply here")
    with pytest.raises(OSError, match="syncfs of the audit journals failed"):
        audit._syncfs(-1)  # a bad descriptor: EBADF


def test_unsynced_entries_survive_a_process_crash(tmp_path: Path) -> None:
    """Entries written unsynced are in the kernel's cache: a process crash loses none.

    (A power cut may lose them; their replies were never handed over, so nothing was
    released unlogged.)
    """
    path = tmp_path / "s.duckdb"
    _record_then_die(
        path,
        "log.record('r', 'count', 0, {}, 'accepted')",
        "log.record('r', 'count', 1, {}, 'released', rho=0.3, sync=False)",
    )
    log = AuditLog(path, budget_rho=1)
    assert [e.seq for e in log.entries()] == [1, 2] and log.verify() is None


def _record_then_die(path: Path, *records: str) -> None:
    """In another process: open the log at ``path``, run ``records``, die without clean-up."""
    script = "\n".join(
        [
            "import os, sys",
            "from cardiobox.privacy.audit import AuditLog",
            "log = AuditLog(sys.argv[1], budget_rho=1)",
            *records,
            "os._exit(0)  # no close, no clean-up: as if the process died",
        ]
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)


def test_a_crash_loses_nothing_the_next_open_folds_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    _record_then_die(
        path,
        "log.record('r', 'count', 0, {}, 'accepted')",
        "log.record('r', 'count', 1, {}, 'released', rho=0.3)",
        "log.record('r', 'count', 2, {}, 'released', rho=0.3)",
    )
    assert len(journal_path_for(path).read_bytes().splitlines()) == 3  # nothing folded yet
    log = AuditLog(path, budget_rho=1)
    assert journal_path_for(path).read_bytes() == b""  # folded at open
    assert [e.seq for e in log.entries()] == [1, 2, 3] and log.verify() is None
    assert log.spent() == pytest.approx(0.6)
    with pytest.raises(PolicyRefusal, match="budget"):
        log.record("r", "count", 3, {}, "released", rho=0.5)
    log.close()
    con = duckdb.connect(str(path))
    ledger = con.execute("SELECT round, spent_after FROM privacy_ledger ORDER BY seq").fetchall()
    con.close()
    assert ledger == [(1, pytest.approx(0.3)), (2, pytest.approx(0.6))]


def test_a_line_cut_short_is_dropped_and_a_damaged_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    log = AuditLog(path)
    log.record("r", "count", 0, {}, "accepted")
    whole = log.journal.read_bytes()
    log.close()
    journal = journal_path_for(path)
    # A crash during the second entry's write: its line never ended, so it was never synced,
    # and no reply went out after it.
    journal.write_bytes(whole + whole[: len(whole) // 2])
    again = AuditLog(path)
    second = again.record("r", "count", 1, {}, "released")
    assert second.seq == 2 and again.verify() is None
    again.close()
    journal.write_bytes(whole.replace(b'"seq":1', b'"seq":3') + b"{not json\n" + whole)
    with pytest.raises(AuditLogError) as exc:
        AuditLog(path)
    assert exc.value.rule == "audit-journal" and exc.value.location.line == 2


def test_entries_already_folded_are_not_folded_twice(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    log = AuditLog(path)
    for r in range(3):
        log.record("r", "count", r, {}, "released")
    journal = log.journal.read_bytes()
    log.close()
    # A crash between the fold's commit and the journal's truncation leaves both.
    journal_path_for(path).write_bytes(journal)
    again = AuditLog(path)
    assert [e.seq for e in again.entries()] == [1, 2, 3] and again.verify() is None


def test_the_journal_is_folded_every_fold_every_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "FOLD_EVERY", 3)
    log = AuditLog(tmp_path / "s.duckdb")
    for r in range(4):
        log.record("r", "count", r, {}, "released")
    assert [line["seq"] for line in _journal_lines(log)] == [4]  # 1–3 went into the tables
    con = duckdb.connect(str(tmp_path / "s.duckdb"))  # this process's database: same tables
    folded = con.execute("SELECT seq FROM audit_log ORDER BY seq").fetchall()
    con.close()
    assert folded == [(1,), (2,), (3,)]
    assert [e.seq for e in log.entries()] == [1, 2, 3, 4] and log.verify() is None


def test_a_failed_write_leaves_the_chain_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(tmp_path / "s.duckdb")
    first = log.record("r", "count", 0, {}, "accepted")

    def broken_disk(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(audit, "_sync", broken_disk)
    with pytest.raises(OSError):
        log.record("r", "count", 1, {}, "released")
    monkeypatch.undo()
    second = log.record("r", "count", 1, {}, "released")
    assert second.seq == 2 and second.prev_hash == first.hash
    assert [e.seq for e in log.entries()] == [1, 2] and log.verify() is None

"""The site's audit log (hash-chained) and privacy-budget ledger, in a DuckDB file.

Every request a site answers is logged, released or refused: when, which run, task and round,
the parameters, the outcome with its rule, the ρ spent and a SHA-256 digest of the bytes that
left the site. Each entry's hash covers the previous entry's hash, so an edited, removed or
reordered entry breaks the chain and :meth:`AuditLog.verify` says where.

The ledger holds the spent ρ; :meth:`AuditLog.record` checks the budget and logs the audit
entry and its ledger row together, so a release is never logged without being charged, or
charged twice.

For a site store the tables live in the store itself; for a plain table (CSV/Parquet) in a
state file beside it.

Durability: :meth:`AuditLog.record` returns only once its entry is on disk, so a caller that
sends a reply after it has logged the reply durably. The entry is appended, as one JSON line,
to a journal beside the DuckDB file (``<file>.audit-journal``) and synced (``fdatasync``):
some 20 µs of Python where a DuckDB insert and commit takes about a millisecond, and the sync
waits without holding Python's lock. A runtime that holds many sites' replies before it lets
them go (the in-process one) may instead write with ``sync=False`` and make a whole round's
entries durable at once with :func:`sync_together` — one file-system sync (``syncfs`` on
Linux 5.8 or later, on a local file system), 0.7–1.6 ms here where 50 ``fdatasync`` calls take
6–8 ms — before any of the replies leaves.

The journal's entries move into the tables (one transaction: entries and ledger rows) when
the log is read (:meth:`~AuditLog.entries`, :meth:`~AuditLog.verify`), closed or opened — so a
crash loses nothing: the next open folds what the journal holds — and whenever
:data:`FOLD_EVERY` entries wait. The journal is written only while the DuckDB connection, and
with it the file's lock, is held, so one process at a time appends to a chain. A last line cut
short by a crash was never acknowledged, so never acted on, and is dropped.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from cardiobox.errors import CardioboxError, Location
from cardiobox.privacy.policy import PolicyRefusal

GENESIS = "0" * 64

DDL = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT NOT NULL,
    logged_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    round INTEGER NOT NULL,
    params JSON,
    outcome VARCHAR NOT NULL,
    rule VARCHAR,
    reason VARCHAR,
    rho DOUBLE NOT NULL,
    digest VARCHAR,
    prev_hash VARCHAR NOT NULL,
    hash VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS privacy_ledger (
    seq BIGINT NOT NULL,
    logged_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    round INTEGER NOT NULL,
    rho DOUBLE NOT NULL,
    spent_after DOUBLE NOT NULL
);
"""

#: Suffixes of site stores: their audit log lives inside them.
STORE_SUFFIXES = (".duckdb", ".db")
#: Suffix of the journal beside the DuckDB file.
JOURNAL_SUFFIX = ".audit-journal"
#: Journal entries that may wait before they are folded into the tables.
FOLD_EVERY = 256

_sync = getattr(os, "fdatasync", os.fsync)  # the data, not the file's times (Linux)


def _load_libc() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syncfs, libc.fstatfs  # noqa: B018 — both or neither
        return libc
    except (AttributeError, OSError, TypeError):  # not Linux (or an unusual C library)
        return None


def _kernel_at_least(major: int, minor: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        parts = os.uname().release.split(".")
        return (int(parts[0]), int(parts[1].split("-")[0])) >= (major, minor)
    except (AttributeError, IndexError, ValueError):
        return False


#: The C library, where ``syncfs`` may stand in for one sync per journal: Linux 5.8 or later,
#: where ``syncfs`` reports write-back errors as ``fdatasync`` does.
_LIBC = _load_libc() if _kernel_at_least(5, 8) else None
#: File systems whose ``syncfs`` commits every file's data to the device (``statfs`` magic):
#: local ones. Elsewhere (network and FUSE file systems, whose ``syncfs`` may not reach the
#: server) each journal is synced on its own.
SYNCFS_FILE_SYSTEMS = {
    0xEF53: "ext2/3/4",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0xF2F52010: "f2fs",
    0x01021994: "tmpfs",
}


def _syncfs_applies(fd: int) -> bool:
    """Whether one ``syncfs`` on ``fd`` makes the data of every file on its file system durable."""
    if _LIBC is None:
        return False
    buf = ctypes.create_string_buffer(512)  # struct statfs; f_type is its first field, a long
    if _LIBC.fstatfs(fd, buf) != 0:
        return False
    return ctypes.c_long.from_buffer(buf).value in SYNCFS_FILE_SYSTEMS


#: ``syncfs`` errors that say the call is not available here (a sandbox's system-call filter,
#: an unusual file system), not that data was lost: the process falls back to one sync per
#: journal.
_SYNCFS_UNAVAILABLE = {errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.EOPNOTSUPP}


class _SyncfsUnavailableError(Exception):
    """``syncfs`` cannot be used here; nothing was synced."""


def _syncfs(fd: int) -> None:
    assert _LIBC is not None
    if _LIBC.syncfs(fd) != 0:
        err = ctypes.get_errno() or errno.EIO
        if err in _SYNCFS_UNAVAILABLE:
            raise _SyncfsUnavailableError(os.strerror(err))
        raise OSError(err, f"syncfs of the audit journals failed: {os.strerror(err)}")


class AuditLogError(CardioboxError):
    """An audit journal that cannot be read back (a damaged line); nothing is folded then."""


def audit_path_for(source: str | Path) -> Path:
    """Where a site's audit log lives: the store itself, or a file beside a plain table."""
    path = Path(source)
    if path.suffix.lower() in STORE_SUFFIXES:
        return path
    return path.with_name(path.name + ".cardiobox-audit.duckdb")


def journal_path_for(path: str | Path) -> Path:
    """The journal beside an audit log's DuckDB file."""
    p = Path(path)
    return p.with_name(p.name + JOURNAL_SUFFIX)


#: Columns hashed into each entry, in order.
_HASHED = ("seq", "at", "run_id", "task", "round", "params", "outcome", "rule", "reason", "rho")
#: The fields of an :class:`AuditEntry`.
_ENTRY_FIELDS = (*_HASHED, "digest", "prev_hash", "hash")

#: The journal line's fields, as the tables' columns (audit_log, then the ledger's extra one).
_AUDIT_COLUMNS = ("seq", "logged_at", "run_id", "task", "round", "params", "outcome", "rule",
                  "reason", "rho", "digest", "prev_hash", "hash")  # fmt: skip
_JOURNAL_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("logged_at", pa.timestamp("us")),
        ("run_id", pa.string()),
        ("task", pa.string()),
        ("round", pa.int32()),
        ("params", pa.string()),
        ("outcome", pa.string()),
        ("rule", pa.string()),
        ("reason", pa.string()),
        ("rho", pa.float64()),
        ("digest", pa.string()),
        ("prev_hash", pa.string()),
        ("hash", pa.string()),
        ("spent_after", pa.float64()),
    ]
)


@dataclass(frozen=True)
class AuditEntry:
    """One logged request."""

    seq: int
    at: datetime
    run_id: str
    task: str
    round: int
    params: Any
    outcome: str
    rule: str | None
    reason: str | None
    rho: float
    digest: str | None
    prev_hash: str
    hash: str


def _entry_hash(prev_hash: str, fields: dict[str, Any], digest: str | None) -> str:
    body = {k: fields[k] for k in _HASHED}
    body["at"] = fields["at"].isoformat()
    return _chain_hash(prev_hash, body, digest)


def _chain_hash(prev_hash: str, body: dict[str, Any], digest: str | None) -> str:
    """The hash of an entry whose hashed fields (:data:`_HASHED`) are ``body``, ``at`` as text."""
    payload = orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + (digest or "").encode()
    return hashlib.sha256(prev_hash.encode() + payload).hexdigest()


def _new_entry(fields: dict[str, Any]) -> AuditEntry:
    """An :class:`AuditEntry` from its fields, without the frozen ``__init__``.

    A frozen dataclass sets each of its 13 fields through ``object.__setattr__`` (some 5 µs);
    :meth:`AuditLog.record` makes one per reply.
    """
    entry = object.__new__(AuditEntry)
    entry.__dict__.update(fields)
    return entry


def _first(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...] | None:
    # fetchall: a half-read result would keep the connection busy for the next statement
    rows = con.execute(sql).fetchall()
    return rows[0] if rows else None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class AuditLog:
    """The audit log and budget ledger of one site.

    Parameters
    ----------
    path : str or Path
        The DuckDB file (a site store, or a state file); created when missing. Its journal
        (:func:`journal_path_for`) lies beside it while entries wait to be folded.
    budget_rho : float
        The site's total zCDP budget; :meth:`record` refuses releases beyond it.
    """

    def __init__(self, path: str | Path, budget_rho: float = 0.0):
        self.path = Path(path)
        self.journal = journal_path_for(self.path)
        self.budget_rho = budget_rho
        self._lock = threading.RLock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._fd: int | None = None  # the journal, opened for appending on first record
        # The chain's tail (seq, hash), the ρ spent and the journal's waiting entries, read at
        # each open: while the connection is open it holds the file's lock, so nobody else
        # appends.
        self._tail: tuple[int, str] = (0, GENESIS)
        self._spent = 0.0
        self._waiting = 0
        # Entries written with sync=False, and how many of those are known synced.
        self._written_unsynced = 0
        self._synced_upto = 0
        self._failed: OSError | None = None  # a deferred sync failed: no more records
        self._open()

    # -- connection and journal ----------------------------------------------------------------
    def _open(self) -> duckdb.DuckDBPyConnection:
        """The connection, opened (tables made, journal folded, tail and ρ read) when closed."""
        if self._con is None:
            con = duckdb.connect(str(self.path))
            try:
                con.execute(DDL)
                self._fold(con)
                last = _first(con, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                spent = _first(con, "SELECT coalesce(sum(rho), 0) FROM privacy_ledger")
            except BaseException:
                con.close()
                raise
            self._tail = (int(last[0]), str(last[1])) if last else (0, GENESIS)
            self._spent = float(spent[0]) if spent else 0.0
            self._con = con
            # Reopened with the journal folded into the tables (committed): what it held
            # counts again, and the log may record.
            self._failed = None
        return self._con

    def _journal_fd(self) -> int:
        if self._fd is None:
            created = not self.journal.exists()
            self._fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            if created:  # the new file's name must survive a crash too
                self._sync_dir()
        return self._fd

    def _sync_dir(self) -> None:
        try:
            dir_fd = os.open(self.journal.parent, os.O_RDONLY)
        except OSError:  # a system without directory handles (Windows)
            return
        try:
            _sync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def _read_journal(self) -> tuple[list[dict[str, Any]], bool]:
        """The journal's whole entries, and whether the file holds anything at all."""
        try:
            data = self.journal.read_bytes()
        except FileNotFoundError:
            return [], False
        lines = data.split(b"\n")
        # The last piece has no newline: empty, or a line cut short by a crash before its
        # sync returned — an entry never acknowledged, so never acted on.
        rows: list[dict[str, Any]] = []
        for number, line in enumerate(lines[:-1], start=1):
            try:
                row = orjson.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("seq"), int):
                    raise ValueError("not an entry")
            except ValueError as exc:
                raise AuditLogError(
                    f"the audit journal's line {number} is damaged ({exc}); nothing was folded "
                    "— keep the file for inspection",
                    rule="audit-journal",
                    location=Location(file=str(self.journal), line=number),
                ) from None
            rows.append(row)
        return rows, bool(data)

    def _fold(self, con: duckdb.DuckDBPyConnection) -> None:
        """Move the journal's entries into the tables (one transaction), then empty it."""
        rows, written = self._read_journal()
        if rows:
            last = _first(con, "SELECT coalesce(max(seq), 0) FROM audit_log")
            done = int(last[0]) if last else 0
            # Entries already in the tables: a crash came between the commit and the truncation.
            rows = [r for r in rows if r["seq"] > done]
        if rows:
            columns = {name: [r.get(name) for r in rows] for name in _JOURNAL_SCHEMA.names}
            columns["logged_at"] = [datetime.fromisoformat(r["at"]) for r in rows]
            columns["params"] = [orjson.dumps(r["params"]).decode() for r in rows]
            con.register("journal_rows", pa.table(columns, schema=_JOURNAL_SCHEMA))
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    f"INSERT INTO audit_log SELECT {', '.join(_AUDIT_COLUMNS)} FROM journal_rows"
                )
                con.execute(
                    "INSERT INTO privacy_ledger SELECT seq, logged_at, run_id, task, round, rho, "
                    "spent_after FROM journal_rows WHERE rho > 0"
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("journal_rows")
        if written:  # folded (or a line cut short): empty the journal, durably
            if self._fd is not None:
                os.ftruncate(self._fd, 0)
                _sync(self._fd)
            else:
                with open(self.journal, "r+b") as f:
                    f.truncate(0)
                    _sync(f.fileno())
        self._waiting = 0
        self._synced_upto = self._written_unsynced  # committed to the tables, or synced

    def flush(self) -> None:
        """Fold the journal's waiting entries into the DuckDB tables now."""
        with self._lock:
            self._fold(self._open())

    def close(self) -> None:
        """Fold the journal and close the connection (it reopens on next use).

        Call it before the file is read elsewhere (another connection sees only folded
        entries). The emptied journal stays: another log of the same file in this process may
        still be appending to it.
        """
        with self._lock:
            if self._con is None:
                return
            try:
                self._fold(self._con)
            finally:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                self._con.close()
                self._con = None

    # -- budget -----------------------------------------------------------------------------------
    def spent(self) -> float:
        """The ρ spent so far."""
        with self._lock:
            self._open()
            return self._spent

    def remaining(self) -> float:
        """The ρ left in the budget."""
        return max(self.budget_rho - self.spent(), 0.0)

    # -- writing -----------------------------------------------------------------------------------
    def record(
        self,
        run_id: str,
        task: str,
        round_no: int,
        params: Any,
        outcome: str,
        *,
        rule: str | None = None,
        reason: str | None = None,
        rho: float = 0.0,
        digest: str | None = None,
        sync: bool = True,
    ) -> AuditEntry:
        """Append one entry, with its ledger row when ``rho > 0``, and return once it is on disk.

        With ``sync=False`` it returns once the entry is written, not yet synced: the caller
        must call :meth:`sync` (or :func:`sync_together`) before it acts on the entry — before
        the reply it logs leaves.

        Raises
        ------
        PolicyRefusal
            When a release would spend more than the budget left; nothing is written then
            (the caller logs the refusal with ``outcome="refused"``).
        OSError
            When the entry cannot be written and synced; the entry then does not count.
        """
        with self._lock:
            if self._failed is not None and self._con is not None:
                raise OSError(
                    errno.EIO,
                    f"an earlier sync of the audit journal {self.journal} failed "
                    f"({self._failed}); close and reopen the log before it records again",
                )
            con = self._open()
            rho = float(rho)
            spent_after = self._spent + rho
            if rho > 0 and spent_after > self.budget_rho + 1e-12:
                left = max(self.budget_rho - self._spent, 0.0)
                raise PolicyRefusal(
                    f"the release would spend rho={rho:g}; this site has {left:g} "
                    f"of its budget of {self.budget_rho:g} left",
                    rule="budget-exceeded",
                )
            seq, prev = self._tail[0] + 1, self._tail[1]
            at = datetime.now(UTC).replace(tzinfo=None)
            # The hashed fields in _HASHED's order, then the rest: the journal line's layout.
            line: dict[str, Any] = {
                "seq": seq,
                "at": at.isoformat(),
                "run_id": run_id,
                "task": task,
                "round": round_no,
                "params": params,
                "outcome": outcome,
                "rule": rule,
                "reason": reason,
                "rho": rho,
            }
            h = _chain_hash(prev, line, digest)
            line.update(digest=digest, prev_hash=prev, hash=h, spent_after=spent_after)
            self._append(orjson.dumps(line) + b"\n", sync)
            self._tail = (seq, h)
            self._spent = spent_after if rho > 0 else self._spent
            self._waiting += 1
            if self._waiting >= FOLD_EVERY:
                self._fold(con)
        entry = {k: line[k] for k in _ENTRY_FIELDS}
        entry["at"] = at
        return _new_entry(entry)

    def _append(self, line: bytes, sync: bool) -> None:
        """Write one journal line (and sync it); on failure leave the journal as it was."""
        fd = self._journal_fd()
        size = os.lseek(fd, 0, os.SEEK_END)
        try:
            _write_all(fd, line)
            if sync:
                _sync(fd)  # also makes the entries written unsynced before it durable
                self._synced_upto = self._written_unsynced
            else:
                self._written_unsynced += 1
        except BaseException:
            try:  # no half line for the next entry to follow
                os.ftruncate(fd, size)
            finally:
                os.close(fd)
                self._fd = None
            raise

    def sync(self) -> None:
        """Make the entries written with ``sync=False`` durable.

        Raises
        ------
        OSError
            When the journal cannot be synced: the entries then do not count, and the log
            records nothing more until it is closed and reopened.
        """
        sync_together([self])

    def _pending(self) -> tuple[int, int] | None:
        """A new descriptor of the journal and the count of entries written, when some wait.

        The descriptor is the caller's to close (a duplicate: the log may close its own).
        """
        with self._lock:
            if self._synced_upto == self._written_unsynced:
                return None
            if self._failed is not None:
                raise OSError(errno.EIO, f"an earlier sync of {self.journal} failed")
            return os.dup(self._journal_fd()), self._written_unsynced

    def _mark_synced(self, upto: int) -> None:
        with self._lock:
            self._synced_upto = max(self._synced_upto, upto)

    def _mark_failed(self, exc: OSError) -> None:
        # After a failed sync the kernel may drop the pages it could not write and report the
        # next sync clean: the entries written so far can no longer be vouched for.
        with self._lock:
            self._failed = exc

    # -- reading ---------------------------------------------------------------------------------
    def entries(self) -> list[AuditEntry]:
        """Every entry, oldest first."""
        with self._lock:
            con = self._open()
            self._fold(con)
            rows = con.execute(
                "SELECT seq, logged_at, run_id, task, round, params, outcome, rule, reason, rho, "
                "digest, prev_hash, hash FROM audit_log ORDER BY seq"
            ).fetchall()
        return [
            AuditEntry(
                seq=int(r[0]),
                at=r[1],
                run_id=r[2],
                task=r[3],
                round=int(r[4]),
                params=orjson.loads(r[5]) if r[5] is not None else None,
                outcome=r[6],
                rule=r[7],
                reason=r[8],
                rho=float(r[9]),
                digest=r[10],
                prev_hash=r[11],
                hash=r[12],
            )
            for r in rows
        ]

    def verify(self) -> int | None:
        """Check the hash chain; the sequence number of the first broken entry, or ``None``."""
        prev = GENESIS
        for i, e in enumerate(self.entries(), start=1):
            fields = {k: getattr(e, k) for k in _HASHED}
            if e.seq != i or e.prev_hash != prev or _entry_hash(prev, fields, e.digest) != e.hash:
                return e.seq
            prev = e.hash
        return None


class SyncError(OSError):
    """Some audit journals could not be made durable.

    Attributes
    ----------
    failed : list of AuditLog
        The logs whose entries may not be acted on (each now records nothing more until it
        is closed and reopened); the other logs' entries are durable.
    """

    def __init__(self, failed: list[AuditLog], cause: OSError):
        super().__init__(cause.errno or errno.EIO, str(cause))
        self.failed = failed


def sync_together(logs: Iterable[AuditLog]) -> None:
    """Make the entries ``logs`` wrote with ``sync=False`` durable, in as few syncs as possible.

    On Linux 5.8 or later, one ``syncfs`` per local file system the journals lie on (a single
    call for the sites of an in-process federation), which commits all of their entries at
    once; elsewhere, or where the system refuses ``syncfs`` (a sandbox's filter: then never
    again in this process), one sync per journal. ``syncfs`` writes back everything waiting
    on that file system, so other programs' writes there can lengthen it.

    Raises
    ------
    SyncError
        (an ``OSError``) naming the logs whose entries could not be synced: those may not be
        acted on, and they record nothing more until closed and reopened. With ``syncfs``
        every log of that file system fails together: its error may come from any of them.
    """
    global _syncfs_disabled
    pending: list[tuple[AuditLog, int, int]] = []
    failed: list[AuditLog] = []
    cause: OSError | None = None

    def fail(items: list[tuple[AuditLog, int, int]], exc: OSError) -> None:
        nonlocal cause
        for log, _, _ in items:
            log._mark_failed(exc)
            failed.append(log)
        cause = cause or exc

    try:
        for log in logs:
            try:
                state = log._pending()
            except OSError as exc:  # an earlier sync of this log failed
                failed.append(log)
                cause = cause or exc
                continue
            if state is not None:
                pending.append((log, *state))
        groups: dict[int | None, list[tuple[AuditLog, int, int]]] = {}
        for item in pending:
            fd = item[1]
            use_syncfs = not _syncfs_disabled and _syncfs_applies(fd)
            groups.setdefault(os.fstat(fd).st_dev if use_syncfs else None, []).append(item)
        for group, items in groups.items():
            if group is not None:
                try:
                    _syncfs(items[0][1])
                except _SyncfsUnavailableError:
                    _syncfs_disabled = True  # not here: these and all later, one per journal
                except OSError as exc:
                    fail(items, exc)
                    continue
                else:
                    for log, _, written in items:
                        log._mark_synced(written)
                    continue
            for item in items:  # one sync per journal; a failure fails that log alone
                try:
                    _sync(item[1])
                except OSError as exc:
                    fail([item], exc)
                else:
                    item[0]._mark_synced(item[2])
    finally:
        for _, fd, _ in pending:
            os.close(fd)
    if failed:
        assert cause is not None
        raise SyncError(failed, cause)


#: Set when the system refuses ``syncfs`` (see :func:`sync_together`).
_syncfs_disabled = False

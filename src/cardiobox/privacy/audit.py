"""The site's audit log (hash-chained) and privacy-budget ledger, in a DuckDB file.

Every request a site answers is logged, released or refused: when, which run, task and round,
the parameters, the outcome with its rule, the ρ spent and a SHA-256 digest of the bytes that
left the site. Each entry's hash covers the previous entry's hash, so an edited, removed or
reordered entry breaks the chain and :meth:`AuditLog.verify` says where.

The ledger holds the spent ρ; :meth:`AuditLog.record` checks the budget and writes the audit
entry and the ledger row in one transaction, so a release is never logged without being
charged, or charged twice.

For a site store the tables live in the store itself; for a plain table (CSV/Parquet) in a
state file beside it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

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


def audit_path_for(source: str | Path) -> Path:
    """Where a site's audit log lives: the store itself, or a file beside a plain table."""
    path = Path(source)
    if path.suffix.lower() in STORE_SUFFIXES:
        return path
    return path.with_name(path.name + ".cardiobox-audit.duckdb")


#: Columns hashed into each entry, in order.
_HASHED = ("seq", "at", "run_id", "task", "round", "params", "outcome", "rule", "reason", "rho")


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
    payload = orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + (digest or "").encode()
    return hashlib.sha256(prev_hash.encode() + payload).hexdigest()


class AuditLog:
    """The audit log and budget ledger of one site.

    Parameters
    ----------
    path : str or Path
        The DuckDB file (a site store, or a state file); created when missing.
    budget_rho : float
        The site's total zCDP budget; :meth:`record` refuses releases beyond it.
    """

    def __init__(self, path: str | Path, budget_rho: float = 0.0):
        self.path = Path(path)
        self.budget_rho = budget_rho
        self._con: duckdb.DuckDBPyConnection | None = None
        # The chain's tail (seq, hash) and the ρ spent, read once per connection: while the
        # connection is open it holds the file's write lock, so nobody else appends.
        self._tail: tuple[int, str] | None = None
        self._spent: float | None = None
        with self._connect() as con:
            con.execute(DDL)

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # One connection, opened on first use and kept: a run logs every round.
        if self._con is None:
            self._con = duckdb.connect(str(self.path))
            self._tail = self._spent = None
        yield self._con

    def close(self) -> None:
        """Close the connection (it reopens on next use), e.g. before the file is read elsewhere."""
        if self._con is not None:
            self._con.close()
            self._con = None
        self._tail = self._spent = None

    def spent(self) -> float:
        """The ρ spent so far."""
        with self._connect() as con:
            if self._spent is None:
                row = con.execute("SELECT coalesce(sum(rho), 0) FROM privacy_ledger").fetchone()
                self._spent = float(row[0]) if row else 0.0
        return self._spent

    def remaining(self) -> float:
        """The ρ left in the budget."""
        return max(self.budget_rho - self.spent(), 0.0)

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
    ) -> AuditEntry:
        """Append one entry (and its ledger row when ``rho > 0``) in one transaction.

        Raises
        ------
        PolicyRefusal
            When a release would spend more than the budget left; nothing is written then
            (the caller logs the refusal with ``outcome="refused"``).
        """
        with self._connect() as con:
            # One INSERT is atomic by itself; a release that spends ρ writes two rows.
            explicit = rho > 0
            if explicit:
                con.execute("BEGIN TRANSACTION")
            try:
                entry = self._append(
                    con, run_id, task, round_no, params, outcome, rule, reason, rho, digest
                )
                if explicit:
                    con.execute("COMMIT")
            except BaseException:
                if explicit:
                    con.execute("ROLLBACK")
                self._tail = self._spent = None  # re-read after a failed write
                raise
        self._tail = (entry.seq, entry.hash)
        if rho > 0:
            self._spent = self.spent() + float(rho)
        return entry

    def _append(
        self,
        con: duckdb.DuckDBPyConnection,
        run_id: str,
        task: str,
        round_no: int,
        params: Any,
        outcome: str,
        rule: str | None,
        reason: str | None,
        rho: float,
        digest: str | None,
    ) -> AuditEntry:
        if rho > 0:
            spent = self.spent()
            if spent + rho > self.budget_rho + 1e-12:
                left = max(self.budget_rho - spent, 0.0)
                raise PolicyRefusal(
                    f"the release would spend rho={rho:g}; this site has {left:g} "
                    f"of its budget of {self.budget_rho:g} left",
                    rule="budget-exceeded",
                )
        if self._tail is None:
            last = con.execute(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            self._tail = (int(last[0]), str(last[1])) if last else (0, GENESIS)
        seq, prev = self._tail[0] + 1, self._tail[1]
        fields: dict[str, Any] = {
            "seq": seq,
            "at": datetime.now(UTC).replace(tzinfo=None),
            "run_id": run_id,
            "task": task,
            "round": round_no,
            "params": params,
            "outcome": outcome,
            "rule": rule,
            "reason": reason,
            "rho": float(rho),
        }
        h = _entry_hash(prev, fields, digest)
        con.execute(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                seq,
                fields["at"],
                run_id,
                task,
                round_no,
                orjson.dumps(params).decode(),
                outcome,
                rule,
                reason,
                float(rho),
                digest,
                prev,
                h,
            ],
        )
        if rho > 0:
            con.execute(
                "INSERT INTO privacy_ledger VALUES (?, ?, ?, ?, ?, ?, ?)",
                [seq, fields["at"], run_id, task, round_no, float(rho), spent + float(rho)],
            )
        return AuditEntry(hash=h, prev_hash=prev, digest=digest, **fields)

    def entries(self) -> list[AuditEntry]:
        """Every entry, oldest first."""
        with self._connect() as con:
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

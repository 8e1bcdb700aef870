"""The site's node: answers the hub's requests under the site's own policy.

For every request the node decodes and checks the message, checks the task, the columns and
the number of sites against the policy, computes the task's site half on the site's table,
masks the vectors to be summed, logs the release (or the refusal) in the audit log and the
budget ledger — and only then lets the reply go. A round asked again (after another site
dropped out) reuses the release already logged and charged, with fresh masks.

The checks of a request's parameters (the task's validation, the policy's columns, the table's
columns) depend only on the parameters, the policy and the table: the node keeps their outcome
for the run and repeats them whenever a request of the run carries other parameters.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiobox import tableio
from cardiobox.errors import CardioboxError
from cardiobox.federated import wire
from cardiobox.federated.site_table import SiteTable
from cardiobox.federated.task import SiteContext, SiteOutput, Task, TaskError, get_task
from cardiobox.federated.where import columns as where_columns
from cardiobox.federated.where import parse_where
from cardiobox.privacy import secagg
from cardiobox.privacy.audit import STORE_SUFFIXES, AuditLog, audit_path_for
from cardiobox.privacy.policy import PolicyRefusal, SitePolicy


def read_table(source: Path) -> SiteTable:
    """A CSV, TSV or Parquet file as a :class:`SiteTable`.

    Raises
    ------
    InputError
        For a missing file or an unsupported format.
    """
    return SiteTable(tableio.read_table(source), source=source.name)


@dataclass(frozen=True)
class _Checked:
    """A run's parameters, checked against the policy and the table."""

    task: str
    raw: dict[str, Any]
    params: Any
    table: SiteTable
    runner: Task[Any]


@dataclass(frozen=True)
class _Round:
    """A round's site list and masking keys, checked, and this site's neighbours among them."""

    sites: list[str]
    keys: dict[str, str]
    peers: dict[str, str]


@dataclass
class _Run:
    key: secagg.MaskingKey
    checked: _Checked
    outputs: dict[int, SiteOutput] = field(default_factory=dict)
    last_round: _Round | None = None  # every round of a run usually has the same sites
    spent: float = 0.0  # ρ charged by the run's releases so far


class SiteNode:
    """One hospital site: its data, its policy, its audit log.

    Parameters
    ----------
    name : str
        The site's name in the federation.
    source : str or Path
        A site store (``.duckdb``) or an analysis table (CSV, TSV, Parquet).
    policy : SitePolicy, optional
        The site's policy (the default policy when absent).
    state_path : str or Path, optional
        The DuckDB file of the audit log and ledger (default: the store, or
        ``<table>.cardiobox-audit.duckdb`` beside a table).
    seed : int, optional
        Seed of the noise generator (for tests; by default fresh entropy).
    """

    def __init__(
        self,
        name: str,
        source: str | Path,
        policy: SitePolicy | None = None,
        state_path: str | Path | None = None,
        seed: int | None = None,
    ):
        self.name = name
        self.source = Path(source)
        self.policy = policy or SitePolicy()
        self.audit = AuditLog(
            Path(state_path) if state_path is not None else audit_path_for(self.source),
            self.policy.budget.rho,
        )
        self._rng = np.random.default_rng(seed)
        self._tables: dict[tuple[str | None, str | None], SiteTable] = {}
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._durable = True  # whether audit entries are synced as they are written

    @property
    def is_store(self) -> bool:
        """Whether the source is a site store (tables come from cohort extraction)."""
        return self.source.suffix.lower() in STORE_SUFFIXES

    def table(self, cohort: str | None, features: str | None) -> SiteTable:
        """The analysis table for a request (cached per cohort and feature set)."""
        key = (cohort, features) if self.is_store else (None, None)
        if key not in self._tables:
            self._tables[key] = self._load(cohort, features)
        return self._tables[key]

    def _definition(self, name: str, what: str) -> Path:
        from cardiobox.cohort.library import library_dir, library_names

        if name in self.policy.definitions:
            return Path(self.policy.definitions[name])
        if name in library_names():
            return library_dir() / f"{name}.yaml"
        known = sorted(self.policy.definitions) + library_names()
        raise TaskError(
            f"{what} {name!r} is neither in this site's policy definitions nor built in "
            f"(known: {', '.join(known)}); a site never reads a path sent by the hub",
            rule="unknown-definition",
        )

    def _load(self, cohort: str | None, features: str | None) -> SiteTable:
        if not self.is_store:
            if cohort or features:
                raise TaskError(
                    "this site serves a table, not a store: cohort and features do not apply",
                    rule="bad-params",
                )
            return read_table(self.source)
        if not cohort or not features:
            raise TaskError(
                "this site is a site store: the request must name a cohort and a feature set "
                "(params cohort and features)",
                rule="bad-params",
            )
        from cardiobox.cohort import extract

        self.audit.close()  # the store is the audit file: let the extraction open it
        result = extract(
            self._definition(cohort, "cohort"),
            self.source,
            features=self._definition(features, "feature set"),
            min_cell=self.policy.min_cell_count,
        )
        assert result.table is not None
        return SiteTable(result.table, source=f"{self.source.name} ({cohort} × {features})")

    # -- requests ------------------------------------------------------------------------------
    def handle(self, data: bytes, *, durable: bool = True) -> bytes:
        """Answer one request (bytes in, bytes out).

        Every failure of the request becomes a logged refusal or error reply; only a failure
        to log (an ``OSError`` from the audit log, whose earlier sync failed or whose disk
        refuses the entry) is raised, since no reply may leave unlogged.

        Parameters
        ----------
        data : bytes
            The request as received.
        durable : bool
            Return once the audit entry logging the reply is on disk (the default). With
            ``False`` the entry is written but not synced: the caller must make it durable
            (``node.audit.sync()`` or :func:`~cardiobox.privacy.audit.sync_together`) before
            the reply leaves — a runtime that holds many sites' replies syncs them at once.
        """
        with self._lock:
            self._durable = durable
            try:
                return self._handle(data)
            finally:
                self._durable = True

    def _reply(self, req: wire.Request | None, **kw: Any) -> wire.Reply:
        return wire.Reply(
            run_id=req.run_id if req else "?",
            round=req.round if req else -1,
            site=self.name,
            **kw,
        )

    def _log_refusal(self, req: wire.Request | None, exc: CardioboxError, outcome: str) -> bytes:
        reply = self._reply(req, status=outcome, rule=exc.rule, reason=exc.message)
        data = wire.encode_reply(reply)
        self.audit.record(
            req.run_id if req else "?",
            req.task if req else "?",
            req.round if req else -1,
            req.params if req else None,
            outcome,
            rule=exc.rule,
            reason=exc.message,
            digest=hashlib.sha256(data).hexdigest(),
            sync=self._durable,
        )
        return data

    def _check(self, req: wire.Request) -> _Checked:
        """Check a request's task and parameters against the policy and the table."""
        task = get_task(req.task)
        self.policy.check_task(task.name)
        params = task.parse(req.params)
        needed = set(task.variables(params))
        if params.where:
            needed |= where_columns(parse_where(params.where))
        self.policy.check_variables(needed)
        table = self.table(params.cohort, params.features)
        table.check(sorted(needed))
        return _Checked(task.name, req.params, params, table, task)

    def _handle(self, data: bytes) -> bytes:
        req: wire.Request | None = None
        try:
            req = wire.decode_request(data, self.policy.max_message_bytes)
            run = self._runs.get(req.run_id)
            if run is not None and run.checked.task == req.task and run.checked.raw == req.params:
                checked = run.checked  # the same parameters as the run's, already checked
            else:
                checked = self._check(req)
            if req.round == 0:
                return self._setup(req, checked)
            return self._round(req, checked.runner, checked)
        except PolicyRefusal as exc:
            return self._log_refusal(req, exc, "refused")
        except CardioboxError as exc:
            return self._log_refusal(req, exc, "error")
        except Exception as exc:  # a bug or a broken source: say what, keep details at the site
            err = CardioboxError(f"internal error at the site ({type(exc).__name__})", "internal")
            reply = self._log_refusal(req, err, "error")
            self.audit.record(
                req.run_id if req else "?", req.task if req else "?", req.round if req else -1,
                None, "error-detail", rule="internal", reason=repr(exc), sync=self._durable,
            )  # fmt: skip
            return reply

    def _setup(self, req: wire.Request, checked: _Checked) -> bytes:
        run = self._runs.setdefault(req.run_id, _Run(secagg.MaskingKey(), checked))
        reply = self._reply(req, status="ok", key=run.key.public_text())
        data = wire.encode_reply(reply)
        self.audit.record(
            req.run_id,
            req.task,
            0,
            req.params,
            "accepted",
            digest=hashlib.sha256(data).hexdigest(),
            sync=self._durable,
        )
        return data

    def _round(self, req: wire.Request, task: Task[Any], checked: _Checked) -> bytes:
        run = self._runs.get(req.run_id)
        if run is None:
            raise TaskError("no set-up round for this run at this site", rule="protocol")
        params, table = checked.params, checked.table
        if req.round > min(self.policy.max_rounds, task.max_rounds):
            raise PolicyRefusal(
                f"round {req.round} is beyond this site's limit of "
                f"{min(self.policy.max_rounds, task.max_rounds)} rounds",
                rule="too-many-rounds",
            )
        peers = self._peers(run, req) if task.uses_secure_sum else {}
        fresh = req.round not in run.outputs
        if fresh:
            rho = self.policy.release_rho(params.rho)
            # A run-scoped ρ is spent in shares: what the run may still spend must fit.
            needed = max(rho - run.spent, 0.0) if task.rho_per_run else rho
            if needed > self.audit.remaining() + 1e-12:
                raise PolicyRefusal(
                    f"the {'run' if task.rho_per_run else 'release'} would spend "
                    f"rho={needed:g}{' more' if task.rho_per_run else ''}; this site has "
                    f"{self.audit.remaining():g} of its budget left",
                    rule="budget-exceeded",
                )
            ctx = SiteContext(self.name, self.policy, rho, self._rng)
            output = task.site(table, params, req.payload, ctx)
            if output.secure and not task.uses_secure_sum:
                raise TaskError(f"task {task.name} returned vectors to sum", rule="internal")
            limit = rho - run.spent if task.rho_per_run else rho
            if output.rho > limit + 1e-12:
                raise TaskError(
                    f"task {task.name} would charge rho={output.rho:g}, above the "
                    f"rho={limit:g} the request leaves it",
                    rule="internal",
                )
        else:
            output = run.outputs[req.round]
        manifest, vector = wire.flatten(output.secure)
        masked = None
        if task.uses_secure_sum:
            context = secagg.round_context(req.run_id, req.round, req.sites)
            masked = secagg.mask_text(vector, self.name, run.key, peers, context)
        reply = self._reply(
            req,
            status="ok",
            values=output.values,
            manifest=manifest,
            masked=masked,
            rho=output.rho if fresh else 0.0,
        )
        data = wire.encode_reply(reply)
        # Logged (and charged) before the reply leaves; a refusal here sends nothing else.
        self.audit.record(
            req.run_id,
            req.task,
            req.round,
            req.params,
            "released" if fresh else "released-again",
            reason=output.mechanism,
            rho=output.rho if fresh else 0.0,
            digest=hashlib.sha256(data).hexdigest(),
            sync=self._durable,
        )
        run.outputs[req.round] = output
        if fresh:
            run.spent += output.rho
        return data

    def _peers(self, run: _Run, req: wire.Request) -> dict[str, str]:
        """The round's neighbours and their keys, once its sites and keys are checked.

        The checks and the neighbours depend only on the site list and the keys: a round with
        the same ones as the run's last round reuses them.
        """
        last = run.last_round
        if last is not None and last.sites == req.sites and last.keys == req.keys:
            return last.peers
        self.policy.check_sites(len(set(req.sites)))
        if self.name not in req.sites or set(req.keys) != set(req.sites):
            raise TaskError("the round's site list or keys are inconsistent", rule="protocol")
        peers = {s: req.keys[s] for s in secagg.neighbours(self.name, req.sites)}
        run.last_round = _Round(req.sites, req.keys, peers)
        return peers

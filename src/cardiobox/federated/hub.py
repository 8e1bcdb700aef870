"""The hub: runs a task's rounds over a transport and aggregates what the sites release.

The hub knows the sites only through a :class:`Transport` (in-process calls, or Flower's
deployment runtime); it sends JSON requests and reads JSON replies. Round 0 is the set-up:
every site checks the request against its policy and sends its public masking key. In each
later round the sites that are still in send their release; when one refuses, fails or times
out, it is dropped and the round is asked again of the others (fresh masks, same releases),
as long as at least ``min_sites`` remain — otherwise the run stops with the reasons.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from cardiobox.errors import CardioboxError
from cardiobox.federated import wire
from cardiobox.federated.task import Next, Result, RoundResult, Task, get_task
from cardiobox.privacy import secagg

#: Replies larger than this are refused unread.
MAX_REPLY_BYTES = 64_000_000


class Transport(Protocol):
    """How the hub reaches the sites."""

    def sites(self) -> list[str]:
        """Names of the sites."""
        ...

    def exchange(self, requests: dict[str, bytes], timeout: float) -> dict[str, bytes | Exception]:
        """Send each site its request; its reply, or the exception that stands for none."""
        ...


class RunError(CardioboxError):
    """A run that cannot go on (too few sites left, a task that does not converge)."""

    def __init__(self, message: str, rule: str, report: RunReport):
        super().__init__(message, rule)
        self.report = report


@dataclass
class RunReport:
    """What a run did: its result, the sites in it, those that refused or failed."""

    run_id: str
    task: str
    params: dict[str, Any]
    result: dict[str, Any] | None = None
    sites: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    rounds: int = 0
    round_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0
    rho: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "run_id": self.run_id,
            "task": self.task,
            "params": self.params,
            "result": self.result,
            "sites": self.sites,
            "refused": self.refused,
            "failed": self.failed,
            "rounds": self.rounds,
            "seconds": self.seconds,
            "rho_spent": self.rho,
        }


def _describe(reply: wire.Reply) -> str:
    return f"[{reply.rule}] {reply.reason}" if reply.rule else (reply.reason or reply.status)


class Hub:
    """Runs tasks over a transport.

    Parameters
    ----------
    transport : Transport
        How to reach the sites.
    timeout : float
        Seconds a site has to answer one request (default 120).
    min_sites : int, optional
        Stop when fewer sites remain (default 1 for tasks without sums, else 2).
    progress : callable, optional
        Called with (round, message) as the run goes.
    """

    def __init__(
        self,
        transport: Transport,
        timeout: float = 120.0,
        min_sites: int | None = None,
        progress: Callable[[int, str], None] | None = None,
    ):
        self.transport = transport
        self.timeout = timeout
        self.min_sites = min_sites
        self.progress = progress or (lambda _r, _m: None)

    def run(self, task_name: str, params: dict[str, Any]) -> RunReport:
        """Run a task to its result.

        Raises
        ------
        TaskError
            For parameters the task rejects (checked at the hub before anything is sent).
        RunError
            When too few sites remain, or the task needs more rounds than it allows.
        """
        task = get_task(task_name)
        parsed = task.parse(params)
        start = time.perf_counter()
        report = RunReport(uuid.uuid4().hex, task.name, params)
        need = self.min_sites or (2 if task.uses_secure_sum else 1)
        live = self._setup(task, report, need)
        keys = dict(live)
        state: dict[str, Any] = {}
        payload = task.start(parsed)
        for round_no in range(1, task.max_rounds + 1):
            t0 = time.perf_counter()
            result = self._round(task, report, round_no, payload, keys, need)
            report.round_seconds.append(time.perf_counter() - t0)
            report.rounds = round_no
            outcome = task.hub(parsed, result, state)
            if isinstance(outcome, Result):
                report.result = outcome.value
                report.sites = result.sites
                report.seconds = time.perf_counter() - start
                return report
            assert isinstance(outcome, Next)
            payload = outcome.payload
        report.seconds = time.perf_counter() - start
        raise RunError(
            f"{task.name} did not finish in {task.max_rounds} rounds", "no-convergence", report
        )

    def _exchange(
        self, report: RunReport, round_no: int, requests: dict[str, bytes]
    ) -> dict[str, wire.Reply]:
        raw = self.transport.exchange(requests, self.timeout)
        replies: dict[str, wire.Reply] = {}
        for site in requests:
            got = raw.get(site, TimeoutError("no reply"))
            if isinstance(got, Exception):
                report.failed[site] = f"round {round_no}: {type(got).__name__}: {got}"
                continue
            try:
                reply = wire.decode_reply(got, MAX_REPLY_BYTES)
            except wire.WireError as exc:
                report.failed[site] = f"round {round_no}: {exc.message}"
                continue
            if reply.site != site or reply.run_id != report.run_id or reply.round != round_no:
                report.failed[site] = f"round {round_no}: a reply for another run or round"
                continue
            if reply.status == "refused":
                report.refused[site] = _describe(reply)
            elif reply.status == "error":
                report.failed[site] = f"round {round_no}: {_describe(reply)}"
            else:
                replies[site] = reply
        return replies

    def _check_enough(self, report: RunReport, live: list[str], need: int) -> None:
        if len(live) < need:
            reasons = "; ".join(f"{s}: {r}" for s, r in {**report.refused, **report.failed}.items())
            raise RunError(
                f"{len(live)} site(s) left, the run needs at least {need}"
                + (f" ({reasons})" if reasons else ""),
                "too-few-sites",
                report,
            )

    def _setup(self, task: Task[Any], report: RunReport, need: int) -> dict[str, str]:
        sites = self.transport.sites()
        req = wire.Request(report.run_id, task.name, 0, report.params)
        data = wire.encode_request(req)
        self.progress(0, f"set-up with {len(sites)} sites")
        replies = self._exchange(report, 0, dict.fromkeys(sites, data))
        keys = {s: r.key for s, r in replies.items() if r.key}
        for s in set(replies) - set(keys):
            report.failed[s] = "set-up: no masking key"
        self._check_enough(report, sorted(keys), need)
        return {s: k for s, k in keys.items() if k is not None}

    def _round(
        self,
        task: Task[Any],
        report: RunReport,
        round_no: int,
        payload: dict[str, Any],
        keys: dict[str, str],
        need: int,
    ) -> RoundResult:
        while True:
            live = sorted(keys)
            self._check_enough(report, live, need)
            req = wire.Request(
                report.run_id, task.name, round_no, report.params, payload, live,
                {s: keys[s] for s in live},
            )  # fmt: skip
            data = wire.encode_request(req)
            self.progress(round_no, f"round {round_no} with {len(live)} sites")
            replies = self._exchange(report, round_no, dict.fromkeys(live, data))
            for s in set(live) - set(replies):
                del keys[s]
            if len(replies) < len(live) and task.uses_secure_sum:
                continue  # the masks of the missing sites do not cancel: ask the others again
            self._check_enough(report, sorted(replies), need)
            for s, r in replies.items():
                report.rho[s] = report.rho.get(s, 0.0) + r.rho
            return RoundResult(
                round=round_no,
                sites=sorted(replies),
                values={s: r.values for s, r in replies.items()},
                sums=self._sum(replies) if task.uses_secure_sum else {},
                refused=dict(report.refused),
                failed=dict(report.failed),
            )

    @staticmethod
    def _sum(replies: dict[str, wire.Reply]) -> dict[str, np.ndarray]:
        manifests = {tuple(r.manifest) for r in replies.values()}
        if len(manifests) != 1:
            raise CardioboxError("the sites sent differently shaped vectors to sum", "protocol")
        manifest = list(next(iter(manifests)))
        texts = []
        for r in replies.values():
            if r.masked is None:
                raise CardioboxError(f"site {r.site} sent no masked vector", "protocol")
            texts.append(r.masked)
        return wire.unflatten(manifest, secagg.sum_texts(texts))

"""The in-process runtime: many simulated sites in this process, no network.

Each site is a :class:`~cardiobox.federated.node.SiteNode` with its own data, policy and audit
log; the hub and the nodes exchange the same JSON bytes as over the network, so the task code,
the policy checks and the secure aggregation are exactly those of a deployment.

Scheduling. Most replies are a fraction of a millisecond of Python: threads would only fight
over the interpreter's lock (50 sites answering in 32 threads took 41 ms a round where one
worker thread took 27 ms). So a round starts with one *lane*, a thread that answers the sites
one after the other; while sites wait, another lane starts whenever every lane has been busy
with the same site for :data:`STALL_AFTER` seconds (a site that hangs, or real work such as
training a network) or the sites answered so far took a quarter of that each on average, up to
the transport's number of workers. Light rounds stay in one thread; heavy ones spread out
within a few multiples of :data:`STALL_AFTER`; a site that hangs holds up only its own lane.
One deadline bounds the sites' answers; the sync that follows (below) comes on top.

Durability. A site may not let a reply go before the audit entry that logs it is on disk.
The transport holds every reply of a round until their entries are durable, so the sites write
their entries unsynced and the transport makes them all durable at once
(:func:`~cardiobox.privacy.audit.sync_together`: one ``syncfs`` per local file system on
Linux 5.8 or later) before it hands any reply to the hub: a round costs the sites' processor
time plus one sync, not one sync per site. A reply whose entry cannot be synced is never handed
over (the site counts as failed, and its log records nothing more until it is reopened).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from cardiobox.federated.node import SiteNode
from cardiobox.privacy.audit import SyncError, sync_together

#: The most threads answering at once (the default is one per site up to this).
MAX_WORKERS = 32
#: Seconds every lane must have spent on its current site before another lane starts (or,
#: averaged, a quarter of it per site answered): see :meth:`_RoundWork.stalled`.
STALL_AFTER = 0.02


class SiteDownError(ConnectionError):
    """Raised by a simulated site that is down."""


class _RoundWork:
    """One round's requests, answered by lanes that take the next waiting site in turn."""

    def __init__(self, requests: dict[str, bytes], started: float | None = None):
        self.waiting = deque(requests.items())
        self.total = len(requests)
        self.started = time.monotonic() if started is None else started
        self.replies: dict[str, bytes | BaseException] = {}
        self.busy: dict[int, float] = {}  # lane → when it took its current site
        self.lanes = 0
        self.closed = False  # past the deadline: late replies are dropped
        self.changed = threading.Condition()

    def start_lane(self, pool: ThreadPoolExecutor, call: Callable[[str, bytes], bytes]) -> None:
        """Start one more lane (the caller holds ``changed``)."""
        self.lanes += 1
        self.busy[self.lanes] = time.monotonic()  # busy from now: it is about to take a site
        pool.submit(self._lane, self.lanes, call)

    def _lane(self, me: int, call: Callable[[str, bytes], bytes]) -> None:
        """Answer waiting sites until none is left (run in a worker thread)."""
        while True:
            with self.changed:
                self.busy.pop(me, None)
                if self.closed or not self.waiting:
                    self.changed.notify_all()
                    return
                site, data = self.waiting.popleft()
                self.busy[me] = time.monotonic()
            try:
                reply: bytes | BaseException = call(site, data)
            except BaseException as exc:  # the site's failure is its reply (re-raised if fatal)
                reply = exc
            with self.changed:
                if not self.closed:
                    self.replies[site] = reply
                    if len(self.replies) == self.total:
                        self.changed.notify_all()

    def stalled(self, now: float) -> bool:
        """Whether another lane should start: sites wait behind slow work.

        Slow: every lane has been on its current site for ``STALL_AFTER``, or the sites
        answered so far took ``STALL_AFTER / 4`` each on average (work worth overlapping:
        a thread's hand-over costs a fraction of a millisecond).
        """
        if not self.waiting:
            return False
        if all(now - t >= STALL_AFTER for t in self.busy.values()):
            return True
        done = len(self.replies)
        return done > 0 and (now - self.started) * self.lanes / done >= STALL_AFTER / 4


class InProcessTransport:
    """A transport whose sites are :class:`SiteNode` objects in this process.

    Parameters
    ----------
    nodes : list of SiteNode
        The sites.
    workers : int
        The most threads answering requests at once (default: one per site, at most
        :data:`MAX_WORKERS`); a round starts with one and adds more only while sites wait
        behind busy ones.
    """

    def __init__(self, nodes: list[SiteNode], workers: int | None = None):
        self.nodes = {n.name: n for n in nodes}
        if len(self.nodes) != len(nodes):
            raise ValueError("two sites have the same name")
        self.down: set[str] = set()
        self.max_lanes = workers or max(1, min(len(nodes), MAX_WORKERS))
        self._pool = ThreadPoolExecutor(max_workers=self.max_lanes)

    def sites(self) -> list[str]:
        """Names of the sites."""
        return sorted(self.nodes)

    def _call(self, site: str, data: bytes) -> bytes:
        if site in self.down:
            raise SiteDownError(f"site {site} is down")
        # Unsynced: exchange() makes the round's audit entries durable before any reply leaves.
        return self.nodes[site].handle(data, durable=False)

    def exchange(self, requests: dict[str, bytes], timeout: float) -> dict[str, bytes | Exception]:
        """Send each site its request; replies or exceptions, within one deadline.

        The replies are handed over only once the audit entries logging them are on disk.
        """
        work = _RoundWork(requests)
        deadline = work.started + timeout
        with work.changed:
            try:
                while len(work.replies) < work.total:
                    now = time.monotonic()
                    if now >= deadline:
                        break
                    if work.lanes < self.max_lanes and (work.lanes == 0 or work.stalled(now)):
                        work.start_lane(self._pool, self._call)
                    work.changed.wait(timeout=min(STALL_AFTER, deadline - now))
            finally:
                work.closed = True  # whatever happens here, the lanes answer no more sites
            replies = dict(work.replies)
        for reply in replies.values():
            if not isinstance(reply, bytes | Exception):
                raise reply  # KeyboardInterrupt, SystemExit: not a site's failure
        out: dict[str, bytes | Exception] = {
            site: got
            if isinstance(got := replies.get(site), bytes | Exception)
            else TimeoutError(f"site {site} did not answer within {timeout:g} s")
            for site in requests
        }
        answered = [s for s, r in out.items() if isinstance(r, bytes)]
        try:
            sync_together(self.nodes[s].audit for s in answered)
        except SyncError as exc:
            failed = {id(log) for log in exc.failed}
            for site in answered:
                if id(self.nodes[site].audit) in failed:
                    out[site] = OSError(f"site {site} could not make its audit log durable ({exc})")
        return out

    def close(self) -> None:
        """Stop the worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

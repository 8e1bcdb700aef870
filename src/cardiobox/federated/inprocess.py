"""The in-process runtime: many simulated sites in this process, no network.

Each site is a :class:`~cardiobox.federated.node.SiteNode` with its own data, policy and audit
log; the hub and the nodes exchange the same JSON bytes as over the network, so the task code,
the policy checks and the secure aggregation are exactly those of a deployment. Sites answer
in parallel threads; a site that does not answer within the timeout is dropped from the run.

A site's reply is a fraction of a millisecond of Python (under the interpreter's lock), then a
wait for the disk to sync the audit entry that logs it, which releases the lock: with a thread
per site (up to :data:`MAX_WORKERS`) the syncs of a round overlap — the file system commits
them together — so a round costs about the sites' processor time plus a sync or two, not one
sync per site.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

from cardiobox.federated.node import SiteNode

#: The most threads answering at once (the default is one per site up to this).
MAX_WORKERS = 32


class SiteDownError(ConnectionError):
    """Raised by a simulated site that is down."""


class InProcessTransport:
    """A transport whose sites are :class:`SiteNode` objects in this process.

    Parameters
    ----------
    nodes : list of SiteNode
        The sites.
    workers : int
        Threads answering requests at once (default: one per site, at most
        :data:`MAX_WORKERS`).
    """

    def __init__(self, nodes: list[SiteNode], workers: int | None = None):
        self.nodes = {n.name: n for n in nodes}
        if len(self.nodes) != len(nodes):
            raise ValueError("two sites have the same name")
        self.down: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=workers or max(1, min(len(nodes), MAX_WORKERS)))

    def sites(self) -> list[str]:
        """Names of the sites."""
        return sorted(self.nodes)

    def _call(self, site: str, data: bytes) -> bytes:
        if site in self.down:
            raise SiteDownError(f"site {site} is down")
        return self.nodes[site].handle(data)

    def exchange(self, requests: dict[str, bytes], timeout: float) -> dict[str, bytes | Exception]:
        """Send each site its request in parallel; replies or exceptions."""
        futures = {s: self._pool.submit(self._call, s, data) for s, data in requests.items()}
        wait(futures.values(), timeout=timeout)  # one deadline for the whole round
        out: dict[str, bytes | Exception] = {}
        for site, fut in futures.items():
            if not fut.done():
                fut.cancel()
                out[site] = TimeoutError(f"site {site} did not answer within {timeout:g} s")
                continue
            exc = fut.exception()
            out[site] = exc if isinstance(exc, Exception) else fut.result()
        return out

    def close(self) -> None:
        """Stop the worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

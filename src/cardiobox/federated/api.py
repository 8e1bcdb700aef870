"""Run a federated task over sites on this machine (the Python API behind ``cardiobox fed run``).

Example
-------
>>> from cardiobox.federated import run
>>> report = run("logreg", {"a": "a.csv", "b": "b.csv", "c": "c.csv"},
...              {"outcome": "num", "covariates": ["age", "sex"]})          # doctest: +SKIP
>>> report.result["coefficients"]["age"]                                    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cardiobox.federated.hub import Hub, RunReport
from cardiobox.federated.inprocess import InProcessTransport
from cardiobox.federated.node import SiteNode
from cardiobox.privacy.policy import SitePolicy, load_policy


def make_nodes(
    sites: Mapping[str, str | Path],
    policy: SitePolicy | str | Path | Mapping[str, SitePolicy] | None = None,
    seed: int | None = None,
) -> list[SiteNode]:
    """One :class:`SiteNode` per site.

    Parameters
    ----------
    sites : mapping of str to path
        Site name → site store or table.
    policy : SitePolicy, path, or mapping of site name to SitePolicy, optional
        One policy for every site, or one per site (the default policy when absent).
    seed : int, optional
        Seed of the sites' noise generators (site ``i`` gets ``seed + i``).
    """
    if isinstance(policy, Mapping):
        policies = dict(policy)
    else:
        shared = policy if isinstance(policy, SitePolicy) else load_policy(policy)
        policies = dict.fromkeys(sites, shared)
    return [
        SiteNode(
            name,
            path,
            policies.get(name) or SitePolicy(),
            seed=None if seed is None else seed + i,
        )
        for i, (name, path) in enumerate(sites.items())
    ]


def run(
    task: str,
    sites: Mapping[str, str | Path] | list[SiteNode],
    params: dict[str, Any],
    policy: SitePolicy | str | Path | Mapping[str, SitePolicy] | None = None,
    *,
    timeout: float = 120.0,
    min_sites: int | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> RunReport:
    """Run ``task`` on the in-process runtime and return its report.

    Parameters
    ----------
    task : str
        ``count``, ``describe``, ``crosstab``, ``km``, ``logreg``, ``linreg``, ``cox``...
    sites : mapping of str to path, or list of SiteNode
        The sites (stores or CSV/Parquet tables), or nodes already made.
    params : dict
        The task's parameters (see each task's documentation).
    policy : optional
        The sites' policy (see :func:`make_nodes`); ignored when nodes are given.
    timeout : float
        Seconds each site has per request.
    min_sites : int, optional
        Stop when fewer sites remain.
    progress : callable, optional
        Called with (round, message).

    Raises
    ------
    TaskError
        For parameters the task rejects.
    RunError
        When too few sites remain (its ``report`` says why).
    """
    nodes = sites if isinstance(sites, list) else make_nodes(sites, policy)
    transport = InProcessTransport(nodes)
    try:
        return Hub(transport, timeout=timeout, min_sites=min_sites, progress=progress).run(
            task, params
        )
    finally:
        transport.close()

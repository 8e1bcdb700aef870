"""``count``: how many rows of each site's table pass a filter (feasibility).

Counts are released in clear, one per site, so a count below the site's minimum cell count
is suppressed at the site (``null``) and left out of the total — never added in a way that
would let it be recovered by difference. With ``rho`` the site adds Gaussian noise
(sensitivity 1) before suppressing.
"""

from __future__ import annotations

from typing import Any

from cardiobox.federated.site_table import SiteTable
from cardiobox.federated.task import (
    Next,
    Result,
    RoundResult,
    SiteContext,
    SiteOutput,
    Task,
    TaskParams,
    register,
)
from cardiobox.privacy.zcdp import gaussian_sigma


class CountParams(TaskParams):
    """Parameters of ``count``: only the common ones (``where``, ``rho``, ``cohort``...)."""


class CountTask(Task[CountParams]):
    """Rows per site that pass `where`; small counts suppressed at the site."""

    name = "count"
    params_model = CountParams
    uses_secure_sum = False
    max_rounds = 1

    def variables(self, params: CountParams) -> set[str]:
        """Only the columns of ``where``."""
        return set()

    def site(
        self, table: SiteTable, params: CountParams, payload: dict[str, Any], ctx: SiteContext
    ) -> SiteOutput:
        """Count, add noise when asked, suppress below the minimum cell count."""
        n: float = table.count(params.where)
        mechanism = f"count, suppressed below {ctx.policy.min_cell_count}"
        if ctx.rho > 0:
            n = max(round(n + ctx.rng.normal(0.0, gaussian_sigma(1.0, ctx.rho))), 0)
            mechanism = f"Gaussian noise (rho={ctx.rho:g}, sensitivity 1); " + mechanism
        released = int(n) if n >= ctx.policy.min_cell_count else None
        return SiteOutput(
            values={
                "n": released,
                "min_cell_count": ctx.policy.min_cell_count,
                "noisy": ctx.rho > 0,
            },
            rho=ctx.rho,
            mechanism=mechanism,
        )

    def hub(self, params: CountParams, result: RoundResult, state: dict[str, Any]) -> Next | Result:
        """Per-site counts (``None`` when suppressed) and the total of those released."""
        per_site: dict[str, int | None] = {s: v.get("n") for s, v in result.values.items()}
        released = [n for n in per_site.values() if isinstance(n, int)]
        return Result(
            {
                "per_site": per_site,
                "total": sum(released),
                "sites_suppressed": sorted(s for s, n in per_site.items() if n is None),
                "noisy": any(v.get("noisy") for v in result.values.values()),
                "sites_refused": result.refused,
                "sites_failed": result.failed,
            }
        )


register(CountTask())

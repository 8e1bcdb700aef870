"""The contract every federated task keeps, run against each registered task.

Like scikit-learn's ``check_estimator``: every task has an example request on the
heart-failure records split into three sites, and must
- give a JSON-able result, the same twice in a row (deterministic);
- read only the columns it declares (a policy denying one of them makes every site refuse);
- be refused where the site's policy does not allow it;
- name an unknown column in its error;
- refuse, or suppress, when a site has fewer rows than its minimum cell count;
- carry on without a site that is down;
- either add noise and charge the budget, or refuse noise with ``dp-unsupported``;
- leave an intact audit log at every site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from cardiobox.federated import TASKS, RunError, SiteNode, get_task, run
from cardiobox.federated.hub import Hub
from cardiobox.federated.inprocess import InProcessTransport
from cardiobox.privacy.policy import SitePolicy

get_task("count")  # registers the built-in tasks

COVARIATES = ["age", "ejection_fraction", "serum_creatinine"]
EXAMPLES: dict[str, dict[str, Any]] = {
    "count": {"where": "age >= 60"},
    "describe": {
        "variables": ["age", "ejection_fraction"],
        "bounds": {"age": [40, 95], "ejection_fraction": [10, 80]},
        "n_bins": 11,
    },
    "crosstab": {"row": "sex", "column": "DEATH_EVENT"},
    "km": {"duration": "time", "event": "DEATH_EVENT", "group": "sex", "step": 30, "max_time": 270},
    "logreg": {"outcome": "DEATH_EVENT", "covariates": COVARIATES},
    "linreg": {"outcome": "serum_sodium", "covariates": COVARIATES},
    "cox": {"duration": "time", "event": "DEATH_EVENT", "covariates": COVARIATES},
    "gbt": {"outcome": "DEATH_EVENT", "covariates": COVARIATES, "n_trees": 3, "max_depth": 2},
    "mlp": {"outcome": "DEATH_EVENT", "covariates": COVARIATES, "rounds": 3, "hidden": [4]},
}
#: A column each example reads (besides ``where``).
READS = {"count": "age", "describe": "age", "crosstab": "sex", "km": "time",
         "logreg": "ejection_fraction", "linreg": "serum_sodium", "cox": "time", "gbt": "age",
         "mlp": "age"}  # fmt: skip
#: The built-in tasks (other test modules may register throw-away tasks while they run).
NAMES = sorted(TASKS)


def _policy(**kw: Any) -> SitePolicy:
    return SitePolicy(min_sites=2, **kw)


def _nodes(sites: dict[str, Path], policy: SitePolicy) -> list[SiteNode]:
    return [SiteNode(n, p, policy, seed=i) for i, (n, p) in enumerate(sites.items())]


def _params(name: str) -> dict[str, Any]:
    return dict(EXAMPLES[name])


def test_every_task_has_an_example() -> None:
    assert set(NAMES) <= set(EXAMPLES), "add an example request for the new task"


@pytest.mark.parametrize("name", NAMES)
def test_result_is_json_and_deterministic(name: str, hf_sites: dict[str, Path]) -> None:
    nodes = _nodes(hf_sites, _policy())
    first = run(name, nodes, _params(name))
    second = run(name, nodes, _params(name))
    assert first.result is not None and sorted(first.sites) == sorted(hf_sites)
    text = orjson.dumps(first.result)  # no numpy scalars, no NaN objects
    assert orjson.loads(text) == first.result
    assert orjson.dumps(second.result) == text
    for node in nodes:
        assert node.audit.verify() is None
        outcomes = [e.outcome for e in node.audit.entries()]
        assert outcomes.count("accepted") == 2 and "released" in outcomes


@pytest.mark.parametrize("name", NAMES)
def test_policy_denies_a_column_or_the_task(name: str, hf_sites: dict[str, Path]) -> None:
    with pytest.raises(RunError) as exc:
        run(name, _nodes(hf_sites, _policy(denied_variables=[READS[name]])), _params(name))
    assert all("variable-not-allowed" in why for why in exc.value.report.refused.values())
    others = [t for t in NAMES if t != name]
    with pytest.raises(RunError) as exc:
        run(name, _nodes(hf_sites, _policy(allowed_tasks=others)), _params(name))
    assert all("task-not-allowed" in why for why in exc.value.report.refused.values())


@pytest.mark.parametrize("name", NAMES)
def test_unknown_column_is_named(name: str, hf_sites: dict[str, Path]) -> None:
    params = {**_params(name), "where": "no_such_column > 1"}
    with pytest.raises(RunError, match="no_such_column"):
        run(name, _nodes(hf_sites, _policy()), params)


@pytest.mark.parametrize("name", NAMES)
def test_small_sites_refuse_or_are_suppressed(name: str, hf_sites: dict[str, Path]) -> None:
    # 'age > 85' leaves a handful of rows at each site: below 10.
    params = {**_params(name), "where": "age > 85"}
    try:
        report = run(name, _nodes(hf_sites, _policy()), params)
    except RunError as exc:
        assert all("small-cell" in why for why in exc.report.refused.values())
        return
    assert name == "count" and report.result is not None
    assert all(n is None for n in report.result["per_site"].values())


@pytest.mark.parametrize("name", NAMES)
def test_a_site_down_is_left_out(name: str, hf_sites: dict[str, Path]) -> None:
    transport = InProcessTransport(_nodes(hf_sites, _policy()))
    transport.down.add("west")
    try:
        report = Hub(transport).run(name, _params(name))
    finally:
        transport.close()
    assert report.sites == ["north", "south"] and "west" in report.failed


@pytest.mark.parametrize("name", NAMES)
def test_noise_is_charged_or_refused(name: str, hf_sites: dict[str, Path]) -> None:
    policy = _policy(budget={"rho": 10, "max_rho_per_release": 5})
    nodes = _nodes(hf_sites, policy)
    params = {**_params(name), "rho": 0.5}
    if name == "mlp":  # noise through DP-SGD, which costs steps / (2 sigma²) per round
        params.update(rho=2.5, dp_sgd={"clip": 1.0, "noise_multiplier": 1.0})
    if name == "gbt":  # noise needs public bounds: the bins are cut on them
        params["bounds"] = {"age": [40, 95], "ejection_fraction": [10, 80],
                            "serum_creatinine": [0, 10]}  # fmt: skip
    if name in ("crosstab", "km"):
        params["levels"] = {"sex": [0, 1], "DEATH_EVENT": [0, 1]}
        if name == "km":
            params["levels"] = [0, 1]
    try:
        report = run(name, nodes, params)
    except Exception as exc:  # refused at the hub (TaskError) or at every site (RunError)
        assert "dp-unsupported" in str(exc) or "budget" in str(exc), str(exc)
        assert all(n.audit.spent() == 0 for n in nodes)
        return
    assert report.result is not None
    for node in nodes:
        assert node.audit.spent() == pytest.approx(report.rho[node.name]) and node.audit.spent() > 0

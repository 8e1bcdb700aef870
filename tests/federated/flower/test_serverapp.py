"""The ServerApp's half: run config, the run over a grid, and the report it writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from flwr.app import Context, RecordDict

from cardiobox.federated.flower import serverapp
from cardiobox.federated.flower.serverapp import RunConfigError, parse_run_config, run_task


def _config(report_path: Path, **kw: Any) -> dict[str, Any]:
    return {
        "task": "count",
        "params": orjson.dumps({"where": "age > 60"}).decode(),
        "report": str(report_path),
        "min-sites": 0,
        "timeout": 5.0,
        **kw,
    }


def test_parse_run_config(tmp_path: Path) -> None:
    task, params, report, min_sites, timeout = parse_run_config(_config(tmp_path / "r.json"))
    assert (task, params, report, min_sites, timeout) == (
        "count", {"where": "age > 60"}, tmp_path / "r.json", None, 5.0,
    )  # fmt: skip
    assert parse_run_config(_config(tmp_path / "r.json", **{"min-sites": 2}))[3] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": 3}, "'task' is missing or of the wrong type"),
        ({"params": "{not json"}, "'params' is not JSON"),
        ({"params": "[1, 2]"}, "'params' must be a JSON object"),
        ({"report": ""}, "'report' must name the report file"),
        ({"min-sites": True}, "'min-sites' is missing"),
        ({"timeout": 0.0}, "'timeout' must be > 0"),
    ],
)
def test_bad_run_config_is_named(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(RunConfigError, match=message):
        parse_run_config(_config(tmp_path / "r.json", **change))


def _three_sites(grid: Any, client_node: Callable[..., Any], sites: dict[str, Path]) -> None:
    for i, (site, csv) in enumerate(sites.items()):
        grid.add(i + 1, site, client_node(site, csv))


def test_run_task_reports_the_result(
    grid: Any, client_node: Callable[..., Any], hf_sites: dict[str, Path], tmp_path: Path
) -> None:
    _three_sites(grid, client_node, hf_sites)
    outcome = run_task(grid, _config(tmp_path / "r.json"))
    assert outcome["status"] == "ok" and outcome["error"] is None
    assert outcome["report"]["sites"] == sorted(hf_sites)
    assert sum(outcome["report"]["result"]["per_site"].values()) == 137  # 137 of 299 are > 60
    assert outcome["excluded"] == {}


def test_run_task_stops_cleanly_with_too_few_sites(
    grid: Any, client_node: Callable[..., Any], hf_sites: dict[str, Path], tmp_path: Path
) -> None:
    _three_sites(grid, client_node, hf_sites)
    outcome = run_task(grid, _config(tmp_path / "r.json", **{"min-sites": 4}))
    assert outcome["status"] == "error"
    assert outcome["error"]["rule"] == "too-few-sites"
    assert outcome["report"]["result"] is None


def test_bad_task_params_are_reported_without_a_run(
    grid: Any, client_node: Callable[..., Any], hf_sites: dict[str, Path], tmp_path: Path
) -> None:
    _three_sites(grid, client_node, hf_sites)
    outcome = run_task(grid, _config(tmp_path / "r.json", params='{"bogus": 1}'))
    assert outcome["status"] == "error" and outcome["report"] is None
    assert outcome["error"]["rule"] == "bad-params" and "bogus" in outcome["error"]["message"]
    assert grid.pushed == []  # refused at the hub: nothing sent to the sites


def test_main_writes_the_report_atomically(
    grid: Any, client_node: Callable[..., Any], hf_sites: dict[str, Path], tmp_path: Path
) -> None:
    _three_sites(grid, client_node, hf_sites)
    report = tmp_path / "out" / "report.json"
    context = Context(1, 0, {}, RecordDict(), _config(report))
    serverapp.main(grid, context)
    written = orjson.loads(report.read_bytes())
    assert written["cardiobox_report"] == 1 and written["status"] == "ok"
    assert [p.name for p in report.parent.iterdir()] == ["report.json"]  # no temporary left
    # A broken run config still leaves a report saying why.
    serverapp.main(grid, Context(1, 0, {}, RecordDict(), _config(report, timeout=-1.0)))
    assert orjson.loads(report.read_bytes())["error"]["rule"] == "bad-run-config"

"""Submitting runs: the run config file, and reading the report back."""

from __future__ import annotations

import tomllib
from pathlib import Path

import orjson
import pytest

from cardiobox.federated.flower import submit
from cardiobox.federated.flower.submit import (
    FlowerRunError,
    Submitted,
    report_from_dict,
    wait_report,
)
from cardiobox.federated.hub import RunError, RunReport
from cardiobox.federated.task import TaskError


@pytest.mark.parametrize(
    "value",
    [
        '{"where": "name = \'O\\"Brien\' AND x > 1"}',
        "tab\there\nnewline \\ é ∑ 🫀 \x7f \x00",
        "",
        3,
        2.5,
    ],
)
def test_toml_values_round_trip(value: str | int | float) -> None:
    assert tomllib.loads(f"k = {submit._toml_value(value)}")["k"] == value


def test_report_round_trips_through_its_dict() -> None:
    report = RunReport("r1", "count", {"where": "age > 60"}, {"total": 3}, ["a", "b"],
                       {"c": "small"}, {"d": "down"}, 1, [0.5], 2.0, {"a": 0.0})  # fmt: skip
    back = report_from_dict(orjson.loads(orjson.dumps(report.to_dict())))
    assert back.to_dict() == report.to_dict()


def _written(tmp_path: Path, outcome: dict[str, object]) -> Submitted:
    path = tmp_path / "report.json"
    path.write_bytes(orjson.dumps({"cardiobox_report": 1, **outcome}))
    return Submitted(1, path, tmp_path)


def test_wait_report_returns_or_raises_like_the_in_process_runtime(tmp_path: Path) -> None:
    report = RunReport("r1", "count", {}, {"total": 3}, ["a"]).to_dict()
    ok = wait_report(_written(tmp_path, {"status": "ok", "error": None, "report": report}))
    assert ok.result == {"total": 3}
    stopped = {"message": "1 site(s) left", "rule": "too-few-sites"}
    with pytest.raises(RunError, match="1 site") as err:
        wait_report(_written(tmp_path, {"status": "error", "error": stopped, "report": report}))
    assert err.value.report.run_id == "r1"
    bad = {"message": "count: parameter bogus: extra", "rule": "bad-params"}
    with pytest.raises(TaskError, match="bogus"):
        wait_report(_written(tmp_path, {"status": "error", "error": bad, "report": None}))
    other = {"message": "run config 'timeout' must be > 0", "rule": "bad-run-config"}
    with pytest.raises(FlowerRunError, match="timeout"):
        wait_report(_written(tmp_path, {"status": "error", "error": other, "report": None}))


def test_bad_params_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="bogus"):
        submit.submit("count", {"bogus": 1}, "127.0.0.1:1", tmp_path / "ca.crt", workdir=tmp_path)
    assert list(tmp_path.iterdir()) == []

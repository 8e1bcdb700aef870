"""The node, the hub and the in-process runtime, with the ``count`` task."""

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from cardiobox.federated import TASKS, RunError, SiteNode, TaskError, inprocess, run, wire
from cardiobox.federated.hub import Hub
from cardiobox.federated.inprocess import InProcessTransport
from cardiobox.federated.task import SiteContext, SiteOutput, register
from cardiobox.federated.tasks.count import CountParams, CountTask
from cardiobox.privacy.audit import AuditLog
from cardiobox.privacy.policy import SitePolicy

HF_CSV = (
    Path(__file__).resolve().parents[2]
    / "data/heart_failure_clinical_records/heart_failure_clinical_records_dataset.csv"
)


def _pooled(where: str) -> int:
    con = duckdb.connect()
    n = con.execute(f"SELECT count(*) FROM read_csv('{HF_CSV}') WHERE {where}").fetchone()
    con.close()
    assert n is not None
    return int(n[0])


def test_count_equals_pooled_and_is_logged(hf_sites: dict[str, Path]) -> None:
    report = run("count", hf_sites, {"where": "age >= 60 AND sex = 1"})
    assert report.result is not None
    per_site = report.result["per_site"]
    assert set(per_site) == set(hf_sites) and all(isinstance(n, int) for n in per_site.values())
    assert report.result["total"] == _pooled("age >= 60 AND sex = 1")
    for path in hf_sites.values():
        log = AuditLog(path.with_name(path.name + ".cardiobox-audit.duckdb"))
        assert [e.outcome for e in log.entries()] == ["accepted", "released"]
        assert log.verify() is None


def test_small_counts_are_suppressed_and_not_in_total(hf_sites: dict[str, Path]) -> None:
    report = run("count", hf_sites, {"where": "age > 85"})
    assert report.result is not None
    assert all(n is None for n in report.result["per_site"].values())
    assert report.result["total"] == 0
    assert report.result["sites_suppressed"] == sorted(hf_sites)


def test_noisy_count_spends_budget(hf_sites: dict[str, Path]) -> None:
    policy = SitePolicy(budget={"rho": 0.3, "max_rho_per_release": 0.2})
    nodes = [SiteNode(n, p, policy, seed=i) for i, (n, p) in enumerate(hf_sites.items())]
    report = run("count", nodes, {"where": "age > 50", "rho": 0.2})
    assert report.result is not None and report.result["noisy"]
    assert report.rho == dict.fromkeys(hf_sites, 0.2)
    assert abs(report.result["total"] - _pooled("age > 50")) < 30
    # The budget left (0.1) does not cover another release of 0.2: every site refuses.
    with pytest.raises(RunError) as exc:
        run("count", nodes, {"where": "age > 50", "rho": 0.2})
    assert set(exc.value.report.refused) == set(hf_sites)
    assert all("budget" in why for why in exc.value.report.refused.values())


def test_policy_refusals_are_logged_at_the_site(hf_sites: dict[str, Path]) -> None:
    policy = SitePolicy(denied_variables=["smoking"], allowed_tasks=["count"])
    with pytest.raises(RunError) as exc:
        run("count", hf_sites, {"where": "smoking = 1"}, policy)
    assert all("smoking" in why for why in exc.value.report.refused.values())
    path = hf_sites["north"]
    log = AuditLog(path.with_name(path.name + ".cardiobox-audit.duckdb"))
    assert log.entries()[-1].outcome == "refused"
    assert log.entries()[-1].rule == "variable-not-allowed"


def test_bad_where_and_unknown_task(hf_sites: dict[str, Path]) -> None:
    with pytest.raises(RunError, match="semicolon"):
        run("count", hf_sites, {"where": "age > 3; DROP TABLE x"})
    with pytest.raises(RunError, match="no column 'agee'"):
        run("count", hf_sites, {"where": "agee > 3"})
    with pytest.raises(TaskError, match="unknown task"):
        run("teleport", hf_sites, {})
    with pytest.raises(TaskError, match="parameter bogus"):
        run("count", hf_sites, {"bogus": 1})


def test_a_site_down_is_reported_and_the_run_goes_on(hf_sites: dict[str, Path]) -> None:
    nodes = [SiteNode(n, p) for n, p in hf_sites.items()]
    transport = InProcessTransport(nodes)
    transport.down.add("south")
    report = Hub(transport).run("count", {"where": "age > 40"})
    transport.close()
    assert report.sites == ["north", "west"]
    assert "SiteDownError" in report.failed["south"]


def test_missing_table_is_a_site_error(tmp_path: Path, hf_sites: dict[str, Path]) -> None:
    sites = {**hf_sites, "ghost": tmp_path / "ghost.csv"}
    report = run("count", sites, {})
    assert "no such file" in report.failed["ghost"]
    assert report.result is not None and report.result["total"] == 299


def test_oversized_and_malformed_requests_are_refused(hf_sites: dict[str, Path]) -> None:
    node = SiteNode("north", hf_sites["north"], SitePolicy(max_message_bytes=2048))
    reply = wire.decode_reply(node.handle(b"{" + b" " * 5000 + b"}"), 10_000)
    assert reply.status == "error" and reply.rule == "oversized"
    reply = wire.decode_reply(node.handle(b"\x80garbage"), 10_000)
    assert reply.status == "error" and reply.rule == "bad-message"
    req = wire.Request("r", "count", 3, {}, {}, ["north"], {"north": "x"})
    reply = wire.decode_reply(node.handle(wire.encode_request(req)), 10_000)
    assert reply.status == "error" and "set-up" in (reply.reason or "")
    assert node.audit.verify() is None and len(node.audit.entries()) == 3


_RELEASE = threading.Event()


class _SleepyParams(CountParams):
    pass


class _SleepyCount(CountTask):
    """A count that takes long at one site (to test the timeout)."""

    name = "sleepy_count"
    params_model = _SleepyParams

    def site(
        self, table: Any, params: Any, payload: dict[str, Any], ctx: SiteContext
    ) -> SiteOutput:
        if ctx.site == "west":
            _RELEASE.wait(timeout=60)  # hangs until the test is over
        return super().site(table, params, payload, ctx)


@pytest.fixture
def throwaway_tasks() -> Iterator[None]:
    """Tasks registered by a test are removed after it (the registry is process-wide)."""
    before = set(TASKS)
    yield
    for name in set(TASKS) - before:
        del TASKS[name]


@pytest.mark.usefixtures("throwaway_tasks")
def test_a_site_that_times_out_is_dropped(hf_sites: dict[str, Path]) -> None:
    register(_SleepyCount())
    policy = SitePolicy(allowed_tasks=["count"])
    policy.allowed_tasks.append("sleepy_count")  # tests only: the validator knows real tasks
    nodes = [SiteNode(n, p, policy) for n, p in hf_sites.items()]
    transport = InProcessTransport(nodes)
    try:
        report = Hub(transport, timeout=3).run("sleepy_count", {})
    finally:
        _RELEASE.set()
        transport.close()
    assert "did not answer" in report.failed["west"]
    assert report.sites == ["north", "south"]


def test_another_lane_starts_only_behind_slow_work() -> None:
    stall = inprocess.STALL_AFTER
    work = inprocess._RoundWork({"a": b"", "b": b"", "c": b"", "d": b""}, started=100.0)
    work.lanes, work.busy = 1, {1: 100.0}
    work.waiting.popleft()  # lane 1 took site a at 100.0
    assert not work.stalled(100.0 + 0.5 * stall)  # busy, but not for long
    assert work.stalled(100.0 + 1.01 * stall)  # on one site for STALL_AFTER
    work.replies["a"] = b"ok"
    work.waiting.popleft()
    work.busy[1] = 100.0 + 0.1 * stall  # site a took a tenth of STALL_AFTER; b just began
    assert not work.stalled(100.0 + 0.2 * stall)  # quick sites: one lane is enough
    assert work.stalled(100.0 + 0.3 * stall)  # a site costs over a quarter of it on average
    work.replies.clear()  # nothing answered yet: only stuck lanes count
    work.lanes, work.busy = 2, {1: 100.0, 2: 100.0 + 0.9 * stall}
    assert not work.stalled(100.0 + 1.01 * stall)  # lane 2 began its site a moment ago
    assert work.stalled(100.0 + 2.0 * stall)  # both lanes stuck on their sites
    work.waiting.clear()
    assert not work.stalled(1000.0)  # nothing waits: no lane to add


def test_light_rounds_stay_in_one_thread_and_a_slow_site_gets_others_going(
    hf_sites: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One lane answers quick sites in turn; a site busy past STALL_AFTER gets another lane."""
    nodes = [SiteNode(n, p) for n, p in hf_sites.items()]
    threads: dict[str, int] = {}
    slow: set[str] = set()
    answered: set[str] = set()
    others_done = threading.Event()
    for node in nodes:
        handle = node.handle

        def watched(data: bytes, handle: Any = handle, name: str = node.name, **kw: Any) -> bytes:
            threads[name] = threading.get_ident()
            if name in slow:  # holds its lane until the others have answered (elsewhere)
                others_done.wait(timeout=20)
            reply = bytes(handle(data, **kw))
            answered.add(name)
            if slow and answered >= set(hf_sites) - slow:
                others_done.set()
            return reply

        monkeypatch.setattr(node, "handle", watched)
    transport = InProcessTransport(nodes)
    request = wire.encode_request(wire.Request("r", "count", 0, {}, {}, [], {}))
    monkeypatch.setattr(inprocess, "STALL_AFTER", 0.5)  # generous, for a loaded test machine
    try:
        transport.exchange(dict.fromkeys(hf_sites, request), timeout=10)  # reads the tables
        threads.clear()
        quick = transport.exchange(dict.fromkeys(hf_sites, request), timeout=10)
        assert all(isinstance(r, bytes) for r in quick.values())
        assert len(set(threads.values())) == 1
        threads.clear()
        answered.clear()
        first = next(iter(hf_sites))  # the first in line holds up its lane
        slow.add(first)
        held = transport.exchange(dict.fromkeys(hf_sites, request), timeout=30)
        assert all(isinstance(r, bytes) for r in held.values())
        assert all(threads[o] != threads[first] for o in set(hf_sites) - slow)
    finally:
        transport.close()


@pytest.mark.usefixtures("throwaway_tasks")
def test_secure_sum_rounds_drop_a_failing_site_and_resend(hf_sites: dict[str, Path]) -> None:
    """A summing task: when one site fails mid-run, the round is asked again of the others."""
    from cardiobox.federated.task import Next, Result, RoundResult, Task, TaskParams

    class SumParams(TaskParams):
        column: str

    class SumTask(Task[SumParams]):
        name = "test_sum"
        params_model = SumParams
        max_rounds = 3

        def variables(self, params: SumParams) -> set[str]:
            return {params.column}

        def site(self, table: Any, params: SumParams, payload: dict[str, Any],
                 ctx: SiteContext) -> SiteOutput:  # fmt: skip
            if payload.get("fail") == ctx.site:
                raise RuntimeError("disk on fire")
            x = table.numeric([params.column])[:, 0]
            return SiteOutput(values={"n": len(x)}, secure={"s": np.array([x.sum(), len(x)])})

        def hub(
            self, params: SumParams, result: RoundResult, state: dict[str, Any]
        ) -> Next | Result:
            state.setdefault("sums", []).append(result.sums["s"].tolist())
            if result.round == 1:
                return Next({"fail": "west"})
            return Result({"sums": state["sums"], "sites": result.sites})

    register(SumTask())
    policy = SitePolicy(min_sites=2)
    policy.allowed_tasks.append("test_sum")
    nodes = [SiteNode(n, p, policy) for n, p in hf_sites.items()]
    report = run("test_sum", nodes, {"column": "age"})
    assert report.result is not None
    first, second = report.result["sums"]
    con = duckdb.connect()
    total = con.execute(f"SELECT sum(age), count(*) FROM read_csv('{HF_CSV}')").fetchone()
    west = con.execute(f"SELECT sum(age) FROM read_csv('{hf_sites['west']}')").fetchone()
    con.close()
    assert total is not None and west is not None
    assert first == pytest.approx([total[0], total[1]], abs=1e-9)
    assert second[0] == pytest.approx(total[0] - west[0], abs=1e-9)
    assert report.result["sites"] == ["north", "south"]
    assert "internal error" in report.failed["west"]
    # The site keeps the details of its own error in its audit log.
    assert any("disk on fire" in (e.reason or "") for e in nodes[2].audit.entries())
    # With min_sites=3 at the sites, losing one stops the run cleanly.
    strict = SitePolicy(min_sites=3)
    strict.allowed_tasks.append("test_sum")
    nodes = [SiteNode(n, p, strict) for n, p in hf_sites.items()]
    with pytest.raises(RunError):
        run("test_sum", nodes, {"column": "age"})


def test_nodes_serve_several_runs_in_a_row(hf_sites: dict[str, Path]) -> None:
    nodes = [SiteNode(n, p) for n, p in hf_sites.items()]
    first = run("count", nodes, {"where": "age > 60"})
    second = run("count", nodes, {"where": "age > 60"})
    assert first.result is not None and second.result is not None
    assert first.result["per_site"] == second.result["per_site"]
    assert first.run_id != second.run_id
    assert all(n.audit.verify() is None and len(n.audit.entries()) == 4 for n in nodes)

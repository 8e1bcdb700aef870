"""The site node: what it checks on every request, and when its reply may leave."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from cardiobox.federated import SiteNode, wire
from cardiobox.federated.hub import Hub
from cardiobox.federated.inprocess import InProcessTransport
from cardiobox.privacy import audit, secagg
from cardiobox.privacy.policy import SitePolicy

PARAMS: dict[str, Any] = {"outcome": "DEATH_EVENT", "covariates": ["age", "ejection_fraction"]}


class _DurableDigests:
    """The digests of the audit entries on disk, per site, watched at every sync."""

    def __init__(
        self, nodes: list[SiteNode], monkeypatch: pytest.MonkeyPatch, syncfs_applies: bool
    ):
        self.journals = {n.name: n.audit.journal for n in nodes}
        self.durable: dict[str, set[str]] = {n.name: set() for n in nodes}
        real_sync, real_syncfs = audit._sync, audit._syncfs

        def sync(fd: int) -> None:
            real_sync(fd)
            inode = os.fstat(fd).st_ino
            for name, path in self.journals.items():
                if path.exists() and path.stat().st_ino == inode:
                    self._read(name)

        def syncfs(fd: int) -> None:
            real_syncfs(fd)
            device = os.fstat(fd).st_dev
            for name, path in self.journals.items():  # every journal on that file system
                if path.exists() and path.stat().st_dev == device:
                    self._read(name)

        monkeypatch.setattr(audit, "_sync", sync)
        monkeypatch.setattr(audit, "_syncfs", syncfs)
        if not syncfs_applies:
            monkeypatch.setattr(audit, "_syncfs_applies", lambda fd: False)

    def _read(self, name: str) -> None:
        path = self.journals[name]
        if path.exists():
            lines = path.read_bytes().splitlines()
            self.durable[name] |= {orjson.loads(line)["digest"] for line in lines}

    def synced(self, reply: bytes) -> tuple[str, bool]:
        site = wire.decode_reply(reply, 10**8).site
        return site, hashlib.sha256(reply).hexdigest() in self.durable[site]


def test_a_reply_leaves_the_node_after_its_audit_entry_is_synced(
    hf_sites: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``handle`` (durable by default) returns only once the reply's entry is on disk."""
    nodes = [SiteNode(n, p, SitePolicy(min_sites=2)) for n, p in hf_sites.items()]
    watch = _DurableDigests(nodes, monkeypatch, syncfs_applies=False)

    class OneByOne:
        def sites(self) -> list[str]:
            return sorted(n.name for n in nodes)

        def exchange(self, requests: dict[str, bytes], timeout: float) -> dict[str, Any]:
            return {n.name: n.handle(requests[n.name]) for n in nodes if n.name in requests}

    sent: list[tuple[str, bool]] = []
    original = OneByOne.exchange

    def exchange(self: OneByOne, requests: dict[str, bytes], timeout: float) -> dict[str, Any]:
        out = original(self, requests, timeout)
        sent.extend(watch.synced(r) for r in out.values())
        return out

    monkeypatch.setattr(OneByOne, "exchange", exchange)
    report = Hub(OneByOne(), min_sites=2).run("logreg", PARAMS)
    assert report.result is not None and len(sent) == 3 * (report.rounds + 1)
    assert all(synced for _, synced in sent), "a reply left before its entry was synced"
    assert all(n.audit.verify() is None for n in nodes)


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "one-sync-per-log"])
def test_the_in_process_runtime_hands_over_replies_only_once_synced(
    hf_sites: dict[str, Path], monkeypatch: pytest.MonkeyPatch, syncfs: bool
) -> None:
    """The sites write unsynced; the transport syncs the round's entries before handing over."""
    nodes = [SiteNode(n, p, SitePolicy(min_sites=2)) for n, p in hf_sites.items()]
    fd = os.open(nodes[0].audit.path.parent, os.O_RDONLY)
    try:
        if syncfs and not audit._syncfs_applies(fd):
            pytest.skip("syncfs does not apply here (old kernel or a file system not known local)")
    finally:
        os.close(fd)
    watch = _DurableDigests(nodes, monkeypatch, syncfs_applies=syncfs)
    transport = InProcessTransport(nodes)
    sent: list[tuple[str, bool]] = []
    real_exchange = transport.exchange

    def exchange(requests: dict[str, bytes], timeout: float) -> dict[str, bytes | Exception]:
        out = real_exchange(requests, timeout)
        sent.extend(watch.synced(r) for r in out.values() if isinstance(r, bytes))
        return out

    monkeypatch.setattr(transport, "exchange", exchange)
    try:
        report = Hub(transport, min_sites=2).run("logreg", PARAMS)
    finally:
        transport.close()
    assert report.result is not None and len(sent) == 3 * (report.rounds + 1)
    assert all(synced for _, synced in sent), "a reply was handed over before its entry was synced"
    assert all(n.audit.verify() is None for n in nodes)


def test_a_reply_whose_entry_cannot_be_synced_is_never_handed_over(
    hf_sites: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes = [SiteNode(n, p, SitePolicy(min_sites=2)) for n, p in hf_sites.items()]
    transport = InProcessTransport(nodes)
    try:
        transport.exchange({n.name: _request("r", 0, PARAMS, {}) for n in nodes}, 10)  # journals

        def broken(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(audit, "_sync", broken)
        monkeypatch.setattr(audit, "_syncfs", broken)
        replies = transport.exchange({n.name: _request("s", 0, PARAMS, {}) for n in nodes}, 10)
    finally:
        transport.close()
    assert all(isinstance(r, OSError) for r in replies.values())
    assert "could not make its audit log durable" in str(replies["north"])
    monkeypatch.undo()
    with pytest.raises(OSError, match="earlier sync"):  # the logs refuse until reopened
        nodes[0].audit.record("t", "count", 0, {}, "accepted")


def _request(run_id: str, round_no: int, params: dict[str, Any], keys: dict[str, str]) -> bytes:
    return wire.encode_request(
        wire.Request(run_id, "logreg", round_no, params, {"beta": [0.0] * 3}, sorted(keys), keys)
    )


def test_parameters_changed_within_a_run_are_checked_again(hf_sites: dict[str, Path]) -> None:
    node = SiteNode("north", hf_sites["north"], SitePolicy(denied_variables=["smoking"]))
    setup = wire.decode_reply(node.handle(_request("r", 0, PARAMS, {})), 10**6)
    assert setup.status == "ok" and setup.key
    keys = {"north": setup.key, "east": secagg.MaskingKey().public_text(),
            "west": secagg.MaskingKey().public_text()}  # fmt: skip
    first = wire.decode_reply(node.handle(_request("r", 1, PARAMS, keys)), 10**6)
    assert first.status == "ok"
    changed = {**PARAMS, "covariates": ["age", "smoking"]}
    refused = wire.decode_reply(node.handle(_request("r", 2, changed, keys)), 10**6)
    assert (refused.status, refused.rule) == ("refused", "variable-not-allowed")
    again = wire.decode_reply(node.handle(_request("r", 2, PARAMS, keys)), 10**6)
    assert again.status == "ok"
    outcomes = [e.outcome for e in node.audit.entries()]
    assert outcomes == ["accepted", "released", "refused", "released"]


def test_a_round_with_other_sites_or_keys_is_checked_again(hf_sites: dict[str, Path]) -> None:
    """The checks of a round's sites and keys are kept for the run only while they stay the same."""
    node = SiteNode("north", hf_sites["north"], SitePolicy(min_sites=3))
    setup = wire.decode_reply(node.handle(_request("r", 0, PARAMS, {})), 10**6)
    assert setup.status == "ok" and setup.key
    keys = {"north": setup.key, "east": secagg.MaskingKey().public_text(),
            "west": secagg.MaskingKey().public_text()}  # fmt: skip

    def ask(round_no: int, keys: dict[str, str], sites: list[str] | None = None) -> wire.Reply:
        req = wire.Request(
            "r", "logreg", round_no, PARAMS, {"beta": [0.0] * 3}, sites or sorted(keys), keys
        )
        return wire.decode_reply(node.handle(wire.encode_request(req)), 10**6)

    first, second = ask(1, keys), ask(2, keys)
    assert first.status == second.status == "ok"
    assert first.masked != second.masked  # the same sites: fresh masks every round
    # Another site list after rounds that passed: checked again, and refused.
    two = {s: keys[s] for s in ("north", "east")}
    too_few = ask(3, two)
    assert (too_few.status, too_few.rule) == ("refused", "too-few-sites")
    missing_key = ask(3, two, sites=sorted(keys))
    assert (missing_key.status, missing_key.rule) == ("error", "protocol")
    other_key = ask(3, {**keys, "west": secagg.MaskingKey().public_text()})
    assert other_key.status == "ok" and other_key.masked != ask(3, keys).masked

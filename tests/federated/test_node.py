"""The site node: what it checks on every request, and when its reply may leave."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from cardiobox.federated import SiteNode, run, wire
from cardiobox.privacy import audit, secagg
from cardiobox.privacy.policy import SitePolicy

PARAMS: dict[str, Any] = {"outcome": "DEATH_EVENT", "covariates": ["age", "ejection_fraction"]}


def test_every_reply_leaves_after_its_audit_entry_is_synced(
    hf_sites: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes = [SiteNode(n, p, SitePolicy(min_sites=2)) for n, p in hf_sites.items()]
    journals = {n.name: n.audit.journal for n in nodes}
    on_disk: dict[str, list[bytes]] = {n.name: [] for n in nodes}  # journal bytes at each sync
    real_sync = audit._sync

    def sync(fd: int) -> None:
        real_sync(fd)
        inode = os.fstat(fd).st_ino
        for name, path in journals.items():
            if path.exists() and path.stat().st_ino == inode:
                on_disk[name].append(path.read_bytes())

    monkeypatch.setattr(audit, "_sync", sync)
    sent: list[tuple[str, bool]] = []  # each reply as it leaves: was its entry synced then?
    for node in nodes:
        handle = node.handle

        def leave(data: bytes, handle: Callable[[bytes], bytes] = handle) -> bytes:
            reply = handle(data)
            site = wire.decode_reply(reply, 10**8).site
            last_sync = on_disk[site][-1] if on_disk[site] else b""
            synced = {orjson.loads(line)["digest"] for line in last_sync.splitlines()}
            sent.append((site, hashlib.sha256(reply).hexdigest() in synced))
            return reply

        monkeypatch.setattr(node, "handle", leave)
    report = run("logreg", nodes, PARAMS)
    assert report.result is not None and len(sent) == 3 * (report.rounds + 1)
    assert all(synced for _, synced in sent), "a reply left before its entry was synced"
    assert all(n.audit.verify() is None for n in nodes)


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

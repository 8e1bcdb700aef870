"""FlowerTransport: JSON bytes in a ConfigRecord (never pickle), site names, failures."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, RecordDict
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto

from cardiobox.errors import CardioboxError
from cardiobox.federated import run
from cardiobox.federated.flower.transport import (
    FIELD,
    HELLO_TYPE,
    RECORD,
    REQUEST_TYPE,
    FlowerTransport,
    NodeError,
    pack,
    unpack,
)
from cardiobox.federated.hub import Hub
from cardiobox.federated.wire import Request, WireError, encode_request
from cardiobox.privacy.policy import SitePolicy


def test_pack_is_json_bytes_in_one_config_record_and_round_trips() -> None:
    data = encode_request(Request("run", "count", 0, {"where": "age > 60"}))
    content = pack(data)
    assert list(content.keys()) == [RECORD]
    record = content[RECORD]
    assert isinstance(record, ConfigRecord)
    assert list(record.keys()) == [FIELD]
    assert type(record[FIELD]) is bytes and record[FIELD] == data
    assert orjson.loads(record[FIELD])["cardiobox"] == 1  # JSON, not a pickle
    assert not data.startswith(b"\x80")  # no pickle protocol header
    # Through Flower's own protobuf serialisation and back.
    back = recorddict_from_proto(recorddict_to_proto(content))
    assert unpack(back) == data


def test_pack_refuses_anything_but_bytes() -> None:
    with pytest.raises(TypeError, match="must be bytes"):
        pack({"where": "age > 60"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be bytes"):
        pack(bytearray(b"{}"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "content",
    [
        RecordDict(),
        RecordDict({"other": ConfigRecord({FIELD: b"{}"})}),
        RecordDict({RECORD: ConfigRecord({FIELD: "a string"})}),
        RecordDict({RECORD: ArrayRecord()}),
        RecordDict({RECORD: ConfigRecord({FIELD: pickle.dumps({"a": 1}).decode("latin-1")})}),
    ],
)
def test_unpack_refuses_other_content(content: RecordDict) -> None:
    with pytest.raises(WireError, match=f"{RECORD}.{FIELD}"):
        unpack(content)


def test_hub_over_flower_transport_matches_in_process(
    grid: Any, client_node: Callable[..., Any], hf_sites: dict[str, Path], tmp_path: Path
) -> None:
    for i, (site, csv) in enumerate(hf_sites.items()):
        grid.add(100 + i, site, client_node(site, csv))
    report = Hub(FlowerTransport(grid, poll=0.01), timeout=5).run("count", {"where": "age > 60"})
    copies = {}
    for site, csv in hf_sites.items():
        copies[site] = tmp_path / "ref" / csv.name
        copies[site].parent.mkdir(exist_ok=True)
        copies[site].write_bytes(csv.read_bytes())
    expected = run("count", copies, {"where": "age > 60"}, policy=SitePolicy(min_sites=2))
    assert report.result == expected.result
    assert report.sites == sorted(hf_sites)
    kinds = {m.metadata.message_type for m in grid.pushed}
    assert kinds == {REQUEST_TYPE}  # registered names: no hello round


def test_unregistered_nodes_are_asked_their_names(
    grid: Any, client_node: Callable[..., Any], hf_sites: dict[str, Path]
) -> None:
    for i, (site, csv) in enumerate(hf_sites.items()):
        grid.add(i + 1, "", client_node(site, csv))
    transport = FlowerTransport(grid, poll=0.01)
    assert transport.sites() == sorted(hf_sites)
    assert [m.metadata.message_type for m in grid.pushed] == [HELLO_TYPE] * 3
    assert transport.excluded == {}


def test_two_nodes_with_one_name_are_both_left_out(
    grid: Any, client_node: Callable[..., Any], hf_sites: dict[str, Path]
) -> None:
    north = hf_sites["north"]
    grid.add(1, "", client_node("north", north))
    grid.add(2, "", client_node("north", north))
    grid.add(3, "south", client_node("south", hf_sites["south"]))
    transport = FlowerTransport(grid, poll=0.01)
    assert transport.sites() == ["south"]
    assert set(transport.excluded) == {1, 2}
    assert "2 SuperNodes are site 'north'" in transport.excluded[1]


def test_silent_node_times_out_and_error_reply_is_a_failure(
    grid: Any, client_node: Callable[..., Any], hf_sites: dict[str, Path]
) -> None:
    grid.add(1, "north", client_node("north", hf_sites["north"]))
    grid.add(2, "south", lambda _m: None)
    grid.add(3, "west", lambda m: Message(Error(code=5, reason="node unavailable"), reply_to=m))
    transport = FlowerTransport(grid, poll=0.01)
    data = encode_request(Request("r", "count", 0, {}))
    out = transport.exchange(dict.fromkeys(transport.sites(), data), timeout=0.2)
    assert isinstance(out["north"], bytes)
    assert isinstance(out["south"], TimeoutError) and "0.2 s" in str(out["south"])
    assert isinstance(out["west"], NodeError) and "node unavailable" in str(out["west"])


def test_a_node_answering_for_another_site_is_refused(
    grid: Any, client_node: Callable[..., Any], hf_sites: dict[str, Path]
) -> None:
    grid.add(1, "north", client_node("south", hf_sites["south"]))  # key registered as north
    transport = FlowerTransport(grid, poll=0.01)
    data = encode_request(Request("r", "count", 0, {}))
    got = transport.exchange({"north": data}, timeout=1)["north"]
    assert isinstance(got, CardioboxError) and got.rule == "site-mismatch"


def test_a_run_with_a_silent_site_goes_on_with_the_others(
    grid: Any, client_node: Callable[..., Any], hf_sites: dict[str, Path]
) -> None:
    grid.add(1, "north", client_node("north", hf_sites["north"]))
    grid.add(2, "south", client_node("south", hf_sites["south"]))
    grid.add(3, "west", lambda _m: None)
    report = Hub(FlowerTransport(grid, poll=0.01), timeout=0.3, min_sites=2).run("count", {})
    assert report.sites == ["north", "south"]
    assert report.failed["west"].startswith("round 0: TimeoutError")

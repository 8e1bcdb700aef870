import numpy as np
import orjson
import pytest

from cardiobox.federated import wire


def test_request_and_reply_round_trip() -> None:
    req = wire.Request("r", "count", 2, {"where": "a > 1"}, {"beta": [0.5, 1.0]}, ["a", "b"],
                       {"a": "k1", "b": "k2"})  # fmt: skip
    assert wire.decode_request(wire.encode_request(req), 10_000) == req
    rep = wire.Reply(
        "r", 2, "a", "ok", values={"n": 12}, manifest=[("g", 3)], masked="AAAA", rho=0.1
    )
    assert wire.decode_reply(wire.encode_reply(rep), 10_000) == rep


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "not a cardiobox protocol"),
        (orjson.dumps({"cardiobox": 2}), "not a cardiobox protocol"),
        (orjson.dumps({"cardiobox": 1, "run_id": "r"}), "field 'keys'"),
        (b"x" * 2000, "exceeds the limit"),
    ],
)
def test_bad_requests(data: bytes, message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode_request(data, 1024)


def test_bad_replies() -> None:
    good = orjson.loads(wire.encode_reply(wire.Reply("r", 1, "a", "ok")))
    for key, value, message in [
        ("status", "maybe", "unknown status"),
        ("manifest", [["g", -1]], "manifest"),
        ("masked", 5, "masked"),
        ("rho", "lots", "rho"),
        ("round", True, "round"),
    ]:
        bad = {**good, key: value}
        with pytest.raises(wire.WireError, match=message):
            wire.decode_reply(orjson.dumps(bad), 10_000)


def test_flatten_unflatten() -> None:
    arrays = {"h": np.eye(2), "g": np.array([1.0, 2.0])}
    manifest, vec = wire.flatten(arrays)
    assert manifest == [("g", 2), ("h", 4)]
    back = wire.unflatten(manifest, vec)
    assert np.array_equal(back["h"].reshape(2, 2), np.eye(2))
    with pytest.raises(wire.WireError):
        wire.unflatten(manifest, vec[:-1])


@pytest.mark.parametrize(
    ("sites", "keys"),
    [(["a", 3], {"a": "k"}), (["a"], {"a": 7}), (["a", None], {}), (["a"], {"a": ["k"]})],
)
def test_sites_and_keys_must_be_strings(sites: list[object], keys: dict[str, object]) -> None:
    good = orjson.loads(wire.encode_request(wire.Request("r", "count", 1, {})))
    bad = orjson.dumps({**good, "sites": sites, "keys": keys})
    with pytest.raises(wire.WireError, match="sites and keys must be strings"):
        wire.decode_request(bad, 10_000)

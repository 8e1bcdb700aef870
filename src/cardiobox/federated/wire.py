"""The messages between hub and sites, as JSON bytes (never pickle).

A request names the run, the task, the round, the parameters, the hub's payload and the
round's sites with their masking keys. A reply carries the site's status, its values in clear,
its masked vectors (base64 of 128-bit ring elements, with their names and lengths) and, in
the set-up round, its public masking key. Decoding checks the shape of every field, so a
malformed message is refused with a message, not half-read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from cardiobox.errors import CardioboxError

PROTOCOL = 1


class WireError(CardioboxError):
    """A malformed, oversized or unexpected message."""


@dataclass
class Request:
    """What the hub asks of a site for one round (round 0 is the set-up)."""

    run_id: str
    task: str
    round: int
    params: dict[str, Any]
    payload: dict[str, Any] = field(default_factory=dict)
    sites: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)


@dataclass
class Reply:
    """A site's answer to one request."""

    run_id: str
    round: int
    site: str
    status: str  # "ok", "refused" or "error"
    rule: str | None = None
    reason: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    manifest: list[tuple[str, int]] = field(default_factory=list)
    masked: str | None = None
    key: str | None = None
    rho: float = 0.0


def _dumps(obj: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as exc:
        raise WireError(
            f"a message holds a value that is not JSON: {exc}", rule="bad-message"
        ) from exc


def _loads(data: bytes, max_bytes: int, what: str) -> dict[str, Any]:
    if len(data) > max_bytes:
        raise WireError(
            f"{what} of {len(data):,} bytes exceeds the limit of {max_bytes:,}", rule="oversized"
        )
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"{what} is not valid JSON: {exc}", rule="bad-message") from exc
    if not isinstance(obj, dict) or obj.get("cardiobox") != PROTOCOL:
        raise WireError(
            f"{what} is not a cardiobox protocol {PROTOCOL} message", rule="bad-message"
        )
    return obj


def _need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise WireError(
            f"{what}: field {key!r} is missing or of the wrong type", rule="bad-message"
        )
    return value


def encode_request(r: Request) -> bytes:
    """Request → JSON bytes."""
    return _dumps({"cardiobox": PROTOCOL, "kind": "request", **vars(r)})


def decode_request(data: bytes, max_bytes: int) -> Request:
    """JSON bytes → request, checking every field.

    Raises
    ------
    WireError
        For oversized, malformed or incomplete messages.
    """
    obj = _loads(data, max_bytes, "request")
    what = "request"
    keys = _need(obj, "keys", dict, what)
    sites = _need(obj, "sites", list, what)
    # map over isinstance runs in C: a 50-site request has 150 strings to check
    strings = repeat(str)
    if not (
        all(map(isinstance, sites, strings))
        and all(map(isinstance, keys, strings))
        and all(map(isinstance, keys.values(), strings))
    ):
        raise WireError("request: sites and keys must be strings", rule="bad-message")
    return Request(
        run_id=_need(obj, "run_id", str, what),
        task=_need(obj, "task", str, what),
        round=_need(obj, "round", int, what),
        params=_need(obj, "params", dict, what),
        payload=_need(obj, "payload", dict, what),
        sites=sites,
        keys=keys,
    )


def encode_reply(r: Reply) -> bytes:
    """Reply → JSON bytes."""
    return _dumps({"cardiobox": PROTOCOL, "kind": "reply", **vars(r)})


def decode_reply(data: bytes, max_bytes: int) -> Reply:
    """JSON bytes → reply, checking every field.

    Raises
    ------
    WireError
        For oversized, malformed or incomplete messages.
    """
    obj = _loads(data, max_bytes, "reply")
    what = "reply"
    status = _need(obj, "status", str, what)
    if status not in ("ok", "refused", "error"):
        raise WireError(f"reply: unknown status {status!r}", rule="bad-message")
    manifest_raw = _need(obj, "manifest", list, what)
    manifest: list[tuple[str, int]] = []
    for item in manifest_raw:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], int)
            or item[1] < 0
        ):
            raise WireError("reply: manifest entries must be [name, length]", rule="bad-message")
        manifest.append((item[0], item[1]))
    masked = obj.get("masked")
    key = obj.get("key")
    rho = obj.get("rho", 0.0)
    if masked is not None and not isinstance(masked, str):
        raise WireError("reply: masked must be a string", rule="bad-message")
    if key is not None and not isinstance(key, str):
        raise WireError("reply: key must be a string", rule="bad-message")
    if not isinstance(rho, int | float) or isinstance(rho, bool):
        raise WireError("reply: rho must be a number", rule="bad-message")
    rule, reason = obj.get("rule"), obj.get("reason")
    return Reply(
        run_id=_need(obj, "run_id", str, what),
        round=_need(obj, "round", int, what),
        site=_need(obj, "site", str, what),
        status=status,
        rule=rule if isinstance(rule, str) else None,
        reason=reason if isinstance(reason, str) else None,
        values=_need(obj, "values", dict, what),
        manifest=manifest,
        masked=masked,
        key=key,
        rho=float(rho),
    )


def flatten(arrays: dict[str, np.ndarray]) -> tuple[list[tuple[str, int]], np.ndarray]:
    """Named vectors → (manifest, one concatenated vector), in name order."""
    manifest = [(name, int(np.asarray(arrays[name]).size)) for name in sorted(arrays)]
    parts = [np.asarray(arrays[name], dtype=np.float64).ravel() for name, _ in manifest]
    return manifest, (np.concatenate(parts) if parts else np.zeros(0))


def unflatten(manifest: list[tuple[str, int]], vector: np.ndarray) -> dict[str, np.ndarray]:
    """Inverse of :func:`flatten` (each vector comes back 1-D)."""
    out: dict[str, np.ndarray] = {}
    start = 0
    for name, n in manifest:
        out[name] = vector[start : start + n]
        start += n
    if start != vector.size:
        raise WireError("the summed vector does not match its manifest", rule="bad-message")
    return out

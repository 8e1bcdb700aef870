"""The hub's transport over Flower's deployment runtime (a ServerApp's ``Grid``).

Each cardiobox message travels as the one ``bytes`` value of a Flower ``ConfigRecord`` — the
same JSON bytes the in-process runtime passes (never pickle, never Flower's own arrays). Sites
are the SuperNodes connected to the SuperLink, named by the name the hub registered with each
node's public key (``flwr supernode register --name``); a node registered without a name (or
a SuperLink without node authentication) is asked its site name once, by a ``hello`` query.
A reply that names another site than the one asked is refused.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from cardiobox.errors import CardioboxError
from cardiobox.federated.wire import WireError

#: The record and the field that carry a cardiobox message inside a Flower message.
RECORD = "cardiobox"
FIELD = "message"
#: Flower message types: a task request, and the question "which site are you?".
REQUEST_TYPE = "query.cardiobox"
HELLO_TYPE = "query.cardiobox_hello"
#: Seconds between two polls of the SuperLink for replies.
POLL_SECONDS = 0.25
#: Extra seconds a message lives at the SuperLink beyond the time the hub waits for it.
TTL_MARGIN = 30.0

log = logging.getLogger(__name__)


def pack(data: bytes) -> RecordDict:
    """A cardiobox message (JSON bytes) as the content of a Flower message."""
    if not isinstance(data, bytes):
        raise TypeError(f"a cardiobox message must be bytes, got {type(data).__name__}")
    return RecordDict({RECORD: ConfigRecord({FIELD: data})})


def unpack(content: RecordDict) -> bytes:
    """The cardiobox message inside a Flower message's content.

    Raises
    ------
    WireError
        When the content holds no ``cardiobox`` record or its value is not bytes.
    """
    records = content.config_records
    record = records.get(RECORD)
    value = record.get(FIELD) if record is not None else None
    if not isinstance(value, bytes):
        raise WireError(
            f"a Flower message without a {RECORD}.{FIELD} bytes value "
            f"(records: {', '.join(sorted(content.keys())) or 'none'})",
            rule="bad-message",
        )
    return value


class NodeError(ConnectionError):
    """A SuperNode that answered with a Flower error (or not at all) instead of a reply."""


@dataclass(frozen=True)
class _Node:
    node_id: int
    registered_name: str


class FlowerTransport:
    """A :class:`~cardiobox.federated.hub.Transport` over a Flower ``Grid``.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
        The grid of the running ServerApp.
    hello_timeout : float
        Seconds the SuperNodes have to say their site names (default 120).
    poll : float
        Seconds between two polls of the SuperLink (default 0.25).
    """

    def __init__(self, grid: Grid, hello_timeout: float = 120.0, poll: float = POLL_SECONDS):
        self.grid = grid
        self.hello_timeout = hello_timeout
        self.poll = poll
        self._nodes: dict[str, int] | None = None
        #: SuperNodes left out of the federation, and why (a name clash, no answer...).
        self.excluded: dict[int, str] = {}

    # -- sites ---------------------------------------------------------------------------------
    def _connected(self) -> list[_Node]:
        return [
            _Node(int(info.node_id), info.name if info.HasField("name") else "")
            for info in self.grid.get_nodes()
        ]

    def sites(self) -> list[str]:
        """Names of the sites connected now (looked up once per run)."""
        if self._nodes is None:
            self._nodes = self._identify()
        return sorted(self._nodes)

    def _identify(self) -> dict[str, int]:
        """Site name → node id: the name registered with the node's key, else the node's own."""
        nodes = {n.node_id: n for n in self._connected()}
        named: dict[str, list[int]] = {}
        for node in nodes.values():
            if node.registered_name:
                named.setdefault(node.registered_name, []).append(node.node_id)
        unnamed = [n for n, node in nodes.items() if not node.registered_name]
        hello = orjson.dumps({"cardiobox": 1, "kind": "hello"})
        replies = self._send({n: (HELLO_TYPE, hello) for n in unnamed}, self.hello_timeout)
        for node_id, got in replies.items():
            site = _site_in(got) if isinstance(got, bytes) else None
            if isinstance(got, Exception):
                self.excluded[node_id] = f"no site name: {got}"
            elif site is None:
                self.excluded[node_id] = "answered the hello without a site name"
            else:
                named.setdefault(site, []).append(node_id)
        for site, ids in named.items():
            if len(ids) > 1:
                for node_id in ids:
                    self.excluded[node_id] = f"{len(ids)} SuperNodes are site {site!r}"
        for node_id, why in sorted(self.excluded.items()):
            log.warning("SuperNode %d left out of the run: %s", node_id, why)
        return {site: ids[0] for site, ids in named.items() if len(ids) == 1}

    # -- exchange ------------------------------------------------------------------------------
    def exchange(self, requests: dict[str, bytes], timeout: float) -> dict[str, bytes | Exception]:
        """Send each site its request; its reply, or the exception that stands for none."""
        if self._nodes is None:
            self._nodes = self._identify()
        out: dict[str, bytes | Exception] = {}
        by_node: dict[int, tuple[str, bytes]] = {}
        site_of: dict[int, str] = {}
        for site, data in requests.items():
            node_id = self._nodes.get(site)
            if node_id is None:
                out[site] = CardioboxError(f"site {site} has no SuperNode in this run", "no-node")
                continue
            by_node[node_id] = (REQUEST_TYPE, data)
            site_of[node_id] = site
        for node_id, got in self._send(by_node, timeout).items():
            site = site_of[node_id]
            said = _site_in(got) if isinstance(got, bytes) else site
            if said is not None and said != site:
                got = CardioboxError(
                    f"the SuperNode of site {site} answers as site {said!r}: its key is "
                    "registered under another name than its node config's site",
                    "site-mismatch",
                )
            out[site] = got
        return out

    def _send(
        self, requests: dict[int, tuple[str, bytes]], timeout: float
    ) -> dict[int, bytes | Exception]:
        """Push one message per node, then poll for the replies until ``timeout``."""
        if not requests:
            return {}
        messages = [
            Message(pack(data), node_id, kind, ttl=timeout + TTL_MARGIN)
            for node_id, (kind, data) in requests.items()
        ]
        refused = "the SuperLink did not accept the message"
        try:
            pushed = list(self.grid.push_messages(messages))
        except Exception as exc:  # the SuperLink's Runtime API failed: no site is reached
            refused, pushed = f"{refused} ({type(exc).__name__}: {exc})", []
        if len(pushed) != len(messages):  # the whole batch was refused
            pushed = [""] * len(messages)
        out: dict[int, bytes | Exception] = {}
        waiting: dict[str, int] = {}
        for node_id, message_id in zip(requests, pushed, strict=True):
            if message_id:
                waiting[message_id] = node_id
            else:
                out[node_id] = NodeError(refused)
        deadline = time.monotonic() + timeout
        while waiting:
            try:
                replies = list(self.grid.pull_messages(list(waiting)))
            except Exception as exc:  # a failed poll: poll again until the deadline
                log.warning("polling the SuperLink for replies failed: %s", exc)
                replies = []
            for reply in replies:
                node_id_or_none = waiting.pop(reply.metadata.reply_to_message_id, None)
                if node_id_or_none is not None:
                    out[node_id_or_none] = _reply_bytes(reply)
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(self.poll)
        for node_id in waiting.values():
            out[node_id] = TimeoutError(f"no reply within {timeout:g} s")
        return out


def _site_in(data: bytes) -> str | None:
    """The ``site`` a JSON reply names, if it names one."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    site = obj.get("site") if isinstance(obj, dict) else None
    return site if isinstance(site, str) and site else None


def _reply_bytes(reply: Message) -> bytes | Exception:
    if reply.has_error():
        error = reply.error
        return NodeError(f"Flower error {error.code}: {error.reason or 'no reason given'}")
    try:
        return unpack(reply.content)
    except WireError as exc:
        return exc

"""The site half on Flower's deployment runtime: a ClientApp that hands requests to a SiteNode.

The SuperNode's node config names the site and its files (set by ``cardiobox node start``)::

    flower-supernode ... --node-config "site='hospital_a' source='/data/a.csv'
                                        policy='/etc/cardiobox/policy.yaml' state=''"

``source`` is the site store or table, ``policy`` the site's policy file (empty: the default
policy), ``state`` the audit log and ledger file (empty: beside the source). The ClientApp reads
nothing from the hub but the request bytes: which data, which policy and which code answer are
the site's own.

It runs only inside the site's own long-lived process (:mod:`cardiobox.federated.flower.site`),
which keeps one :class:`SiteNode` — its table, its masking keys, the releases it already
logged — from round to round. Under Flower's ``subprocess`` isolation every message would get
a fresh process (and the hub would choose the code), so there it refuses to answer.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from flwr.app import Context, Message, UserConfig
from flwr.clientapp import ClientApp

from cardiobox.federated.flower.transport import pack, unpack
from cardiobox.federated.node import SiteNode
from cardiobox.federated.wire import WireError
from cardiobox.privacy.policy import load_policy

#: Node config keys.
SITE, SOURCE, POLICY, STATE = "site", "source", "policy", "state"
_NODES: dict[tuple[str, str, str, str], SiteNode] = {}
_SITE_PROCESS = False


def serve_in_this_process() -> None:
    """Mark this process as a site's long-lived process (called by the site's executor)."""
    global _SITE_PROCESS
    _SITE_PROCESS = True


def _check_process() -> None:
    if not _SITE_PROCESS:
        raise RuntimeError(
            "the cardiobox ClientApp answers only in a site's own process (`cardiobox node "
            "start`, SuperNode --isolation process): under Flower's subprocess isolation each "
            "message gets a fresh process, which loses the run's keys between rounds"
        )


def _text(config: UserConfig, key: str, required: bool) -> str:
    value = config.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise ValueError(
            f"SuperNode node config {key!r} must be a non-empty string (set it with "
            f"--node-config \"{key}='...'\"), got {value!r}"
        )
    return value


def site_name(config: UserConfig) -> str:
    """The site's name from the SuperNode's node config."""
    return _text(config, SITE, required=True)


def site_node(config: UserConfig) -> SiteNode:
    """The :class:`SiteNode` of this process for the node config (made on first use)."""
    key = (
        site_name(config),
        _text(config, SOURCE, required=True),
        _text(config, POLICY, required=False),
        _text(config, STATE, required=False),
    )
    if key not in _NODES:
        name, source, policy, state = key
        _NODES[key] = SiteNode(
            name,
            Path(source),
            load_policy(Path(policy) if policy else None),
            state_path=Path(state) if state else None,
        )
    return _NODES[key]


app = ClientApp()


@app.query("cardiobox_hello")
def hello(message: Message, context: Context) -> Message:
    """Say which site this SuperNode serves."""
    _check_process()
    name = site_name(context.node_config)
    return Message(
        pack(orjson.dumps({"cardiobox": 1, "kind": "hello", "site": name})), reply_to=message
    )


@app.query("cardiobox")
def answer(message: Message, context: Context) -> Message:
    """Answer one cardiobox request with the site's node (bytes in, bytes out)."""
    _check_process()
    node = site_node(context.node_config)
    try:
        request = unpack(message.content)
    except WireError:
        request = b""  # the node refuses it as malformed, and logs the refusal
    return Message(pack(node.handle(request)), reply_to=message)

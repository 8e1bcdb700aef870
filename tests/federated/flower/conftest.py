"""A Flower ``Grid`` in memory: messages go to cardiobox's real ClientApp, with no processes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from flwr.app import Context, Error, Message, RecordDict
from flwr.proto.node_pb2 import NodeInfo
from flwr.supercore.task_identity import TaskIdentity

from cardiobox.federated.flower import clientapp

#: What a node does with a message: its reply, or None (it never answers).
Responder = Callable[[Message], Message | None]


class FakeGrid:
    """The part of ``flwr.serverapp.Grid`` that FlowerTransport uses."""

    def __init__(self) -> None:
        self.nodes: dict[int, tuple[str, Responder]] = {}
        self.pushed: list[Message] = []
        self._replies: dict[str, Message] = {}

    def add(self, node_id: int, registered_name: str, respond: Responder) -> None:
        self.nodes[node_id] = (registered_name, respond)

    def get_nodes(self) -> list[NodeInfo]:
        return [
            NodeInfo(node_id=i, name=name) if name else NodeInfo(node_id=i)
            for i, (name, _) in self.nodes.items()
        ]

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = message.object_id
            self.pushed.append(message)
            ids.append(message.object_id)
            _, respond = self.nodes[message.metadata.dst_node_id]
            reply = respond(message)
            if reply is not None:
                self._replies[message.object_id] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]


def client_app_node(site: str, source: Path, policy: Path | None = None) -> Responder:
    """A node that answers with cardiobox's ClientApp, configured as a SuperNode would be."""
    config: dict[str, bool | float | int | str] = {
        "site": site,
        "source": str(source),
        "policy": str(policy) if policy else "",
        "state": "",
    }

    def respond(message: Message) -> Message:
        context = Context(
            run_id=1, node_id=0, node_config=config, state=RecordDict(), run_config={}
        )
        try:
            return clientapp.app(message, context)
        except Exception as exc:  # as flwr-clientapp does: an error reply
            return Message(Error(code=2, reason=repr(exc)), reply_to=message)

    return respond


@pytest.fixture
def client_node() -> Callable[..., Responder]:
    """Make a node answering with cardiobox's ClientApp: ``client_node(site, csv)``."""
    return client_app_node


@pytest.fixture
def grid(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGrid]:
    """A fake grid, inside a fake ServerApp task (Flower messages need a run id)."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(clientapp, "_SITE_PROCESS", True)
    monkeypatch.setattr(clientapp, "_NODES", {})
    yield FakeGrid()

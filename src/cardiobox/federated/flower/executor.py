"""A site's own task executor for a SuperNode started with ``--isolation process``.

With Flower's default ``subprocess`` isolation, the SuperNode starts a fresh ``flwr-clientapp``
process for every message, and that process runs the ClientApp *named by the app the hub
submitted*: whoever can submit a run to the SuperLink chooses the code that runs at every site,
next to its patient data (Flower 1.42's open-source SuperLink offers no way for a SuperNode to
verify the app; ``--trusted-entities`` needs an app signed through Flower's enterprise
SuperLink). A cardiobox site therefore runs its SuperNode with ``--isolation process`` and
serves the SuperNode's tasks itself, in one long-lived process, always with cardiobox's own
ClientApp (:mod:`cardiobox.federated.flower.clientapp`), whatever app the run names. The same
process keeps its :class:`~cardiobox.federated.node.SiteNode` (its table, its masking keys)
from round to round.

It speaks the SuperNode's local Runtime API exactly as ``flwr-clientapp`` does (acquire a task,
pull its message and context, push the reply and the context); those calls are internal to
Flower, hence the exact pin ``flwr==1.42.0``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx
from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode, SubStatus
from flwr.proto.runtime_pb2 import AcquireTaskRequest, SendTaskHeartbeatRequest
from flwr.supercore.constant import TaskType
from flwr.supercore.heartbeat import HeartbeatSender
from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
from flwr.supercore.interceptors.http.runtime_token import RuntimeTokenHttpInterceptor
from flwr.supercore.protobuf.client import ProtobufClientInterceptor
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

#: Seconds between two asks for a new task when there is none.
POLL_SECONDS = 0.25

log = logging.getLogger(__name__)


def _client(runtime_address: str, token: str | None = None) -> RuntimeHttpClient:
    interceptors: list[ProtobufClientInterceptor] = [
        RuntimeVersionHttpInterceptor(component_name="flwr-clientapp")
    ]
    if token:
        interceptors.append(RuntimeTokenHttpInterceptor(token))
    return RuntimeHttpClient.from_server_address(
        server_address=runtime_address,
        insecure=True,  # the SuperNode's Runtime API listens on the loopback interface only
        root_certificates=None,
        interceptors=interceptors,
        # No retry invoker: Flower's interrupts the whole process on some HTTP errors; on the
        # loopback a failed call fails the task (the hub drops the site), not the site.
        retry_invoker=None,
    )


def _heartbeat(client: RuntimeHttpClient) -> bool:
    """One task heartbeat; never raises (Flower's own would interrupt this whole process)."""
    try:
        client.SendTaskHeartbeat(SendTaskHeartbeatRequest())
    except httpx.HTTPError:
        return False
    return True


def run_task(runtime_address: str, token: str, app: ClientApp) -> None:
    """Run one acquired task: pull its message, answer it with ``app``, push the reply."""
    client = _client(runtime_address, token)
    heartbeat = HeartbeatSender(lambda: _heartbeat(client))
    heartbeat.start()
    message: Message | None = None
    context: Context | None = None
    reply: Message | None = None
    status, details = SubStatus.FAILED, "the task failed"
    try:
        message, context, _run, _fab = pull_task_input(client)
        reply = app(message=message, context=context)
        status, details = SubStatus.COMPLETED, ""
    except Exception as exc:  # a failed task must not end the site's process
        log.exception("the ClientApp failed")
        details = f"{type(exc).__name__}: {exc}"
        if message is not None:
            reply = Message(
                Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=details),
                reply_to=message,
            )
    finally:
        try:
            if reply is not None and context is not None:
                push_message(client, reply, context)
            push_task_output(client, context, status, details)
        except Exception:  # the hub will time the site out; the site goes on serving
            log.exception("could not push the reply of the task")
        heartbeat.stop()
        client.close()


def serve(
    runtime_address: str,
    app: ClientApp,
    stop: threading.Event,
    alive: Callable[[], bool] | None = None,
    poll: float = POLL_SECONDS,
) -> None:
    """Serve the SuperNode's ClientApp tasks with ``app`` until ``stop`` is set.

    Parameters
    ----------
    runtime_address : str
        The SuperNode's Runtime API (``127.0.0.1:PORT``).
    app : flwr.clientapp.ClientApp
        The ClientApp that answers every task.
    stop : threading.Event
        Set it to end the loop (between two tasks).
    alive : callable, optional
        Called before each poll; the loop ends when it returns false (the SuperNode died).
    poll : float
        Seconds between two asks when there is no task.
    """
    client = _client(runtime_address)
    request = AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP.value])
    try:
        while not stop.is_set() and (alive is None or alive()):
            try:
                res = client.AcquireTask(request)
            except httpx.HTTPError as exc:
                log.warning("the SuperNode's Runtime API did not answer: %s", exc)
                stop.wait(1.0)
                continue
            if res.HasField("task") and res.token:
                started = time.perf_counter()
                run_task(runtime_address, res.token, app)
                log.info("task %d done in %.2f s", res.task.task_id, time.perf_counter() - started)
            else:
                stop.wait(poll)
    finally:
        client.close()

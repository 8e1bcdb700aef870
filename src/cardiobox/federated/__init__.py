"""Federated tasks: each site computes under its own policy, the hub aggregates.

See ``docs/federated.md``. The same task code runs on the in-process runtime (many simulated
sites in one process) and on Flower's deployment runtime.
"""

from cardiobox.federated.api import make_nodes, run
from cardiobox.federated.hub import Hub, RunError, RunReport
from cardiobox.federated.node import SiteNode
from cardiobox.federated.task import TASKS, Task, TaskError, get_task

__all__ = [
    "TASKS",
    "Hub",
    "RunError",
    "RunReport",
    "SiteNode",
    "Task",
    "TaskError",
    "get_task",
    "make_nodes",
    "run",
]

"""The built-in federated tasks; importing this package registers them."""

from cardiobox.federated.tasks import count

__all__ = ["count"]

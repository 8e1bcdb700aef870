"""The built-in federated tasks; importing this package registers them."""

from cardiobox.federated.tasks import count, cox, glm

__all__ = ["count", "cox", "glm"]

"""The built-in federated tasks; importing this package registers them."""

from cardiobox.federated.tasks import count, cox, crosstab, describe, gbt, glm, km, mlp

__all__ = ["count", "cox", "crosstab", "describe", "gbt", "glm", "km", "mlp"]

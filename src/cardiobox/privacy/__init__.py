"""Privacy: zCDP budgets, noise mechanisms and privacy accounting for site releases."""

"""The ``cardiobox`` command line: one module per command group."""

"""SQL on FHIR v2: ViewDefinitions compiled to DuckDB SQL.

>>> from cardiobox.store.views import compile_view, run_view
>>> compiled = compile_view({"resource": "Patient",
...     "select": [{"column": [{"name": "id", "path": "getResourceKey()"}]}]})
>>> compiled.columns
(OutputColumn(name='id', type='VARCHAR'),)
"""

from cardiobox.store.views.compiler import CompiledView, OutputColumn, compile_view
from cardiobox.store.views.conformance import ConformanceReport, run_conformance
from cardiobox.store.views.model import ViewDefinition, load_view
from cardiobox.store.views.run import run_view

__all__ = [
    "CompiledView",
    "ConformanceReport",
    "OutputColumn",
    "ViewDefinition",
    "compile_view",
    "load_view",
    "run_conformance",
    "run_view",
]

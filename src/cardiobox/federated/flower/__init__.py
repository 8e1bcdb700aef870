"""Flower's deployment runtime for cardiobox tasks: SuperLink at the hub, a SuperNode per site.

- :mod:`~cardiobox.federated.flower.transport`: the hub's transport over a ServerApp's grid
  (cardiobox JSON bytes in a ConfigRecord).
- :mod:`~cardiobox.federated.flower.serverapp`, :mod:`~cardiobox.federated.flower.clientapp`:
  the two halves of the Flower App (``app/pyproject.toml``).
- :mod:`~cardiobox.federated.flower.site`, :mod:`~cardiobox.federated.flower.executor`: a
  site's process, its SuperNode and the executor that answers with the site's own code.
- :mod:`~cardiobox.federated.flower.submit`: ``run_on_flower`` (``flwr run`` and the report).
- :mod:`~cardiobox.federated.flower.processes`, :mod:`~cardiobox.federated.flower.certs`:
  starting and stopping the processes; development certificates and SuperNode keys.

Nothing here is imported by ``cardiobox.federated``: Flower is needed only to use this package.
"""

"""Federated training with Flower's Deployment Runtime, inside AMML's lifecycle.

* :mod:`~amml.federated.spec`: a federation's plan (the ``federated:`` section);
* :mod:`~amml.federated.deployment`: ``flower-superlink`` and ``flower-supernode`` processes;
* :mod:`~amml.federated.flower_app`: the ServerApp and ClientApp Flower runs;
* :mod:`~amml.federated.client`: a client's workflow, local training and health report;
* :mod:`~amml.federated.server`: the round loop around Flower's strategies;
* :mod:`~amml.federated.lifecycle`: each round a ledger entry, a registered version, a
  promotion decision;
* :mod:`~amml.federated.fleet`: the clients' health in the store and for Prometheus;
* :mod:`~amml.federated.schedule`: cron schedules, new-data triggers, availability windows.
"""

from amml._lazy import lazy_attributes as _lazy_attributes

_LAZY = {
    "Deployment": "amml.federated.deployment",
    "FederationSpec": "amml.federated.spec",
    "load_plan": "amml.federated.spec",
    "Schedule": "amml.federated.schedule",
    "Cron": "amml.federated.schedule",
    "prometheus_text": "amml.federated.fleet",
}

__getattr__ = _lazy_attributes(__name__, _LAZY)
__all__ = sorted(_LAZY)

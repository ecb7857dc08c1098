"""Each round's global model enters the lifecycle: a ledger entry, a registered version, and
the promotion policy's decision.

The ledger entry (kind ``round``, in ledger ``federated-NAME``) holds the global weights as
its checkpoint and, in its signed body, the sha256 digest and sample count of every client
update that went into it, the clients that were asked but did not answer, the strategy and the
evaluation metrics. The same weights become the next version of the model in the registry
(alias ``challenger``); :func:`amml.registry.promote` then moves ``champion`` to it when its
metric beats the holder's, and servers following ``NAME@champion`` swap to it without failing
a request (:mod:`amml.serve.models`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amml.federated.spec import FederationSpec
from amml.ops.models.contract import ForecastModel
from amml.ops.models.register import model_signature, numeric_metrics
from amml.registry import ModelRegistry, promote
from amml.store import Store
from amml.store.ledger import Ledger, LedgerEntry


def weights_bytes(weights: list[np.ndarray]) -> bytes:
    """The weights as safetensors bytes (named by position: the contract's fixed order)."""
    from safetensors.numpy import save

    return save({f"w{i:04d}": np.ascontiguousarray(w) for i, w in enumerate(weights)})


def weights_digest(weights: list[np.ndarray]) -> str:
    """sha256 over the arrays' dtypes, shapes and bytes, in order."""
    digest = hashlib.sha256()
    for array in weights:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass
class ClientUpdate:
    """One client's answer to a training round, as the server saw it."""

    client: str
    node_id: str
    digest: str
    num_examples: int
    loss: float | None = None


@dataclass
class RoundRecord:
    round: int
    entry: LedgerEntry
    version: int
    promoted: bool
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)


class RoundLifecycle:
    """Records rounds of one federated run in a store's ledger and registry."""

    def __init__(self, store: Store, plan: FederationSpec, run_id: str) -> None:
        self.store, self.plan, self.run_id = store, plan, run_id
        self.ledger = Ledger(store, plan.ledger_name)
        self.registry = ModelRegistry(store)

    def record(self, round_number: int, model: ForecastModel, updates: list[ClientUpdate],
               metrics: dict[str, Any], missing: list[str]) -> RoundRecord:
        name = self.plan.model_name
        weights = model.get_weights()
        kept = numeric_metrics(metrics)
        version = self.registry.register(
            name, model, metrics={**kept, "round": round_number},
            signature=model_signature(model),
            description=f"federated round {round_number} of run {self.run_id} "
                        f"({self.plan.strategy.name}, {len(updates)} clients)")
        self.registry.set_alias(name, "challenger", version.version,
                                reason=f"federated round {round_number}")
        promoted, reason = False, "promotion disabled"
        if self.plan.registry.promote:
            decision = promote(self.registry, name, metric=self.plan.registry.metric,
                               reason=f"federated round {round_number}")
            promoted, reason = decision.promoted, decision.reason
        entry = self.ledger.append(
            "round", epoch=round_number, checkpoint=weights_bytes(weights), metrics=kept,
            extra={"run": self.run_id, "federation": self.plan.name,
                   "strategy": self.plan.strategy.name, "model": version.ref,
                   "global_digest": weights_digest(weights),
                   "clients": [vars(u) for u in updates], "missing": sorted(missing),
                   "promoted": promoted, "promotion": reason})
        return RoundRecord(round_number, entry, version.version, promoted, reason, kept)

"""AMML's Flower app: the ``ServerApp`` and ``ClientApp`` that Flower's Deployment Runtime
runs (``flower-superlink`` starts the ServerApp, each ``flower-supernode`` the ClientApp).

The run config (``flwr run --run-config``) carries the federation's plan as JSON (``plan``),
the server's store (``store``), where to write the per-round results (``results``) and,
optionally, a folder to log what crosses the wire (``wire-log``). Each SuperNode's node
config says which client it is, where that client's store is and its workflow parameters
(``amml federated up`` writes it).
"""

from __future__ import annotations

from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from amml.federated.client import (
    ClientIdentity,
    HealthProbe,
    evaluate_locally,
    load_client_data,
    train_locally,
)
from amml.federated.spec import FederationSpec

client = ClientApp()
server = ServerApp()

#: every training reply carries the same metric keys (Flower's strategies check that)
_REPLY_KEYS = ("health.cpu_percent", "health.memory_mb", "health.rows", "health.new_rows",
               "health.reported_at", "health.newest_row_at", "health.local_loss",
               "health.model_version")


def _plan(context: Context) -> FederationSpec:
    return FederationSpec.from_json(str(context.run_config["plan"]))


def _reply(msg: Message, arrays: ArrayRecord | None, metrics: dict[str, Any],
           name: str) -> Message:
    content = RecordDict({"metrics": MetricRecord(metrics),
                          "client": ConfigRecord({"name": name})})
    if arrays is not None:
        content["arrays"] = arrays
    return Message(content, reply_to=msg)


@client.train()
def train(msg: Message, context: Context) -> Message:
    plan, me = _plan(context), ClientIdentity.from_node_config(dict(context.node_config))
    probe = HealthProbe(me)
    me.check_available()  # outside its window the client declines: an error reply
    data = load_client_data(plan, me)
    config = dict(msg.content["config"])
    weights = msg.content["arrays"].to_numpy_ndarrays()
    model, examples, loss = train_locally(plan, data, weights, config)
    health = probe.report(data, loss, int(config.get("model-version", 0)))
    metrics = {"num-examples": examples, "train_loss": loss,
               **{key: health.get(key, -1.0) for key in _REPLY_KEYS}}
    return _reply(msg, ArrayRecord(model.get_weights()), metrics, me.name)


@client.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    plan, me = _plan(context), ClientIdentity.from_node_config(dict(context.node_config))
    data = load_client_data(plan, me)
    metrics = evaluate_locally(plan, data, msg.content["arrays"].to_numpy_ndarrays())
    return _reply(msg, None, metrics, me.name)


@client.query()
def query(msg: Message, context: Context) -> Message:
    """A health report without training: what a scheduled federation polls to decide
    whether enough clients hold enough new rows for a round."""
    plan, me = _plan(context), ClientIdentity.from_node_config(dict(context.node_config))
    probe = HealthProbe(me)
    data = load_client_data(plan, me)
    health = probe.report(data, None, None, trained=False)
    return _reply(msg, None, {key: health.get(key, -1.0) for key in _REPLY_KEYS}, me.name)


@server.main()
def main(grid: Grid, context: Context) -> None:
    # imported here: a ClientApp process (one per message) has no use for the server's
    # registry, ledger and strategies
    from amml.federated.server import FederatedServer
    from amml.store import open_store

    config = context.run_config
    plan = FederationSpec.from_json(str(config["plan"]))
    with open_store(str(config["store"])) as store:
        FederatedServer(grid, plan, store, str(context.run_id),
                        results=str(config.get("results") or "") or None,
                        wire_log=str(config.get("wire-log") or "") or None).run()

"""The ServerApp's round loop: Flower's strategy does the sampling and the aggregation; AMML
adds the lifecycle (ledger entry, registered version, promotion), the fleet's health reports
and a per-round account of time and bytes.

The loop is :meth:`flwr.serverapp.strategy.Strategy.start`'s own — ``configure_train``,
``send_and_receive`` with the round timeout, ``aggregate_train``, then the same for
evaluation — with those steps added after each round. A client that does not answer in time
(a straggler, a killed SuperNode) or answers with an error (outside its availability window)
is left out of the aggregate; the round counts when at least ``min_clients`` answered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from amml.federated.client import new_model
from amml.federated.fleet import FleetRecorder
from amml.federated.lifecycle import ClientUpdate, RoundLifecycle, weights_digest
from amml.federated.schedule import Cron
from amml.federated.spec import FederationSpec
from amml.store import Store


def make_strategy(plan: FederationSpec) -> Any:
    """Flower's strategy of the plan, waiting for ``min_clients`` to train and evaluate."""
    from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

    common = dict(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=plan.min_clients,
                  min_evaluate_nodes=plan.min_clients, min_available_nodes=plan.min_clients)
    s = plan.strategy
    if s.name == "fedprox":
        return FedProx(**common, proximal_mu=s.proximal_mu)
    if s.name == "fedadam":
        return FedAdam(**common, eta=s.eta, eta_l=s.eta_l, tau=s.tau)
    return FedAvg(**common)


def array_bytes(messages: Iterable[Any]) -> int:
    """Bytes of the ArrayRecords the messages carry (what weight exchange costs)."""
    total = 0
    for message in messages:
        if message.has_content():
            total += sum(record.count_bytes() for record in message.content.array_records.values())
    return total


class WireLog:
    """Every message's records as they crossed the wire (for inspection; off by default):
    ``wire.jsonl`` describes each, ``wire.bin`` holds the arrays' bytes."""

    def __init__(self, folder: str | None) -> None:
        self.folder = Path(folder) if folder else None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, direction: str, messages: Iterable[Any]) -> None:
        if self.folder is None:
            return
        with (self.folder / "wire.jsonl").open("a") as text, \
                (self.folder / "wire.bin").open("ab") as blob:
            for message in messages:
                entry: dict[str, Any] = {"direction": direction,
                                         "type": message.metadata.message_type}
                if message.has_content():
                    content = message.content
                    entry["arrays"] = {key: [{"shape": list(a.shape), "dtype": a.dtype}
                                             for a in record.values()]
                                       for key, record in content.array_records.items()}
                    entry["metrics"] = {key: dict(record)
                                        for key, record in content.metric_records.items()}
                    entry["configs"] = {key: {k: v if isinstance(v, int | float | str | bool)
                                              else repr(v) for k, v in record.items()}
                                        for key, record in content.config_records.items()}
                    for record in content.array_records.values():
                        for array in record.values():
                            blob.write(array.data)
                else:
                    entry["error"] = message.error.reason
                text.write(json.dumps(entry, default=str) + "\n")


def _client_name(message: Any, known: dict[int, str], node: int | None = None) -> str:
    node = message.metadata.src_node_id if node is None else node
    if message.has_content() and "client" in message.content.config_records:
        known[node] = str(message.content.config_records["client"]["name"])
    return known.get(node, f"node-{node}")


class FederatedServer:
    """Runs a plan's rounds on a Flower grid and records them in ``store``."""

    def __init__(self, grid: Any, plan: FederationSpec, store: Store, run_id: str, *,
                 results: str | None = None, wire_log: str | None = None) -> None:
        self.grid, self.plan, self.store, self.run_id = grid, plan, store, run_id
        self.strategy = make_strategy(plan)
        self.lifecycle = RoundLifecycle(store, plan, run_id)
        self.fleet = FleetRecorder(store, plan.name, run_id)
        self.results_path = Path(results) if results else None
        self.wire = WireLog(wire_log)
        self.names: dict[int, str] = {}
        self._last_cron_minute: Any = None
        self.rounds: list[dict[str, Any]] = []

    def run(self) -> list[dict[str, Any]]:
        from flwr.app import ArrayRecord, ConfigRecord

        model = new_model(self.plan)
        arrays = ArrayRecord(model.get_weights())
        version = 0
        if self.plan.hello:
            self._hello()
        for round_number in range(1, self.plan.rounds + 1):
            if self.plan.schedule is not None:
                self.wait_until_due(round_number)
            started = time.perf_counter()
            config = ConfigRecord({"model-version": version, "lr": self.plan.model.lr})
            messages = list(self.strategy.configure_train(round_number, arrays, config,
                                                          self.grid))
            asked = {m.metadata.dst_node_id for m in messages}
            self.wire.write("to-client", messages)
            replies = list(self.grid.send_and_receive(messages,
                                                      timeout=self.plan.round_timeout))
            self.wire.write("to-server", replies)
            bytes_exchanged = array_bytes(messages) + array_bytes(replies)
            trained = [r for r in replies if not r.has_error()]
            aggregated, _ = (self.strategy.aggregate_train(round_number, replies)
                             if len(trained) >= self.plan.min_clients else (None, None))
            trained_at = time.perf_counter()
            reports, updates = self._reports(replies, asked, messages)
            self.fleet.record(round_number, reports)
            record: dict[str, Any] = {"round": round_number, "asked": len(asked),
                                      "answered": len(trained),
                                      "missing": [r["client"] for r in reports
                                                  if r["status"] != "ok"],
                                      "errors": {r["client"]: r["error"] for r in reports
                                                 if r.get("error")}}
            if aggregated is None:  # too few answers: the global model stays as it was
                record.update(status="skipped", seconds=time.perf_counter() - started,
                              bytes=bytes_exchanged)
                self._finish_round(record)
                continue
            arrays = aggregated
            evaluation, eval_bytes = self._evaluate(round_number, arrays)
            evaluated_at = time.perf_counter()
            model.set_weights(arrays.to_numpy_ndarrays())
            metrics = {k: v for k, v in evaluation.items() if k in ("mse", "mae")}
            outcome = self.lifecycle.record(round_number, model, updates, metrics,
                                            record["missing"])
            version = outcome.version
            record.update(status="ok", version=outcome.version, promoted=outcome.promoted,
                          promotion=outcome.reason, ledger_seq=outcome.entry.seq,
                          bytes=bytes_exchanged + eval_bytes,
                          train_seconds=trained_at - started,
                          eval_seconds=evaluated_at - trained_at,
                          lifecycle_seconds=time.perf_counter() - evaluated_at,
                          seconds=time.perf_counter() - started,
                          global_digest=weights_digest(arrays.to_numpy_ndarrays()),
                          **evaluation)
            self._finish_round(record)
        return self.rounds

    def wait_until_due(self, round_number: int) -> None:
        """Block until the plan's schedule says the next round is due: the clock matches
        its cron expression (once per matching minute), or enough clients answer a query
        with enough new rows. Every query's answers go to the fleet table."""
        from datetime import datetime

        schedule = self.plan.schedule
        assert schedule is not None
        while True:
            now = datetime.now()
            minute = now.replace(second=0, microsecond=0)
            if schedule.cron is not None and minute != self._last_cron_minute \
                    and Cron.parse(schedule.cron).matches(now):
                self._last_cron_minute = minute
                return
            if schedule.min_new_rows is not None:
                new_rows = self._query_new_rows(round_number)
                ready = sum(1 for count in new_rows.values() if count >= schedule.min_new_rows)
                if ready >= schedule.min_clients:
                    return
            time.sleep(self.plan.poll_seconds)

    def _hello(self) -> None:
        """Ask every connected client for a health report before the first round: the fleet
        table starts with them, and the server learns which client each node is (a client
        that never answers a round is then still named in the round's record)."""
        deadline = time.monotonic() + self.plan.round_timeout
        while (len(list(self.grid.get_node_ids())) < self.plan.min_clients
               and time.monotonic() < deadline):
            time.sleep(1.0)
        self._query_new_rows(1)

    def _query_new_rows(self, round_number: int) -> dict[str, int]:
        from flwr.app import Message, RecordDict

        messages = [Message(RecordDict(), dst_node_id=node, message_type="query")
                    for node in self.grid.get_node_ids()]
        replies = list(self.grid.send_and_receive(messages, timeout=self.plan.round_timeout))
        reports, _ = self._reports(replies, {m.metadata.dst_node_id for m in messages},
                                   messages, with_updates=False)
        self.fleet.record(round_number - 1, reports)
        return {r["client"]: int(r["metrics"].get("health.new_rows", 0))
                for r in reports if r["status"] == "ok"}

    def _reports(self, replies: list[Any], asked: set[int], messages: list[Any], *,
                 with_updates: bool = True
                 ) -> tuple[list[dict[str, Any]], list[ClientUpdate]]:
        reports, updates = [], []
        answered = set()
        # an error reply the SuperLink writes for an unreachable node comes from the
        # SuperLink: the message it answers says which node it was meant for
        sent_to = {m.metadata.message_id: m.metadata.dst_node_id for m in messages}
        for reply in replies:
            node = sent_to.get(reply.metadata.reply_to_message_id,
                               reply.metadata.src_node_id)
            answered.add(node)
            name = _client_name(reply, self.names, node)
            if reply.has_error():
                reason = reply.error.reason or ""
                # the client declined (outside its window), its node is gone (the
                # SuperLink answers for a node that missed its heartbeats), or it failed
                status = ("unavailable" if "availability window" in reason else
                          "missing" if "Node Unavailable" in reason else "error")
                reports.append({"client": name, "node_id": node, "status": status,
                                "error": reason})
                continue
            metrics = dict(next(iter(reply.content.metric_records.values())))
            reports.append({"client": name, "node_id": node, "status": "ok",
                            "metrics": metrics})
            if not with_updates:
                continue
            weights = next(iter(reply.content.array_records.values())).to_numpy_ndarrays()
            updates.append(ClientUpdate(name, str(node), weights_digest(weights),
                                        int(metrics.get("num-examples", 0)),
                                        metrics.get("health.local_loss")))
        for node in sorted(asked - answered):  # no reply within the round timeout
            reports.append({"client": self.names.get(node, f"node-{node}"), "node_id": node,
                            "status": "missing",
                            "error": f"no reply within {self.plan.round_timeout:g} s"})
        return reports, updates

    def _evaluate(self, round_number: int, arrays: Any) -> tuple[dict[str, Any], int]:
        from flwr.app import ConfigRecord

        messages = list(self.strategy.configure_evaluate(round_number, arrays, ConfigRecord(),
                                                         self.grid))
        replies = list(self.grid.send_and_receive(messages, timeout=self.plan.round_timeout))
        self.wire.write("to-client", messages)
        self.wire.write("to-server", replies)
        clients: dict[str, dict[str, float]] = {}
        for reply in replies:
            if reply.has_error():
                continue
            metrics = dict(next(iter(reply.content.metric_records.values())))
            clients[_client_name(reply, self.names)] = {k: float(v) for k, v in metrics.items()}
        total = sum(c.get("num-examples", 0) for c in clients.values())
        result: dict[str, Any] = {"clients": clients}
        if total:
            for key in ("mse", "mae"):
                result[key] = sum(c[key] * c["num-examples"] for c in clients.values()
                                  if key in c) / total
        return result, array_bytes(messages) + array_bytes(replies)

    def _finish_round(self, record: dict[str, Any]) -> None:
        self.rounds.append(record)
        if self.results_path is not None:
            self.results_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.results_path.with_suffix(".tmp")
            temporary.write_text(json.dumps({"run": self.run_id, "federation": self.plan.name,
                                             "strategy": self.plan.strategy.name,
                                             "rounds": self.rounds}, indent=1, default=str))
            temporary.replace(self.results_path)

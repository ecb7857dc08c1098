"""The peer of benchmarks/federated.py: a plain Flower app, no AMML, doing the same work.

Each client reads its station's CSV, fills gaps linearly, z-scores with the first 70% of the
rows, cuts the same 70/10/20 split with the same 96-row overlap, and trains the same NLinear
network (one ``Linear(lookback, horizon)`` on the window minus its last value) with Adam for
the same local epochs; evaluation scores the test windows. The server runs Flower's
``FedAvg.start`` and writes each round's end time. The benchmark copies this file into a
Flower app folder of its own (it imports nothing of AMML).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

client = ClientApp()
server = ServerApp()


def _tables(context: Context) -> dict[str, np.ndarray]:
    rc = context.run_config
    target, lookback = str(rc["target"]), int(rc["lookback"])
    series = pd.read_csv(str(context.node_config["params.path"]))[target]
    values = series.interpolate(limit_direction="both").to_numpy(np.float64)
    fit = values[: int(len(values) * 0.7)]
    values = (values - fit.mean()) / (fit.std(ddof=1) or 1.0)
    n_train, n_val = int(len(values) * 0.7), int(len(values) * 0.1)
    return {"train": values[:n_train],
            "test": values[n_train + n_val - lookback:]}


def _windows(values: np.ndarray, lookback: int, horizon: int) -> tuple[torch.Tensor, ...]:
    view = np.lib.stride_tricks.sliding_window_view(values.astype(np.float32),
                                                    lookback + horizon)
    return torch.from_numpy(view[:, :lookback].copy()), torch.from_numpy(
        view[:, lookback:].copy())


class NLinear(torch.nn.Module):
    def __init__(self, lookback: int, horizon: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(lookback, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x[:, -1:]
        return self.linear(x - last) + last


def _net(context: Context, arrays: ArrayRecord) -> NLinear:
    net = NLinear(int(context.run_config["lookback"]), int(context.run_config["horizon"]))
    weights = arrays.to_numpy_ndarrays()
    net.load_state_dict({k: torch.from_numpy(np.array(w)) for k, w in
                         zip(net.state_dict(), weights, strict=True)})
    return net


@client.train()
def train(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    rc = context.run_config
    x, y = _windows(_tables(context)["train"], int(rc["lookback"]), int(rc["horizon"]))
    net = _net(context, msg.content["arrays"])
    optimizer = torch.optim.Adam(net.parameters(), lr=float(rc["lr"]))
    batch = int(rc["batch-size"])
    generator = torch.Generator().manual_seed(int(rc["seed"]))
    for _ in range(int(rc["epochs"])):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            index = order[start : start + batch]
            optimizer.zero_grad()
            loss = torch.mean((net(x[index]) - y[index]) ** 2)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        train_loss = float(torch.mean((net(x) - y) ** 2))
    arrays = ArrayRecord([v.detach().numpy() for v in net.state_dict().values()])
    metrics = MetricRecord({"num-examples": len(x), "train_loss": train_loss})
    return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)


@client.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    rc = context.run_config
    x, y = _windows(_tables(context)["test"], int(rc["lookback"]), int(rc["horizon"]))
    net = _net(context, msg.content["arrays"])
    with torch.no_grad():
        error = net(x) - y
    metrics = MetricRecord({"num-examples": len(x), "mse": float(torch.mean(error**2)),
                            "mae": float(torch.mean(error.abs()))})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


@server.main()
def main(grid: Grid, context: Context) -> None:
    rc = context.run_config
    torch.manual_seed(int(rc["seed"]))
    net = NLinear(int(rc["lookback"]), int(rc["horizon"]))
    clients = int(rc["min-clients"])
    strategy = FedAvg(min_train_nodes=clients, min_evaluate_nodes=clients,
                      min_available_nodes=clients)
    stamps: list[float] = []

    def stamp(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        stamps.append(time.perf_counter())  # called before round 1 and after each round
        return None

    result = strategy.start(
        grid=grid, initial_arrays=ArrayRecord([v.numpy() for v in net.state_dict().values()]),
        num_rounds=int(rc["rounds"]), timeout=float(rc["round-timeout"]), evaluate_fn=stamp)
    with open(str(rc["results"]), "w") as out:
        json.dump({"round_seconds": np.diff(stamps).tolist(),
                   "mse": {str(k): dict(v) for k, v in
                           result.evaluate_metrics_clientapp.items()}}, out)

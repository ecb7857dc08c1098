"""Federated PM2.5 forecasting across Beijing's stations with Flower's Deployment Runtime.

Each of the eight stations of ``air_quality/`` is a client: it runs the same AMML workflow
on its own CSV (``source.csv`` → ``preprocess``: linear fill of the real gaps, z-score fitted
on the first 70% → ``split`` 70/10/20 with a 96-row overlap) and trains NLinear (96 h back,
24 h ahead, PM2.5 alone) from the global weights. In one run:

* local-only: each station alone, ``rounds * epochs`` epochs from the same initial weights;
* centralized: the stations' windows pooled (the privacy-breaking upper bound), the same
  number of epochs;
* FedAvg and FedProx: AMML's ServerApp and ClientApp on a real ``flower-superlink`` and eight
  ``flower-supernode`` processes on loopback; each round registered (alias ``challenger``),
  promoted by the policy, and served: ``amml serve`` follows ``pm25@challenger`` under a
  steady request load during the FedAvg run, and every failed request is counted;
* a plain Flower app (``benchmarks/federated_plain_app.py``, no AMML) doing the same local
  training and evaluation on the same SuperLink and SuperNodes: AMML's overhead per round is
  its round time over the plain app's;
* a dropout run: FedAvg again, one SuperNode SIGKILLed while it trains in round 2.

Every method is scored on each station's test windows in z-score units of that station;
the mean is over stations. Prints per-station lines and::

    federated strategy=NAME mse=... centralized_mse=... local_mse=... rounds=...
        bytes_per_round=... overhead_pct=... dropout_ok=yes|no

    nice -n 10 python benchmarks/federated.py [--data DIR] [--rounds 3] [--epochs 1]
        [--stations 8] [--max-rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from amml.federated.client import (
    ClientIdentity,
    evaluate_locally,
    load_client_data,
    new_model,
    train_locally,
)
from amml.federated.deployment import Deployment, free_ports, stop_process
from amml.federated.spec import FederationSpec
from amml.ops.models.contract import Training
from amml.ops.transforms.windows import sliding_windows
from amml.registry import ModelRegistry
from amml.store import open_store

LOOKBACK, HORIZON, TARGET = 96, 24, "PM2.5"
WORKFLOW = """\
name: station-pm25
params: {path: station.csv}
steps:
  raw:
    op: source.csv
    with: {path: "${params.path}", columns: ["PM2.5"]}
  clean:
    op: preprocess
    inputs: {table: raw}
    with: {fill: linear, scale: zscore, fit_fraction: 0.7}
  splits:
    op: split
    inputs: {table: clean}
    with: {train: 0.7, val: 0.1, overlap: 96}
"""


def station_files(data: Path, count: int, max_rows: int | None, scratch: Path) -> dict[str, Path]:
    files = sorted(data.glob("PRSA_Data_*.csv"))[:count]
    if not files:
        raise SystemExit(f"no PRSA_Data_*.csv under {data}")
    stations = {}
    for path in files:
        name = path.name.split("_")[2].lower()
        if max_rows:  # a development run: the first rows only, written to the scratch folder
            lines = path.read_text().splitlines()[: max_rows + 1]
            path = scratch / path.name
            path.write_text("\n".join(lines) + "\n")
        stations[name] = path
    return stations


def make_plan(root: Path, stations: dict[str, Path], strategy: str, rounds: int, epochs: int,
              timeout: float) -> FederationSpec:
    return FederationSpec.model_validate({
        "name": "pm25", "workflow": str(root / "workflow.yaml"),
        "model": {"kind": "nlinear", "target": TARGET, "lookback": LOOKBACK,
                  "horizon": HORIZON, "epochs": epochs, "lr": 0.005, "batch_size": 64},
        "strategy": {"name": strategy, "proximal_mu": 0.01}, "rounds": rounds,
        "min_clients": len(stations) - 1, "round_timeout": timeout, "hello": False,
        "clients": [{"name": n, "params": {"path": str(p)}} for n, p in stations.items()]})


# -- the in-process baselines ------------------------------------------------------------------
def baselines(plan: FederationSpec, deployment: Deployment, epochs: int
              ) -> tuple[dict[str, float], dict[str, float]]:
    """(local-only MSE per station, centralized MSE per station)."""
    data = {c.name: load_client_data(plan, ClientIdentity(c.name, deployment.node_home(c.name),
                                                          c.params))
            for c in plan.clients}
    initial = new_model(plan).get_weights()
    budget = plan.model_copy(update={"model": plan.model.model_copy(update={"epochs": epochs})})
    local = {}
    for name, d in data.items():
        model, _, _ = train_locally(budget, d, initial, {})
        local[name] = evaluate_locally(plan, d, model.get_weights())["mse"]
    pooled = [sliding_windows(d.train, [TARGET], [TARGET], LOOKBACK, HORIZON)
              for d in data.values()]
    pooled_val = [sliding_windows(d.val, [TARGET], [TARGET], LOOKBACK, HORIZON)
                  for d in data.values()]
    model = new_model(plan)
    model.fit(np.concatenate([x for x, _ in pooled]), np.concatenate([y for _, y in pooled]),
              np.concatenate([x for x, _ in pooled_val]),
              np.concatenate([y for _, y in pooled_val]),
              training=Training(seed=plan.model.seed, epochs=epochs, lr=plan.model.lr,
                                lr_schedule="constant", batch_size=plan.model.batch_size,
                                patience=None, device="cpu"))
    central = {name: evaluate_locally(plan, d, model.get_weights())["mse"]
               for name, d in data.items()}
    return local, central


# -- serving during the swaps ------------------------------------------------------------------
class ServingProbe:
    """``amml serve`` following pm25@challenger (the alias every round moves; ``champion``
    moves only when the policy promotes), asked for a forecast every 20 ms."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_ports(1)[0]
        self.requests = self.failed = 0
        self.versions: set[str] = set()
        self.stop = threading.Event()
        self.server: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None

    def start_when_registered(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():  # the first round's version must exist first
            with open_store(self.home) as store:
                if ModelRegistry(store).alias_version("pm25", "challenger") is not None:
                    break
            time.sleep(1)
        if self.stop.is_set():
            return
        env = {**os.environ, "AMML_HOME": str(self.home)}
        self.server = subprocess.Popen(
            [sys.executable, "-m", "amml.cli", "serve", "--model", "pm25@challenger", "--port",
             str(self.port), "--no-auth", "--no-log", "--poll-interval", "0.25", "--home",
             str(self.home)], env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            try:
                if urllib.request.urlopen(url + "/readyz", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        body = json.dumps({"window": list(np.sin(np.arange(LOOKBACK) / 5.0))}).encode()
        while not self.stop.is_set():
            request = urllib.request.Request(url + "/v1/models/pm25/forecast", data=body,
                                             headers={"Content-Type": "application/json"})
            self.requests += 1
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    self.versions.add(response.headers.get("X-Model-Version", "?"))
                    if response.status != 200:
                        self.failed += 1
            except OSError:
                self.failed += 1
            time.sleep(0.02)

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        if self.server is not None:
            stop_process(self.server.pid)


# -- the federated runs ------------------------------------------------------------------------
def run_amml(deployment: Deployment, plan: FederationSpec, root: Path, label: str,
             timeout: float, kill: str | None = None) -> dict[str, Any]:
    results = root / f"results-{label}.json"
    store = root / f"store-{label}"
    process = deployment.submit(plan, results=results, store=store)
    killed = False
    try:
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if kill and not killed and results.exists() and \
                    len(json.loads(results.read_text())["rounds"]) >= 1:
                log = deployment.folder / "logs" / f"supernode-{kill}.log"
                starts = log.read_text(errors="replace").count("Start `flwr-clientapp`")
                if starts >= 3:  # round 1 train + evaluate, then round 2's training began
                    deployment.stop_node(kill, kill=True)
                    killed = True
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            stop_process(process.pid)
    document = json.loads(results.read_text())
    document["killed"] = killed
    return document


def run_plain(deployment: Deployment, plan: FederationSpec, root: Path, timeout: float
              ) -> dict[str, Any]:
    app = root / "plain-app"
    app.mkdir(exist_ok=True)
    shutil.copy(Path(__file__).with_name("federated_plain_app.py"), app / "plain_app.py")
    results = root / "results-plain.json"
    config = {"rounds": plan.rounds, "epochs": plan.model.epochs, "lr": plan.model.lr,
              "batch-size": plan.model.batch_size, "seed": plan.model.seed,
              "lookback": LOOKBACK, "horizon": HORIZON, "target": TARGET,
              "min-clients": len(plan.clients), "round-timeout": plan.round_timeout,
              "results": str(results)}
    (app / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "plain-pm25"\nversion = "1.0.0"\ndependencies = []\n\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["."]\n\n'
        '[tool.flwr.app]\npublisher = "bench"\n\n[tool.flwr.app.components]\n'
        'serverapp = "plain_app:server"\nclientapp = "plain_app:client"\n\n'
        '[tool.flwr.app.config]\n' + "".join(f"{k} = {json.dumps(v)}\n"
                                             for k, v in config.items()))
    empty = root / "plain-run-config.toml"
    empty.write_text("")
    process = deployment.submit(plan, results=results, app=app, run_config=empty)
    try:
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            stop_process(process.pid)
    return json.loads(results.read_text())


def overhead_only(deployment: Deployment, plan: FederationSpec, root: Path,
                  timeout: float) -> None:
    """AMML, plain, AMML, plain on one deployment: drifts in the machine's load hit both."""
    amml_rounds: list[float] = []
    plain_rounds: list[float] = []
    try:
        deployment.up(plan.clients)
        for turn in range(2):
            document = run_amml(deployment, plan, root, f"overhead-{turn}", timeout)
            amml_rounds += [r["seconds"] for r in document["rounds"]]
            plain_rounds += run_plain(deployment, plan, root, timeout)["round_seconds"]
    finally:
        deployment.down()
    amml_round, plain_round = float(np.mean(amml_rounds)), float(np.mean(plain_rounds))
    print(f"federated overhead amml_round_seconds={','.join(f'{s:.1f}' for s in amml_rounds)} "
          f"plain_round_seconds={','.join(f'{s:.1f}' for s in plain_rounds)} "
          f"overhead_pct={100 * (amml_round - plain_round) / plain_round:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2]
                        / "shared" / "datasets" / "air_quality")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1, help="local epochs per round")
    parser.add_argument("--stations", type=int, default=8)
    parser.add_argument("--max-rows", type=int, default=None,
                        help="first rows of each station only (development runs)")
    parser.add_argument("--round-timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--overhead-only", action="store_true",
                        help="only AMML's FedAvg and the plain Flower app, alternately "
                             "(a quicker measurement of the overhead alone)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="amml-federated-bench-"))
    stations = station_files(args.data, args.stations, args.max_rows, root)
    (root / "workflow.yaml").write_text(WORKFLOW)
    fedavg = make_plan(root, stations, "fedavg", args.rounds, args.epochs, args.round_timeout)
    fedprox = make_plan(root, stations, "fedprox", args.rounds, args.epochs, args.round_timeout)
    env = {"AMML_KEY_DIR": str(root / "keys"), "AMML_HOME": str(root / "amml")}
    os.environ.update(env)
    deployment = Deployment(root / "deployment", env=env)
    run_timeout = args.rounds * args.round_timeout * 3 + 600
    print(f"federated setup stations={len(stations)} rounds={args.rounds} "
          f"local_epochs={args.epochs} model=nlinear lookback={LOOKBACK} horizon={HORIZON} "
          f"rows={'all' if not args.max_rows else args.max_rows} scratch={root}", flush=True)
    if args.overhead_only:
        overhead_only(deployment, fedavg, root, run_timeout)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        return
    probe = ServingProbe(root / "store-fedavg")
    try:
        started = time.perf_counter()
        deployment.up(fedavg.clients)
        print(f"federated deployment_up_s={time.perf_counter() - started:.1f}", flush=True)
        probe.start_when_registered()
        amml_avg = run_amml(deployment, fedavg, root, "fedavg", run_timeout)
        probe.close()
        amml_prox = run_amml(deployment, fedprox, root, "fedprox", run_timeout)
        plain = run_plain(deployment, fedavg, root, run_timeout)
        local, central = baselines(fedavg, deployment, args.rounds * args.epochs)
        victim = list(stations)[-1]
        dropout = run_amml(deployment, fedavg, root, "dropout", run_timeout, kill=victim)
    finally:
        probe.close()
        deployment.down()

    plain_round = float(np.mean(plain["round_seconds"]))
    for label, document in (("fedavg", amml_avg), ("fedprox", amml_prox)):
        last = document["rounds"][-1]
        per_station = {n: m["mse"] for n, m in last["clients"].items()}
        for name in stations:
            mae = last["clients"][name]["mae"]
            print(f"federated station={name} strategy={label} mse={per_station[name]:.4f} "
                  f"mae={mae:.4f} local_mse={local[name]:.4f} "
                  f"centralized_mse={central[name]:.4f}", flush=True)
        seconds = [r["seconds"] for r in document["rounds"]]
        print(f"federated strategy={label} round_seconds="
              f"{','.join(f'{s:.1f}' for s in seconds)} plain_round_seconds="
              f"{','.join(f'{s:.1f}' for s in plain['round_seconds'])} "
              f"lifecycle_s={np.mean([r['lifecycle_seconds'] for r in document['rounds']]):.2f}",
              flush=True)
    dropout_rounds = dropout["rounds"]
    dropout_ok = (dropout["killed"] and all(r["status"] == "ok" for r in dropout_rounds)
                  and any(victim in r["missing"] for r in dropout_rounds))
    print(f"federated serving requests={probe.requests} failed={probe.failed} "
          f"versions_seen={','.join(sorted(probe.versions))}", flush=True)
    plain_mse = np.mean([float(v["mse"]) for v in [plain["mse"][str(args.rounds)]]])
    print(f"federated plain_flower mse={plain_mse:.4f} "
          f"round_s={plain_round:.2f}", flush=True)
    for label, document in (("fedavg", amml_avg), ("fedprox", amml_prox)):
        last = document["rounds"][-1]
        mse = float(np.mean([m["mse"] for m in last["clients"].values()]))
        mae = float(np.mean([m["mae"] for m in last["clients"].values()]))
        amml_round = float(np.mean([r["seconds"] for r in document["rounds"]]))
        overhead = 100 * (amml_round - plain_round) / plain_round
        central_mse = float(np.mean(list(central.values())))
        local_mse = float(np.mean(list(local.values())))
        print(f"federated strategy={label} mse={mse:.4f} mae={mae:.4f} "
              f"centralized_mse={central_mse:.4f} local_mse={local_mse:.4f} "
              f"ratio_centralized={mse / central_mse:.3f} ratio_local={mse / local_mse:.3f} "
              f"rounds={len(document['rounds'])} "
              f"bytes_per_round={np.mean([r['bytes'] for r in document['rounds']]):.0f} "
              f"round_s={amml_round:.2f} overhead_pct={overhead:.1f} "
              f"dropout_ok={'yes' if dropout_ok else 'no'}", flush=True)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""What a federated client does with a message: its data through its workflow, local
training from the global weights, evaluation, and a health report.

The client's data never leaves it: it runs the federation's workflow (source → preprocess →
split) with its own parameters against its own store (cached, so later rounds read the
prepared tables back), cuts windows, and trains a model of the federation's kind through the
model contract (``set_weights`` → ``fit`` → ``get_weights``). Only the weights, the number of
windows and a few summary numbers go back.

Flower starts a fresh ClientApp process per message, so everything here is per call; what a
client remembers between rounds (the rows it had last time) is a small JSON file in its home.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from amml._exceptions import ClientUnavailable, ConfigurationError, OpError
from amml._lazy import pandas as pd
from amml.federated.schedule import AvailabilityWindow
from amml.federated.spec import FederationSpec
from amml.ops.models.contract import ForecastModel, Training, make_model
from amml.ops.transforms.windows import sliding_windows


@dataclass
class ClientData:
    """A client's prepared tables (model units) and what its health report says of them."""

    train: pd.DataFrame
    val: pd.DataFrame | None
    test: pd.DataFrame | None
    rows: int
    newest_row_at: float | None
    run_id: str


@dataclass(frozen=True)
class ClientIdentity:
    """From the SuperNode's node config: who the client is and where its things are."""

    name: str
    home: Path
    params: dict[str, Any]
    available: str | None = None

    @classmethod
    def from_node_config(cls, config: dict[str, Any]) -> ClientIdentity:
        if "client" not in config or "home" not in config:
            raise ConfigurationError("the SuperNode's node config needs 'client' and 'home' "
                                     "(amml federated up writes them)")
        params = {k.split(".", 1)[1]: v for k, v in config.items() if k.startswith("params.")}
        available = config.get("available") or None
        return cls(str(config["client"]), Path(str(config["home"])), params,
                   str(available) if available else None)

    def check_available(self, now: datetime | None = None) -> None:
        if self.available and not AvailabilityWindow.parse(self.available).contains(
                (now or datetime.now()).time()):
            raise ClientUnavailable(f"client '{self.name}' is outside its availability "
                                    f"window {self.available}")


def inputs_fingerprint(plan: FederationSpec, me: ClientIdentity) -> str | None:
    """What the client's prepared tables depend on, cheaply: the workflow file's bytes, the
    client's parameters, the size and modification time of every file a parameter names and
    of every AMML source file, and the data mapping. None (always run the workflow) when the
    workflow imports code of its own, which this cannot see."""
    import hashlib

    import amml

    workflow = Path(str(plan.workflow))
    text = workflow.read_bytes()
    if workflow.suffix == ".py" or b"imports:" in text:
        return None
    digest = hashlib.sha256(text)
    digest.update(json.dumps([me.params, plan.data], sort_keys=True, default=str).encode())
    files = [Path(v) for v in me.params.values() if isinstance(v, str) and Path(v).is_file()]
    files += sorted(Path(amml.__file__).parent.rglob("*.py"))
    for path in files:
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def load_client_data(plan: FederationSpec, me: ClientIdentity) -> ClientData:
    """Run the federation's workflow on this client's data, in its own store.

    Flower starts a process per message, and the engine's start (its imports, the store's
    schema check, the code fingerprints) costs seconds of each; so when nothing the tables
    depend on changed since the last run (:func:`inputs_fingerprint`), the tables that run
    stored are read back from the artifact store by digest (each read verifies its sha256),
    without the engine."""
    if not plan.workflow:
        raise ConfigurationError("the federation names no workflow")
    me.home.mkdir(parents=True, exist_ok=True)
    fingerprint = inputs_fingerprint(plan, me)
    prepared = me.home / "prepared.json"
    tables: dict[str, Any] | None = None
    run_id = ""
    try:
        last = json.loads(prepared.read_text())
    except (OSError, ValueError):
        last = {}
    if fingerprint is not None and last.get("fingerprint") == fingerprint:
        from amml._exceptions import ArtifactCorruptError, ArtifactNotFoundError
        from amml.store import ArtifactRef
        from amml.store.artifacts import open_artifact_store

        artifacts = open_artifact_store(str(me.home / "artifacts"))
        try:
            tables = {role: artifacts.load(ArtifactRef.from_json(ref))
                      for role, ref in last["outputs"].items()}
            run_id = str(last.get("run_id", ""))
        except (ArtifactCorruptError, ArtifactNotFoundError, OSError):
            tables = None  # the engine rebuilds what is missing or damaged
    if tables is None:
        tables, run_id, refs = _run_client_workflow(plan, me)
        if fingerprint is not None:
            prepared.write_text(json.dumps({"fingerprint": fingerprint, "run_id": run_id,
                                            "outputs": refs}))
    train = tables["train"]
    parts = [t for t in (train, tables.get("val"), tables.get("test")) if t is not None]
    index = parts[-1].index
    newest = (float(index.max().timestamp()) if isinstance(index, pd.DatetimeIndex)
              and len(index) else None)
    rows = len(pd.concat(parts).index.unique())
    return ClientData(train, tables.get("val"), tables.get("test"), rows, newest, run_id)


def _run_client_workflow(plan: FederationSpec, me: ClientIdentity
                         ) -> tuple[dict[str, Any], str, dict[str, Any]]:
    from amml.engine import run_workflow
    from amml.store import open_store

    with open_store(me.home) as store:
        result = run_workflow(str(plan.workflow), me.params, store=store)
        tables: dict[str, Any] = {}
        refs: dict[str, Any] = {}
        for role, reference in plan.data.items():
            step, _, output = reference.partition(".")
            if step not in result.steps:
                raise ConfigurationError(f"data.{role}: the workflow has no step '{step}' "
                                         f"(steps: {', '.join(result.steps)})")
            outputs = result.steps[step].outputs
            name = output or next(iter(outputs))
            if name not in outputs:
                raise ConfigurationError(f"data.{role}: step '{step}' has no output '{name}' "
                                         f"(outputs: {', '.join(outputs)})")
            refs[role] = outputs[name].to_json()
            tables[role] = result.output(step, name)
    return tables, result.run_id, refs


def new_model(plan: FederationSpec) -> ForecastModel:
    """A fresh model of the federation's kind (the server's initial weights come from it)."""
    m = plan.model
    columns, outputs = m.columns()
    model = make_model(m.kind, lookback=m.lookback, horizon=m.horizon, columns=columns,
                       outputs=outputs, options=m.options)
    model.reset(m.seed)
    return model


def _windows(plan: FederationSpec, table: pd.DataFrame | None
             ) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    if table is None or len(table) < plan.model.lookback + plan.model.horizon:
        return None, None
    columns, outputs = plan.model.columns()
    return sliding_windows(table, columns, outputs, plan.model.lookback, plan.model.horizon)


def train_locally(plan: FederationSpec, data: ClientData, weights: list[np.ndarray],
                  config: dict[str, Any]) -> tuple[ForecastModel, int, float]:
    """Train from the global ``weights``: (model, training windows, last training loss)."""
    model = new_model(plan)
    model.set_weights(weights)
    x, y = _windows(plan, data.train)
    if x is None:
        raise OpError(f"the training table has {len(data.train)} rows, fewer than lookback + "
                      f"horizon ({plan.model.lookback} + {plan.model.horizon})")
    vx, vy = _windows(plan, data.val)
    mu = float(config.get("proximal-mu", 0.0) or 0.0)
    m = plan.model
    training = Training(seed=m.seed + int(config.get("server-round", 0)), epochs=m.epochs,
                        lr=float(config.get("lr", m.lr)), lr_schedule="constant",
                        batch_size=m.batch_size, patience=None, device="cpu",
                        extra={"proximal_mu": mu} if mu > 0 else {})
    _one_thread()
    model.fit(x, y, vx, vy, training=training)
    loss = float(np.mean((model.predict_windows(x) - y) ** 2))
    return model, len(x), loss


def _one_thread() -> None:
    """One intra-op thread: a client shares its machine, and many threads of small matrix
    products mostly wait on each other."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def evaluate_locally(plan: FederationSpec, data: ClientData, weights: list[np.ndarray]
                     ) -> dict[str, float]:
    """MSE and MAE of the global ``weights`` on this client's test table (val without one)."""
    model = new_model(plan)
    model.set_weights(weights)
    x, y = _windows(plan, data.test if data.test is not None else data.val)
    if x is None:
        return {"num-examples": 0}
    _one_thread()
    error = model.predict_windows(x) - y
    return {"num-examples": len(x), "mse": float(np.mean(error**2)),
            "mae": float(np.mean(np.abs(error)))}


class HealthProbe:
    """CPU over the handling of one message, the process's memory, and the rows the client
    holds against the rows it held at its previous report."""

    def __init__(self, me: ClientIdentity) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)  # starts the measurement interval
        self.me = me
        self.started = time.time()

    def report(self, data: ClientData | None, loss: float | None,
               model_version: int | None, *, trained: bool = True) -> dict[str, float]:
        """The health metrics; ``trained``: the rows held now count as trained on (a query
        reports new rows without resetting the count)."""
        state_file = self.me.home / "fleet_state.json"
        try:
            previous = json.loads(state_file.read_text()).get("rows", 0)
        except (OSError, ValueError):
            previous = 0
        rows = data.rows if data is not None else 0
        metrics: dict[str, float] = {
            "health.cpu_percent": float(self._process.cpu_percent(None)),
            "health.memory_mb": float(self._process.memory_info().rss / 2**20),
            "health.rows": float(rows),
            "health.new_rows": float(max(rows - previous, 0)),
            "health.reported_at": time.time(),
        }
        if data is not None and data.newest_row_at is not None:
            metrics["health.newest_row_at"] = data.newest_row_at
        if loss is not None:
            metrics["health.local_loss"] = float(loss)
        if model_version is not None:
            metrics["health.model_version"] = float(model_version)
        if data is not None and trained:
            state_file.write_text(json.dumps({"rows": rows}))
        return metrics

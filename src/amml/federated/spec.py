"""A federation's plan: which workflow each client runs, the model, the strategy, the rounds.

The plan is the ``federated:`` section of a YAML file (the workflow language itself is left
as it is: the section lives in a file of its own, by default ``NAME.federated.yaml`` beside
``NAME.yaml``, and names the workflow every client runs on its own data)::

    federated:
      name: air-quality                 # ledger and registry names derive from it
      data: {train: splits.train, val: splits.val, test: splits.test}
      model: {kind: nlinear, target: PM2.5, lookback: 96, horizon: 24, epochs: 1}
      strategy: fedavg                  # fedavg | fedprox | fedadam
      rounds: 3
      min_clients: 2
      round_timeout: 120
      clients:
        - {name: aotizhongxin, params: {path: data/aotizhongxin.csv}}
        - {name: dongsi, params: {path: data/dongsi.csv}, available: "22:00-06:00"}
      schedule: {cron: "0 */6 * * *"}   # or {min_new_rows: 24, min_clients: 2}

>>> plan = FederationSpec.model_validate({"name": "demo", "model": {"target": "y"},
...     "clients": [{"name": "a"}, {"name": "b"}]})
>>> plan.strategy.name, plan.rounds, plan.min_clients, plan.model.kind
('fedavg', 3, 2, 'nlinear')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from amml._exceptions import ConfigurationError
from amml.federated.schedule import AvailabilityWindow, Schedule
from amml.store.model_names import NAME

StrategyName = Literal["fedavg", "fedprox", "fedadam"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StrategySpec(_Strict):
    """Flower's server-side strategy and its knobs."""

    name: StrategyName = "fedavg"
    proximal_mu: float = Field(0.1, ge=0, description="FedProx: weight of the proximal term")
    eta: float = Field(0.01, gt=0, description="FedAdam: server learning rate")
    eta_l: float = Field(0.01, gt=0, description="FedAdam: client learning rate (reported)")
    tau: float = Field(1e-3, gt=0, description="FedAdam: adaptivity")


class ModelSpec(_Strict):
    """What each client trains from the global weights (any registered model kind)."""

    kind: str = "nlinear"
    target: str
    features: list[str] | None = Field(None, description="input columns (MS); default: the "
                                                         "target alone (S)")
    lookback: int = Field(96, ge=1)
    horizon: int = Field(24, ge=1)
    epochs: int = Field(1, ge=1, description="local epochs per round")
    lr: float = Field(0.005, gt=0)
    batch_size: int = Field(64, ge=1)
    seed: int = 2021
    options: dict[str, Any] = Field(default_factory=dict)

    def columns(self) -> tuple[list[str], list[str]]:
        """(input columns, output columns)."""
        if not self.features:
            return [self.target], [self.target]
        columns = list(self.features)
        if self.target not in columns:
            columns.append(self.target)
        return columns, [self.target]


class ClientSpec(_Strict):
    name: str = Field(pattern=NAME.pattern)
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="workflow parameters of this client (its data)")
    available: str | None = Field(None, description="HH:MM-HH:MM when it may train (local "
                                                    "time); default always")

    @field_validator("available")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                AvailabilityWindow.parse(value)
            except ConfigurationError as exc:  # pydantic reports ValueErrors with the field
                raise ValueError(str(exc)) from None
        return value


class RegisterSpec(_Strict):
    name: str | None = Field(None, pattern=NAME.pattern, description="registry name; "
                                                                     "default: the federation's")
    metric: str = "mse"
    promote: bool = True


class FederationSpec(_Strict):
    name: str = Field(pattern=NAME.pattern)
    workflow: str | None = Field(None, description="the workflow each client runs (default: "
                                                   "the file given on the command line)")
    data: dict[str, str] = Field(
        default_factory=lambda: {"train": "splits.train", "val": "splits.val",
                                 "test": "splits.test"},
        description="the workflow outputs (STEP.OUTPUT) that are a client's train, val and "
                    "test tables")
    model: ModelSpec
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    rounds: int = Field(3, ge=1)
    min_clients: int = Field(2, ge=1)
    round_timeout: float = Field(120.0, gt=0)
    clients: list[ClientSpec] = Field(default_factory=list)
    schedule: Schedule | None = None
    registry: RegisterSpec = Field(default_factory=RegisterSpec, alias="register")
    hello: bool = Field(True, description="ask every client for a health report before "
                                          "round 1 (names clients that never answer a round)")
    poll_seconds: float = Field(30.0, gt=0, description="how often a scheduled federation "
                                                         "checks whether a round is due")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("data")
    @classmethod
    def _data(cls, value: dict[str, str]) -> dict[str, str]:
        if "train" not in value:
            raise ValueError("data needs at least 'train' (STEP.OUTPUT of the workflow)")
        unknown = set(value) - {"train", "val", "test"}
        if unknown:
            raise ValueError(f"data keys are train, val and test; got {sorted(unknown)}")
        return value

    @model_validator(mode="after")
    def _enough_clients(self) -> FederationSpec:
        if self.clients and self.min_clients > len(self.clients):
            raise ValueError(f"min_clients is {self.min_clients} but only "
                             f"{len(self.clients)} clients are listed")
        names = [c.name for c in self.clients]
        if len(set(names)) != len(names):
            raise ValueError("client names must be unique")
        return self

    @property
    def model_name(self) -> str:
        return self.registry.name or self.name

    @property
    def ledger_name(self) -> str:
        return f"federated-{self.name}"

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> FederationSpec:
        return cls.model_validate(json.loads(text))


def default_plan_path(workflow: str | Path) -> Path:
    """``NAME.federated.yaml`` beside ``NAME.yaml``."""
    path = Path(workflow)
    return path.with_name(path.name.split(".")[0] + ".federated.yaml")


def load_plan(path: str | Path, workflow: str | Path | None = None) -> FederationSpec:
    """Read the ``federated:`` section of ``path``; a relative ``workflow`` and relative
    client ``path`` parameters resolve from that file's folder (as in workflows)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"no federation plan at {path.resolve()} (a YAML file with a "
                                 "'federated:' section; pass it with --plan)")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("federated"), dict):
        raise ConfigurationError(f"{path}: expected a mapping with a 'federated:' section")
    section = dict(document["federated"])
    base = path.resolve().parent
    if workflow is not None:
        section["workflow"] = str(Path(workflow).resolve())
    elif section.get("workflow"):
        section["workflow"] = str((base / section["workflow"]).resolve())
    for client in section.get("clients") or []:
        params = client.get("params") if isinstance(client, dict) else None
        if isinstance(params, dict) and isinstance(params.get("path"), str):
            params["path"] = str((base / params["path"]).resolve())
    try:
        plan = FederationSpec.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(f"federated.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigurationError(f"{path}: {problems}") from None
    if not plan.workflow:
        raise ConfigurationError(f"{path}: no workflow: name it under 'federated.workflow' "
                                 "or on the command line")
    return plan

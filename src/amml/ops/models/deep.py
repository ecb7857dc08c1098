"""PyTorch forecasters as safe model artifacts, and how they are trained.

A :class:`DeepForecaster` holds one network from :mod:`amml.ops.models.nets` with its
configuration (kind, lookback, horizon, input and output columns); it is stored as
safetensors plus JSON and predicts on numpy windows. :func:`fit_deep` trains it with the
ledgered :class:`~amml.ops.models.torch_training.TorchTrainer`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amml.ops.models.nets import build
from amml.ops.models.torch_training import TorchTrainer, TrainHistory, torch
from amml.store.artifacts.model import SafetensorsModel


class DeepForecaster(SafetensorsModel):
    """(windows, lookback, len(columns)) -> (windows, horizon, len(outputs))."""

    def __init__(self, kind: str, lookback: int, horizon: int, columns: list[str],
                 outputs: list[str], individual: bool = False,
                 options: dict[str, Any] | None = None) -> None:
        self.kind, self.lookback, self.horizon = kind, lookback, horizon
        self.columns, self.outputs = list(columns), list(outputs)
        self.individual, self.options = individual, dict(options or {})
        target_index = None
        if self.outputs != self.columns:
            if len(self.outputs) != 1:
                raise ValueError("outputs must be all the columns (S, M) or one of them (MS)")
            target_index = self.columns.index(self.outputs[0])
        self.net = build(kind, lookback, horizon, len(self.columns), target_index, individual,
                         self.options)

    def predict_windows(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        self.net.eval()
        device = next(self.net.parameters()).device
        out = []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                batch = torch.as_tensor(np.array(x[start : start + batch_size],
                                                 dtype=np.float32), device=device)
                out.append(self.net(batch).cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.empty((0, self.horizon,
                                                                           len(self.outputs)))

    def get_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "lookback": self.lookback, "horizon": self.horizon,
                "columns": self.columns, "outputs": self.outputs,
                "individual": self.individual, "options": self.options}

    def get_tensors(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, np.ndarray]
                   ) -> DeepForecaster:
        model = cls(**config)
        model.net.load_state_dict({k: torch.as_tensor(v) for k, v in tensors.items()})
        return model


def fit_deep(model: DeepForecaster, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None,
             y_val: np.ndarray | None, *, seed: int, **trainer_options: Any) -> TrainHistory:
    """Train ``model.net`` in place (seeded); returns the per-epoch history."""
    torch.manual_seed(seed)
    trainer = TorchTrainer(model.net, seed=seed, **trainer_options)
    history = trainer.fit(x, y, x_val, y_val)
    model.net.to("cpu")  # artifacts and predictions live on the CPU
    return history

"""PyTorch networks for window forecasting, and their safetensors model artifact.

Imported only when a PyTorch op runs (importing torch takes a second).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amml.ops.models.torch_training import torch
from amml.store.artifacts.model import SafetensorsModel


class WindowNet(torch.nn.Module):
    def __init__(self, kind: str, lookback: int, horizon: int, hidden: int = 64) -> None:
        super().__init__()
        if kind == "linear":
            self.net = torch.nn.Linear(lookback, horizon)
        else:
            self.net = torch.nn.Sequential(torch.nn.Linear(lookback, hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(hidden, horizon))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x[:, -1:]
        return self.net(x - last) + last


class TorchForecaster(SafetensorsModel):
    """A trained :class:`WindowNet` with numpy ``predict``, stored as safetensors."""

    def __init__(self, kind: str = "linear", lookback: int = 48, horizon: int = 24,
                 hidden: int = 64) -> None:
        self.kind, self.lookback, self.horizon, self.hidden = kind, lookback, horizon, hidden
        self.net = WindowNet(kind, lookback, horizon, hidden)

    def predict(self, window: np.ndarray) -> np.ndarray:
        x = np.asarray(window, dtype=np.float32)
        single = x.ndim == 1
        with torch.no_grad():
            out = self.net(torch.as_tensor(np.atleast_2d(x)[:, -self.lookback:])).numpy()
        return out[0].astype(np.float64) if single else out.astype(np.float64)

    def get_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "lookback": self.lookback, "horizon": self.horizon,
                "hidden": self.hidden}

    def get_tensors(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, np.ndarray]
                   ) -> TorchForecaster:
        model = cls(**config)
        model.net.load_state_dict({k: torch.as_tensor(v) for k, v in tensors.items()})
        return model

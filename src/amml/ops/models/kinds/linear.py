"""``linear``: a direct multi-horizon ridge regression from the last ``lookback`` values to the
next ``horizon``, on the window minus its last value (as NLinear does), solved in closed form.

>>> import numpy as np
>>> from amml.ops.models.forecaster import Forecaster
>>> series = np.sin(np.arange(500) * 2 * np.pi / 24)
>>> model = Forecaster("linear", lookback=48, horizon=12).fit(series)
>>> future = np.sin(np.arange(500, 512) * 2 * np.pi / 24)
>>> float(np.abs(model.predict(series[-48:]) - future).max()) < 0.05
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amml.ops.models.channel import ChannelForecaster
from amml.ops.models.contract import register_kind
from amml.ops.models.onnx_export import channel_modules


@register_kind
class Linear(ChannelForecaster):
    kind = "linear"

    def __init__(self, lookback: int, horizon: int, columns: list[str] | None = None,
                 outputs: list[str] | None = None, alpha: float = 1e-3) -> None:
        super().__init__(lookback, horizon, columns, outputs)
        self.alpha = float(alpha)
        self.weights = np.zeros((self.lookback + 1, self.horizon), dtype=np.float64)

    @staticmethod
    def _design(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        last = x[:, -1:]
        return np.hstack([x - last, np.ones((len(x), 1))]), last

    def fit_channels(self, x: np.ndarray, y: np.ndarray) -> None:
        design, last = self._design(x)
        gram = design.T @ design + self.alpha * len(x) * np.eye(design.shape[1])
        self.weights = np.linalg.solve(gram, design.T @ (y - last))

    def predict_channel(self, x: np.ndarray) -> np.ndarray:
        design, last = self._design(x)
        return design @ self.weights + last

    def export_module(self) -> Any:
        return channel_modules().LastValueAffine(self.weights, self._picks())

    def get_tensors(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def load_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        self.weights = np.asarray(tensors["weights"], dtype=np.float64)

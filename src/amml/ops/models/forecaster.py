"""Small forecasters that need no deep-learning stack, with scikit-learn-like ``fit``/``predict``.

``linear`` is a direct multi-horizon ridge regression from the last ``lookback`` values to the
next ``horizon`` values, on the window normalized by its last value (as NLinear does), solved
in closed form. ``naive`` repeats the last value, ``seasonal_naive`` the last season.

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
from numpy.lib.stride_tricks import sliding_window_view

from amml._exceptions import OpError
from amml.store.artifacts.model import SafetensorsModel

KINDS = ("naive", "seasonal_naive", "linear")


def windows(series: np.ndarray, lookback: int, horizon: int, stride: int = 1
            ) -> tuple[np.ndarray, np.ndarray]:
    """Every (lookback, horizon) pair of a 1-D series, stride-1 by default."""
    series = np.asarray(series, dtype=np.float64)
    if len(series) < lookback + horizon:
        raise OpError(f"series of {len(series)} values is shorter than lookback + horizon "
                      f"({lookback} + {horizon})")
    view = sliding_window_view(series, lookback + horizon)[::stride]
    return view[:, :lookback], view[:, lookback:]


class Forecaster(SafetensorsModel):
    def __init__(self, kind: str = "linear", lookback: int = 48, horizon: int = 24,
                 season: int = 24, alpha: float = 1e-3) -> None:
        if kind not in KINDS:
            raise OpError(f"unknown forecaster '{kind}' (known: {', '.join(KINDS)})")
        self.kind, self.lookback, self.horizon = kind, lookback, horizon
        self.season, self.alpha = season, alpha
        self.weights = np.zeros((lookback + 1, horizon), dtype=np.float64)

    def fit(self, series: np.ndarray) -> Forecaster:
        if self.kind != "linear":
            return self
        x, y = windows(series, self.lookback, self.horizon)
        last = x[:, -1:]
        design = np.hstack([x - last, np.ones((len(x), 1))])
        gram = design.T @ design + self.alpha * len(x) * np.eye(design.shape[1])
        self.weights = np.linalg.solve(gram, design.T @ (y - last))
        return self

    def predict(self, window: np.ndarray) -> np.ndarray:
        """Forecast ``horizon`` values after each window; accepts one window or a batch."""
        x = np.asarray(window, dtype=np.float64)
        single = x.ndim == 1
        x = np.atleast_2d(x)[:, -self.lookback:]
        if self.kind == "naive":
            out = np.repeat(x[:, -1:], self.horizon, axis=1)
        elif self.kind == "seasonal_naive":
            season = x[:, -self.season:]
            reps = -(-self.horizon // self.season)
            out = np.tile(season, reps)[:, : self.horizon]
        else:
            last = x[:, -1:]
            design = np.hstack([x - last, np.ones((len(x), 1))])
            out = design @ self.weights + last
        return out[0] if single else out

    def get_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "lookback": self.lookback, "horizon": self.horizon,
                "season": self.season, "alpha": self.alpha}

    def get_tensors(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> Forecaster:
        model = cls(**config)
        model.weights = tensors["weights"]
        return model

"""``naive`` repeats the last value; ``seasonal_naive`` repeats the last season.

>>> import numpy as np
>>> x = np.arange(6.0).reshape(1, 6, 1)
>>> SeasonalNaive(6, 4, season=3).predict_windows(x)[0, :, 0].tolist()
[3.0, 4.0, 5.0, 3.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amml.ops.models.channel import ChannelForecaster
from amml.ops.models.contract import register_kind
from amml.ops.models.onnx_export import channel_modules


@register_kind
class Naive(ChannelForecaster):
    kind = "naive"

    def predict_channel(self, x: np.ndarray) -> np.ndarray:
        return np.repeat(x[:, -1:], self.horizon, axis=1)

    def export_module(self) -> Any:
        return channel_modules().Gathered([self.lookback - 1] * self.horizon, self._picks())

    def get_tensors(self) -> dict[str, np.ndarray]:
        return {}


@register_kind
class SeasonalNaive(ChannelForecaster):
    kind = "seasonal_naive"

    def __init__(self, lookback: int, horizon: int, columns: list[str] | None = None,
                 outputs: list[str] | None = None, season: int = 24) -> None:
        super().__init__(lookback, horizon, columns, outputs)
        self.season = int(season)

    def predict_channel(self, x: np.ndarray) -> np.ndarray:
        season = x[:, -self.season:]
        reps = -(-self.horizon // season.shape[1])
        return np.tile(season, reps)[:, : self.horizon]

    def export_module(self) -> Any:
        season = min(self.season, self.lookback)  # as predict_channel: at most the window
        start = self.lookback - season
        return channel_modules().Gathered([start + h % season for h in range(self.horizon)],
                                          self._picks())

    def get_tensors(self) -> dict[str, np.ndarray]:
        return {}

"""Forecasters that need no deep-learning stack and treat each channel on its own.

A :class:`ChannelForecaster` maps each output column's ``(N, lookback)`` history to its
``(N, horizon)`` future with :meth:`~ChannelForecaster.predict_channel`; the contract's
``(N, lookback, columns)`` windows are cut into channels here, once. For one series at a time
it also offers ``fit(series)`` and ``predict(window)`` (1-D, or a ``(N, lookback)`` batch).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amml.ops.models.contract import ForecastModel, Training
from amml.ops.models.windows import windows


class ChannelForecaster(ForecastModel):
    """Base of the numpy kinds: one ``predict_channel`` per output column, weights shared."""

    def predict_channel(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """``(N, lookback)`` float64 histories -> ``(N, horizon)`` forecasts."""
        raise NotImplementedError

    def fit_channels(self, x: np.ndarray, y: np.ndarray) -> None:
        """Learn from ``(N, lookback)`` histories and ``(N, horizon)`` futures (no-op here)."""

    def _picks(self) -> list[int]:
        return [self.columns.index(c) for c in self.outputs]

    def predict_windows(self, x: np.ndarray) -> np.ndarray:
        x = self.check_windows(x)
        if not len(x):
            return np.empty((0, self.horizon, len(self.outputs)))
        return np.stack([self.predict_channel(x[:, :, i]) for i in self._picks()], axis=2)

    def fit(self, x: np.ndarray, y: np.ndarray | None = None, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, *, training: Training | None = None) -> Any:
        """Fit on windows (the contract), or on one 1-D series when ``y`` is None (returns
        the model, for ``Forecaster(...).fit(series)``)."""
        if y is None:
            hx, hy = windows(np.asarray(x, dtype=np.float64), self.lookback, self.horizon)
            self.fit_channels(hx, hy)
            return self
        x = self.check_windows(x)
        # every output channel's windows are examples of the one shared map
        hx = np.concatenate([x[:, :, i] for i in self._picks()])
        hy = np.concatenate([np.asarray(y, dtype=np.float64)[:, :, j]
                             for j in range(len(self.outputs))])
        self.fit_channels(hx, hy)
        return {}

    def predict(self, window: np.ndarray) -> np.ndarray:
        """Forecast ``horizon`` values after each window of one series: a 1-D window or a
        ``(N, L)`` batch; only the last ``lookback`` values are used."""
        x = np.asarray(window, dtype=np.float64)
        out = self.predict_channel(np.atleast_2d(x)[:, -self.lookback:])
        return out[0] if x.ndim == 1 else out

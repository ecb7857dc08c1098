"""Sliding (lookback, horizon) windows of one series, shared by the kinds and the detectors."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from amml._exceptions import OpError


def windows(series: np.ndarray, lookback: int, horizon: int, stride: int = 1
            ) -> tuple[np.ndarray, np.ndarray]:
    """Every (lookback, horizon) pair of a 1-D series, stride-1 by default."""
    series = np.asarray(series, dtype=np.float64)
    if len(series) < lookback + horizon:
        raise OpError(f"series of {len(series)} values is shorter than lookback + horizon "
                      f"({lookback} + {horizon})")
    view = sliding_window_view(series, lookback + horizon)[::stride]
    return view[:, :lookback], view[:, lookback:]

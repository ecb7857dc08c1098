"""NAB's ``windowedGaussian`` baseline, as a detector.

>>> import numpy as np
>>> from amml.ops.detectors.base import make_detector
>>> values = np.r_[np.random.default_rng(0).normal(0, 1, 300), 9.0]
>>> bool(make_detector("windowed_gaussian").score_series(values)[-1] > 0.99)
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from amml.ops.detectors.base import Detector, register_detector


@register_detector
class WindowedGaussianDetector(Detector):
    """NAB's ``windowedGaussian`` baseline: the two-sided Gaussian tail of the value against the
    last ``window`` values, the window moving forward ``step`` values at a time."""

    name = "windowed_gaussian"

    def __init__(self, window: int = 6400, step: int = 100) -> None:
        self.window, self.step = window, step
        self._data: list[float] = []
        self._buffer: list[float] = []
        self._mean = 0.0
        self._std = 1.0

    def _refresh(self) -> None:
        data = np.asarray(self._data)
        self._mean = float(data.mean())
        self._std = float(data.std()) or 1e-6

    def update(self, timestamp: Any, value: float) -> float:
        if not math.isfinite(value):
            value = self._mean
        score = math.nan  # the first row: nothing to compare with
        if self._data:
            score = math.erf(abs(value - self._mean) / self._std / math.sqrt(2.0))
        if len(self._data) < self.window:
            self._data.append(value)
            self._refresh()
        else:
            self._buffer.append(value)
            if len(self._buffer) == self.step:
                self._data = self._data[self.step:] + self._buffer
                self._buffer = []
                self._refresh()
        return score if score != score else min(max(score, 0.0), 1.0)



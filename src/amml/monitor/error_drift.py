"""Error drift: once actual values (or labels) arrive, river's ADWIN or Page-Hinkley test
on the absolute errors (``method``: ``adwin``, ``page_hinkley``).

Where the drift began: the single change point of the error level in the last ``search``
errors (:func:`~amml.monitor.base.locate_shift`); river's own hint (the start of the part
ADWIN keeps, the minimum of Page-Hinkley's cumulative deviation) is kept in the details. The
confidence
is a one-sided Mann-Whitney test of the errors after the drift point against those before.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> errors = np.concatenate([rng.normal(0, 1, 1000), rng.normal(0, 3, 500)])
>>> event = ErrorDrift("adwin").update_many(errors)[0]
>>> event.detector, 950 <= event.drift_point <= 1050, event.confidence > 0.99
('error-adwin', True, True)
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

import numpy as np

from amml.monitor.base import DriftDetector, DriftEvent, confirm_increase, locate_shift


class ErrorDrift(DriftDetector):
    def __init__(self, method: Literal["adwin", "page_hinkley"] = "adwin", *,
                 search: int = 1000, **params: Any) -> None:
        super().__init__()
        from river import drift

        if method == "adwin":
            self._detector: Any = drift.ADWIN(**params)
        elif method == "page_hinkley":
            self._detector = drift.PageHinkley(**{"mode": "up", **params})
        else:
            raise ValueError(f"method must be 'adwin' or 'page_hinkley', got '{method}'")
        self.method, self.search = method, search
        self.name = f"error-{method}"
        self.threshold = float(getattr(self._detector, "threshold", 1.0))
        self._values: deque[float] = deque(maxlen=20_000)
        self._minimum_at = 0
        self._minimum = np.inf

    def update(self, x: Any) -> DriftEvent | None:
        index = self.n
        self.n += 1
        value = abs(float(x))
        self._values.append(value)
        detector = self._detector
        detector.update(value)
        if self.method == "page_hinkley":
            cumulative = float(getattr(detector, "_sum_increase", 0.0))
            if cumulative < self._minimum:
                self._minimum, self._minimum_at = cumulative, index + 1
            self.score = cumulative - float(getattr(detector, "_min_increase", 0.0))
        else:
            self.score = float(detector.width)
        if not detector.drift_detected:
            return None
        if self.method == "adwin":
            hint = index + 1 - int(detector.width)
        else:
            hint = min(self._minimum_at, index)
            self._minimum, self._minimum_at = np.inf, index + 1
        values = np.asarray(self._values)
        recent = values[-self.search:]
        start = index + 1 - len(recent) + locate_shift(recent)
        split = len(values) - (index + 1 - start)
        before = values[max(0, split - 500):split]
        after = values[split:]
        return self._raise(DriftEvent(
            self.name, index, start, confirm_increase(before, after), self.score,
            self.threshold, ("error",),
            {"river_hint": hint, "mean_before": float(before.mean()) if len(before) else None,
             "mean_after": float(after.mean()) if len(after) else None}))

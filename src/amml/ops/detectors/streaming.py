"""Streaming (online) anomaly detectors: ``update(timestamp, value) -> score in [0, 1]``.

Every detector is causal (a score depends only on the values up to and including the current
one), self-normalising (no per-series scale or threshold is given) and runs with one parameter
set on any series. ``score_series`` is the batch path; it replays ``update`` on a fresh
detector, so it equals the streaming path exactly.

>>> import numpy as np

from amml.ops.detectors.base import Detector, RingBuffer, register_detector
>>> values = np.r_[np.random.default_rng(0).normal(0, 1, 600), 25.0, np.zeros(5)]
>>> scores = AmmlDetector().score_series(values)
>>> bool(scores[600] == scores.max() and scores[600] > 0.5)
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from amml.ops.detectors.base import Detector, RingBuffer, register_detector

_LOG_FLOOR = math.log(1.0 - 0.9999999999)


def _tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@register_detector
class AmmlDetector(Detector):
    """Robust z-scores of the value and its first difference, turned into an anomaly likelihood.

    1. raw score: ``log1p(max(|x - median| / scale, |dx - median(dx)| / scale_dx))`` against the
       last ``window`` values (``scale``: 1.4826 * MAD, floored at a small share of the range
       seen so far, so flat series stay defined);
    2. likelihood, as HTM's anomaly likelihood: the mean of the last ``short`` raw scores against
       the mean and deviation of the last ``long`` raw scores, ``1 - Q(z)``, log-scaled as NAB's
       HTM detector does so that the scores spread over [0, 1];
    3. after a score of at least ``alarm`` further scores are damped for ``suppress`` rows
       (one alarm per event instead of a burst of false positives).
    """

    name = "amml"

    def __init__(self, window: int = 256, short: int = 1, long: int = 1500, warmup: int = 64,
                 alarm: float = 0.5, suppress: int = 200, damp: float = 0.5,
                 range_floor: float = 1e-3) -> None:
        self.window, self.short, self.long, self.warmup = window, short, long, warmup
        self.alarm, self.suppress, self.damp, self.range_floor = alarm, suppress, damp, range_floor
        self._values = RingBuffer(window)
        self._diffs = RingBuffer(window)
        self._raw_short = RingBuffer(short)
        self._raw_long = RingBuffer(long)
        self._prev: float | None = None
        self._low = math.inf
        self._high = -math.inf
        self._seen = 0
        self._since_alarm = suppress + 1

    def _robust_z(self, ring: RingBuffer, value: float, floor: float) -> float:
        past = ring.values()
        median = float(np.median(past))
        mad = float(np.median(np.abs(past - median)))
        scale = max(1.4826 * mad, floor, 1e-12)
        return min(abs(value - median) / scale, 1e6)

    def update(self, timestamp: Any, value: float) -> float:
        if not math.isfinite(value):
            value = self._prev if self._prev is not None else 0.0
        diff = value - self._prev if self._prev is not None else 0.0
        raw = 0.0
        if self._values.count >= 8:
            floor = self.range_floor * (self._high - self._low)
            raw = math.log1p(max(self._robust_z(self._values, value, floor),
                                 self._robust_z(self._diffs, diff, floor)))
        self._low, self._high = min(self._low, value), max(self._high, value)
        self._values.push(value)
        if self._prev is not None:
            self._diffs.push(diff)
        self._prev = value
        self._seen += 1

        self._raw_short.push(raw)
        score = 0.0
        if self._seen > self.warmup and self._raw_long.count >= 16:
            mean, std = self._raw_long.mean_std()
            short_mean = self._raw_short.sum / self._raw_short.count
            likelihood = 1.0 - _tail((short_mean - mean) / max(std, 1e-4))
            score = math.log(1.0000000001 - likelihood) / _LOG_FLOOR
        self._raw_long.push(raw)

        self._since_alarm += 1
        if self._since_alarm <= self.suppress:
            score *= self.damp
        elif score >= self.alarm:
            self._since_alarm = 0
        return min(max(score, 0.0), 1.0)



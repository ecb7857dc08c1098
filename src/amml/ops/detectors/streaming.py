"""Streaming (online) anomaly detectors: ``update(timestamp, value) -> score in [0, 1]``.

Every detector is causal (a score depends only on the values up to and including the current
one), self-normalising (no per-series scale or threshold is given) and runs with one parameter
set on any series. ``score_series`` is the batch path; it replays ``update`` on a fresh
detector, so it equals the streaming path exactly.

>>> import numpy as np
>>> values = np.r_[np.random.default_rng(0).normal(0, 1, 600), 25.0, np.zeros(5)]
>>> scores = make_detector("amml").score_series(values)
>>> bool(scores[600] == scores.max() and scores[600] > 0.5)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

_LOG_FLOOR = math.log(1.0 - 0.9999999999)


def _tail(z: float) -> float:
    """Upper tail probability of a standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


class _Ring:
    """A fixed-size ring buffer of floats with a running sum and sum of squares."""

    __slots__ = ("buf", "count", "pos", "sum", "sumsq")

    def __init__(self, size: int) -> None:
        self.buf = np.zeros(size)
        self.count = 0
        self.pos = 0
        self.sum = 0.0
        self.sumsq = 0.0

    def push(self, value: float) -> None:
        size = len(self.buf)
        if self.count == size:
            old = self.buf[self.pos]
            self.sum -= old
            self.sumsq -= old * old
        else:
            self.count += 1
        self.buf[self.pos] = value
        self.sum += value
        self.sumsq += value * value
        self.pos = (self.pos + 1) % size

    def values(self) -> np.ndarray:
        return self.buf if self.count == len(self.buf) else self.buf[:self.count]

    def mean_std(self) -> tuple[float, float]:
        mean = self.sum / self.count
        return mean, math.sqrt(max(self.sumsq / self.count - mean * mean, 0.0))


class StreamingDetector:
    """Base class: subclasses implement ``update``."""

    name = "streaming"

    def update(self, timestamp: Any, value: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {}

    def score_series(self, values: Iterable[float], timestamps: Iterable[Any] | None = None
                     ) -> np.ndarray:
        """Scores of a whole series, on a fresh copy of this detector (same parameters)."""
        detector = type(self)(**self.params())
        values = np.asarray(values, dtype=float)
        stamps = list(timestamps) if timestamps is not None else [None] * len(values)
        pairs = zip(stamps, values, strict=True)
        return np.array([detector.update(t, float(v)) for t, v in pairs], dtype=float)


class AmmlDetector(StreamingDetector):
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
        self._values = _Ring(window)
        self._diffs = _Ring(window)
        self._raw_short = _Ring(short)
        self._raw_long = _Ring(long)
        self._prev: float | None = None
        self._low = math.inf
        self._high = -math.inf
        self._seen = 0
        self._since_alarm = suppress + 1

    def params(self) -> dict[str, Any]:
        return {"window": self.window, "short": self.short, "long": self.long,
                "warmup": self.warmup, "alarm": self.alarm, "suppress": self.suppress,
                "damp": self.damp, "range_floor": self.range_floor}

    def _robust_z(self, ring: _Ring, value: float, floor: float) -> float:
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


class WindowedGaussianDetector(StreamingDetector):
    """NAB's ``windowedGaussian`` baseline: the two-sided Gaussian tail of the value against the
    last ``window`` values, the window moving forward ``step`` values at a time."""

    name = "windowed_gaussian"

    def __init__(self, window: int = 6400, step: int = 100) -> None:
        self.window, self.step = window, step
        self._data: list[float] = []
        self._buffer: list[float] = []
        self._mean = 0.0
        self._std = 1.0

    def params(self) -> dict[str, Any]:
        return {"window": self.window, "step": self.step}

    def _refresh(self) -> None:
        data = np.asarray(self._data)
        self._mean = float(data.mean())
        self._std = float(data.std()) or 1e-6

    def update(self, timestamp: Any, value: float) -> float:
        if not math.isfinite(value):
            value = self._mean
        score = 0.0
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
        return min(max(score, 0.0), 1.0)


DETECTORS: dict[str, type[StreamingDetector]] = {
    AmmlDetector.name: AmmlDetector,
    WindowedGaussianDetector.name: WindowedGaussianDetector,
}


def make_detector(name: str = "amml", **params: Any) -> StreamingDetector:
    try:
        return DETECTORS[name](**params)
    except KeyError:
        raise ValueError(f"unknown streaming detector {name!r} "
                         f"(known: {', '.join(sorted(DETECTORS))})") from None

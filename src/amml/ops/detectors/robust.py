"""``rolling_mad``: each point's robust z-score against the median and MAD of the points before it.

The median and the MAD (scaled by 1.4826 to match a Gaussian deviation) ignore the outliers a
mean and a standard deviation would be dragged by, so one spike neither hides the next one nor
inflates the scale for a whole window. The current point is never part of its own reference.
A scale floor (a small share of the range seen so far, plus an absolute epsilon) keeps a flat
series defined: its first change scores high instead of dividing by zero.

>>> import numpy as np
>>> from amml.ops.detectors.base import make_detector
>>> values = np.r_[np.random.default_rng(0).normal(0, 1, 400), 9.0, np.zeros(5)]
>>> scores = make_detector("rolling_mad").score_series(values)
>>> bool(scores[400] == np.nanmax(scores) and scores[400] > 0.5)
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from amml._exceptions import OpError
from amml.ops.detectors.base import Detector, RingBuffer, clip01, register_detector
from amml.ops.detectors.calibration import Likelihood
from amml.ops.stats import mad_scale, median

MAX_Z = 1e6  # caps the z of a jump off a flat series (a finite, comparable raw score)
MIN_PAST = 8  # past points needed before a median/MAD means anything


def median_scale(past: np.ndarray, floor: float) -> tuple[float, float]:
    """The median of ``past`` and ``max(1.4826 * MAD, floor)``: a robust location and scale."""
    center = median(past)
    return center, max(mad_scale(past, center), floor)


def robust_z(value: float, median: float, scale: float) -> float:
    """``|value - median| / scale``, capped at ``MAX_Z``."""
    return min(abs(value - median) / scale, MAX_Z)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum``, or an ``OpError`` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise OpError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_fraction(name: str, value: Any, low: float = 0.0, high: float = 1.0) -> float:
    """``value`` as a float in ``[low, high]``, or an ``OpError`` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
            or not low <= float(value) <= high:
        raise OpError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


@register_detector
class RollingMadDetector(Detector):
    """Robust z-score of each value against the previous ``window`` values, calibrated online.

    raw score: ``log1p(|x - median| / scale)``, ``scale = max(1.4826 * MAD, range_floor *
    (max - min seen so far), min_scale)``; the score: ``calibration.Likelihood`` over the last
    ``long`` raw scores (NaN for the first ``warmup``: warm-up rows have no score). The
    learnt calibration, rather than a fixed Gaussian tail of ``z``, is what keeps a
    heavy-tailed series (whose robust z often reaches 5) from alarming all the time while a
    Gaussian one still gives ~0.5 at z ~ 6-8.
    The log keeps one huge jump from inflating the calibration's deviation for ``long`` rows.

    Non-finite values are gaps: scored as a repeat of the last finite value (a gap is not an
    anomaly) and left out of the window and the range.
    """

    name = "rolling_mad"

    def __init__(self, window: int = 128, range_floor: float = 1e-3, min_scale: float = 1e-9,
                 long: int = 2000, warmup: int = 32) -> None:
        self.window, self.range_floor, self.min_scale = window, range_floor, min_scale
        self.long, self.warmup = long, warmup
        check_positive_int("window", window, 2)
        check_fraction("range_floor", range_floor)
        check_fraction("min_scale", min_scale, 0.0, math.inf)
        check_positive_int("long", long, 2)
        check_positive_int("warmup", warmup, 0)
        self._past = RingBuffer(window)
        self._calibrate = Likelihood(short=1, long=long, warmup=warmup)
        self._last = 0.0
        self._low = math.inf
        self._high = -math.inf

    def update(self, timestamp: Any, value: float) -> float:
        value = float(value)
        finite = math.isfinite(value)
        if not finite:
            value = self._last
        raw = 0.0
        ready = self._past.count >= min(MIN_PAST, self.window)
        if ready:
            floor = max(self.range_floor * (self._high - self._low), self.min_scale, 1e-300)
            raw = math.log1p(robust_z(value, *median_scale(self._past.values(), floor)))
        score = self._calibrate.update(raw)
        if not ready:  # too few past values for a median: a warm-up row, no score
            score = math.nan
        if finite:
            self._last = value
            self._low, self._high = min(self._low, value), max(self._high, value)
            self._past.push(value)
        return clip01(score)

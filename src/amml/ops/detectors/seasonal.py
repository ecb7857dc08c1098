"""``seasonal``: robust z-scores of online seasonal-decomposition residuals.

A value can sit well inside a series' global range and still be wrong for its phase of the
season (a night-time value at daytime level). Scoring ``value - (trend + seasonal[phase])``
instead of the raw value catches it: the residual of a normal point is only noise, so the
scale it is compared with is the noise's, not the whole seasonal swing's.

The decomposition is additive Holt-Winters without a slope (ETS(A,N,A)) in error-correction
form, made robust: each one-step-ahead residual ``e`` is clipped to ``huber`` robust scales
before it moves the level (``level += trend_alpha * e``) and its phase's seasonal term
(``seasonal[phase] += season_alpha * e``), so a spike does not leak into the next season.

The period is given, or found from the autocorrelation of the first ``detect_after`` values
(retried on 2, 4 and 8 times as many while no clear peak shows; level only if none ever does)
and checked once more on twice as many values as found it: a short warm-up pins a season's
length down to about one point, and a wrong length makes the seasonal terms drift. Decisions
are taken at fixed rows from the rows before them, so they are causal and deterministic. Until
the period is known the detector scores plain robust z-scores of the values, as
``rolling_mad`` does; when it is known (or corrected), the decomposition starts from the first
season of the buffered values and is run over the rest of them.
Timestamps are not used: the phase is the row number modulo the period.

>>> import numpy as np
>>> from amml.ops.detectors.seasonal import detect_period
>>> t = np.arange(480)
>>> values = 5 + 3 * np.sin(2 * np.pi * t / 48) + np.random.default_rng(0).normal(0, 0.3, 480)
>>> detect_period(values, max_period=160)
48
>>> from amml.ops.detectors.base import make_detector
>>> values[400] = 5 + 3 * np.sin(2 * np.pi * 400 / 48 + np.pi)  # in range, wrong for its phase
>>> scores = make_detector("seasonal", period=48).score_series(values)
>>> bool(scores[400] == np.nanmax(scores) and scores[400] > 0.5)
True
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

import numpy as np

from amml._exceptions import OpError
from amml.ops.detectors.base import Detector, RingBuffer, clip01, register_detector
from amml.ops.detectors.calibration import Likelihood
from amml.ops.detectors.robust import (
    MIN_PAST,
    check_fraction,
    check_positive_int,
    median_scale,
    robust_z,
)

MIN_ACF = 0.3  # a seasonal peak must correlate at least this much ...
MIN_PROMINENCE = 0.3  # ... and rise at least this much above the dip before it
DETECT_TRIES = 4  # look for the period after detect_after * 1, 2, 4, 8 values, then give up


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    return float(np.dot(a, b)) / norm if norm > 0.0 else 0.0


def _fold_fit(x: np.ndarray, period: int) -> float:
    """Adjusted R^2 of the per-phase mean profile of ``x`` (centred): how much a season of
    ``period`` points explains, less what ``period`` free means would fit in noise."""
    n = len(x)
    total = float(np.dot(x, x))
    if not total > 0.0 or n <= period:
        return -math.inf
    phases = np.arange(n) % period
    sums = np.bincount(phases, weights=x, minlength=period)
    counts = np.bincount(phases, minlength=period)
    explained = float(np.sum(sums * sums / counts)) / total
    return 1.0 - (1.0 - explained) * (n - 1) / (n - period)


def _repeats(x: np.ndarray, period: int) -> float:
    """The correlation, a season later, of ``x`` less its ``period``-point moving average: that
    average holds a trend or a random walk's wander but no season of this length, so what a
    wander made look seasonal is gone and a real season is left whole."""
    moving = np.convolve(x, np.ones(period) / period, mode="valid")
    rest = x[period // 2:period // 2 + len(moving)] - moving
    return _correlation(rest[:-period], rest[period:]) if len(rest) > 2 * period else 0.0


def detect_period(values: np.ndarray, max_period: int) -> int:
    """The season length of ``values`` in points (0 where no clear one up to ``max_period``).

    Candidates: local peaks of the autocorrelation of the linearly detrended values (Pearson's,
    of the overlapping parts) of at least ``MIN_ACF`` (or ``3 / sqrt(n)``, three deviations of
    white noise's, if more) that rise ``MIN_PROMINENCE`` above the lowest value before them.
    Autocorrelation peaks are broad (noise moves them by a few lags) and a random walk has
    chance ones, so each candidate's neighbourhood is checked on the whole series: the lag
    whose per-phase mean profile explains most is kept if, with its moving average taken out,
    the values still correlate as much a season later. The shortest kept lag that explains 90%
    of the best one's share is the fundamental (a multiple of it explains as much, plus noise).
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    max_period = min(int(max_period), n // 4)  # four seasons at least: fewer are often chance
    if max_period < 2:
        return 0
    t = np.arange(n, dtype=float)
    x = x - np.polyval(np.polyfit(t, x, 1), t)
    acf = np.array([_correlation(x[:n - k], x[k:]) for k in range(max_period + 2)])
    least = max(MIN_ACF, 3.0 / math.sqrt(n))  # and three noise deviations on short prefixes
    kept: list[tuple[int, float]] = []  # per autocorrelation peak: its best lag and fit
    for k in range(2, max_period + 1):
        if acf[k] >= least and acf[k] > acf[k - 1] and acf[k] >= acf[k + 1] \
                and acf[k] - float(acf[1:k].min()) >= MIN_PROMINENCE:
            spread = k // 8 + 1
            near = range(max(2, k - spread), min(max_period, k + spread) + 1)
            fit, lag = max((_fold_fit(x, p), -p) for p in near)
            if _repeats(x, -lag) >= least:
                kept.append((-lag, fit))
    if not kept:
        return 0
    best = max(fit for _, fit in kept)
    return next(lag for lag, fit in kept if fit >= 0.9 * best)


@register_detector
class SeasonalDetector(Detector):
    """Online seasonal decomposition; the residual's robust z-score, calibrated online.

    ``period``: the season in points, or ``None``/``0`` to detect it (four seasons must fit:
    up to 128 points at the default ``detect_after`` of 512 rows, then 256, 512 and 1024 on the
    retries); ``1`` means no season (level only); a given period starts after two seasons.
    ``window``: past residuals the robust scale is taken over. ``trend_alpha`` and
    ``season_alpha``: smoothing of the level and of each phase's term (0.2: a level shift is
    followed within ~10 rows, a season within ~5); ``huber``: clip (in robust scales) of a
    residual's pull on them. ``range_floor``/``min_scale``: scale floor, as in ``rolling_mad``;
    ``long``/``warmup``: ``calibration.Likelihood`` over ``log1p(|z|)``, as in ``rolling_mad``
    so the two compare.
    Gaps (nan/inf) are scored as the expected value and move nothing.
    """

    name = "seasonal"

    def __init__(self, period: int | None = None, window: int = 128, detect_after: int = 512,
                 trend_alpha: float = 0.2, season_alpha: float = 0.2, huber: float = 3.0,
                 range_floor: float = 1e-3, min_scale: float = 1e-9, long: int = 2000,
                 warmup: int = 32) -> None:
        self.period, self.window, self.detect_after = period, window, detect_after
        self.trend_alpha, self.season_alpha, self.huber = trend_alpha, season_alpha, huber
        self.range_floor, self.min_scale = range_floor, min_scale
        self.long, self.warmup = long, warmup
        if period is not None and (isinstance(period, bool) or not isinstance(period, Integral)
                                   or period < 0):
            raise OpError(f"period must be None, 0 (detect it) or an integer >= 1, "
                          f"got {period!r}")
        check_positive_int("window", window, 2)
        check_positive_int("detect_after", detect_after, 24)
        check_fraction("trend_alpha", trend_alpha)
        check_fraction("season_alpha", season_alpha)
        check_fraction("huber", huber, 0.5, math.inf)
        check_fraction("range_floor", range_floor)
        check_fraction("min_scale", min_scale, 0.0, math.inf)
        check_positive_int("long", long, 2)
        check_positive_int("warmup", warmup, 0)
        self._calibrate = Likelihood(short=1, long=long, warmup=warmup)
        self._past = RingBuffer(window)  # values before the period is known, residuals after
        self._buffer: list[float] | None = []  # the values until the period is settled
        # rows buffered before the decomposition starts: two seasons of a given period
        self._next_try = detect_after if not period else max(2 * int(period), 2 * MIN_PAST)
        self._tries = 0
        self._period = 0  # 0: not known yet
        self._level = 0.0
        self._seasonal = np.zeros(1)
        self._seen = 0
        self._scored = False  # a score was given: every row from then on gets one
        self._last = 0.0
        self._low = math.inf
        self._high = -math.inf

    @property
    def period_(self) -> int | None:
        """The period in use (given or detected; 1: none found), ``None`` before it is known."""
        return self._period or None

    def _floor(self) -> float:
        return max(self.range_floor * (self._high - self._low), self.min_scale, 1e-300)

    def _scale(self) -> float:
        """The robust scale of the past residuals (no clipping until there are enough)."""
        if self._past.count < min(MIN_PAST, self.window):
            return math.inf
        return median_scale(self._past.values(), self._floor())[1]

    def _learn(self, phase: int, residual: float, scale: float) -> None:
        """Move the level and the phase's term by the clipped residual; remember the residual."""
        limit = self.huber * scale
        pull = min(max(residual, -limit), limit)
        self._level += self.trend_alpha * pull
        self._seasonal[phase] += self.season_alpha * pull
        self._past.push(residual)

    def _start(self, period: int, values: np.ndarray) -> None:
        """Start the decomposition from the first season of the buffered values and run it over
        the rest, as it would have run live: the residuals it leaves for the scale are one-step
        forecast errors, not in-sample fits (which would make the first live residuals look
        anomalous)."""
        self._period = period
        self._level = float(np.mean(values[:period]))
        self._seasonal = values[:period] - self._level
        self._past = RingBuffer(self.window)
        for i in range(period, len(values)):
            phase = i % period
            residual = float(values[i]) - self._level - self._seasonal[phase]
            self._learn(phase, residual, self._scale())

    def _detect(self) -> None:
        """At a scheduled row: start, restart or give up on the decomposition (see the class)."""
        buffered = np.asarray(self._buffer)
        if self.period:
            self._start(int(self.period), buffered)
            self._buffer, self._next_try = None, 0
            return
        found = detect_period(buffered, self._seen // 4)
        self._tries += 1
        refining = bool(self._period)
        if found and found != self._period:
            self._start(found, buffered)
        elif not refining and self._tries >= DETECT_TRIES:
            self._start(1, buffered)
        if refining or self._tries >= DETECT_TRIES:
            self._buffer, self._next_try = None, 0
        else:
            self._next_try *= 2

    def update(self, timestamp: Any, value: float) -> float:
        value = float(value)
        finite = math.isfinite(value)
        phase = self._seen % self._period if self._period else 0
        if self._period:
            expected = self._level + self._seasonal[phase]
            if not finite:
                value = expected
            observed = value - expected
        else:
            if not finite:
                value = self._last
            observed = value
        raw, scale = 0.0, math.inf
        ready = self._past.count >= min(MIN_PAST, self.window)
        if ready:
            center, scale = median_scale(self._past.values(), self._floor())
            raw = math.log1p(robust_z(observed, center, scale))
        score = self._calibrate.update(raw)
        if not (ready or self._scored):  # too few past residuals: a warm-up row, no score
            score = math.nan
        self._scored = self._scored or score == score
        if finite:
            self._low, self._high = min(self._low, value), max(self._high, value)
            if self._period:
                self._learn(phase, observed, scale)
            else:
                self._past.push(observed)
            self._last = value
        if self._buffer is not None:
            self._buffer.append(value)
        self._seen += 1
        if self._seen == self._next_try:
            self._detect()
        return clip01(score)

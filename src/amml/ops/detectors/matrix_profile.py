"""``matrix_profile``: discord discovery with stumpy's matrix profile (``stump`` for a batch,
``stumpi`` for a stream).

A subsequence of ``window`` rows is anomalous when no earlier subsequence looks like it: its
score is the z-normalised Euclidean distance to its nearest neighbour *to the left* (the left
matrix profile, so the score is causal), given to the row that ends it. The threshold is
frozen on the warm-up: ``factor`` times the ``quantile`` of the warm-up rows' distances, and
scores are ``raw / (raw + threshold)`` (0.5 at the threshold); only the second half of the
warm-up counts, where the past is long enough to hold a near neighbour. The warm-up rows
score NaN.

The batch path runs :func:`stumpy.stump` over the whole series once; the streaming path
starts :class:`stumpy.stumpi` (``egress=False``: every earlier subsequence stays a candidate)
on the warm-up rows and ``update``s it one value at a time. Both take stumpy's nearest left
neighbour and measure the distance to it with the same code, so they give the same scores.
stumpy compiles its kernels with numba on first use (about half a minute on two cores); the
compiled kernels are cached on disk (numba's cache, enabled here as ``stumpy.cache`` does),
so later processes start in a second or two.

>>> import numpy as np
>>> from amml.ops.detectors.base import make_detector
>>> t = np.arange(1200)
>>> values = np.sin(2 * np.pi * t / 50) + np.random.default_rng(0).normal(0, 0.05, 1200)
>>> values[1000:1010] = values[1000:1010][::-1]  # a broken stretch, inside the usual range
>>> scores = make_detector("matrix_profile", window=20).score_series(values)
>>> bool(np.isnan(scores[:320]).all()), int(np.nanargmax(scores)) in range(1000, 1030)
(True, True)
"""

from __future__ import annotations

import contextlib
import importlib
import math
from functools import cache
from typing import Any

import numpy as np

from amml._exceptions import OpError
from amml.ops.detectors.base import Detector, register_detector
from amml.ops.detectors.windowed import check_int, check_share

#: A subsequence whose standard deviation is below this (relative to 1 + |its mean|) is
#: constant: two constant ones are at distance 0, a constant and a varying one at sqrt(window).
CONSTANT_STD = 1e-8


@cache
def _stumpy() -> Any:
    """stumpy, with numba's on-disk cache enabled for its kernels (compiled once, not per
    process); a missing install names the extra."""
    try:
        import stumpy
        from stumpy import cache as stumpy_cache
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise OpError("matrix_profile needs stumpy: pip install 'amml[detect]'") from exc
    for module_name, func_name in stumpy_cache.get_njit_funcs():
        func = getattr(importlib.import_module(f"stumpy.{module_name}"), func_name)
        with contextlib.suppress(AttributeError):  # numba's JIT disabled: nothing to cache
            func.enable_caching()
    return stumpy


def znorm_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Z-normalised Euclidean distance between the rows of ``a`` and ``b`` (``k x window``)."""
    m = a.shape[1]
    am, bm = a.mean(axis=1), b.mean(axis=1)
    asd, bsd = a.std(axis=1), b.std(axis=1)
    a_const = asd <= CONSTANT_STD * (1.0 + np.abs(am))
    b_const = bsd <= CONSTANT_STD * (1.0 + np.abs(bm))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = ((a - am[:, None]) * (b - bm[:, None])).mean(axis=1) / (asd * bsd)
    dist = np.sqrt(np.maximum(2.0 * m * (1.0 - np.clip(corr, -1.0, 1.0)), 0.0))
    dist = np.where(a_const | b_const, math.sqrt(m), dist)
    return np.where(a_const & b_const, 0.0, dist)


@register_detector
class MatrixProfileDetector(Detector):
    """Distance of the subsequence ending at each row to its nearest earlier one (stumpy).

    ``window``: subsequence length (about one pattern: a period, a cycle); ``warmup``: rows
    that freeze the threshold (NaN scores), at least ``4 * window``; ``quantile`` and
    ``factor``: the threshold, ``factor`` times that quantile of the warm-up distances.
    Non-finite values are gaps: replaced by the last finite value (0 before the first).
    """

    name = "matrix_profile"
    skip_checks = {"finds_spike": "a spike is in `window` subsequences; each is a discord, and "
                                  "the top score may be any row of them, not the spike's own"}

    def __init__(self, window: int = 32, warmup: int = 320, quantile: float = 0.99,
                 factor: float = 1.5) -> None:
        self.window, self.warmup, self.quantile, self.factor = window, warmup, quantile, factor
        check_int("window", window, 3)
        check_int("warmup", warmup, 4 * window)
        check_share("quantile", quantile)
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 0:
            raise OpError(f"factor must be a number > 0, got {factor!r}")
        self._values: list[float] = []
        self._last = 0.0
        self._stream: Any = None
        self.threshold_raw_ = math.nan

    # ------------------------------------------------------------------ shared pieces

    def _threshold(self, series: np.ndarray, left: np.ndarray) -> float:
        """From the left neighbours of the warm-up's subsequences: those of its second half
        only, whose past is long enough for a near neighbour to be there."""
        warm = self.warmup - self.window + 1
        raw = self._left_distances(series, left[:warm], warm // 2)
        raw = raw[np.isfinite(raw)]
        base = float(np.quantile(raw, self.quantile)) if raw.size else 1.0
        return max(self.factor * base, 1e-9)

    def _left_distances(self, series: np.ndarray, left: np.ndarray, first: int) -> np.ndarray:
        """Distances of subsequences ``first...`` to their left neighbours (inf: none)."""
        m = self.window
        left = np.asarray(left[first:], dtype=np.int64)
        starts = np.arange(first, first + len(left))
        ok = left >= 0
        out = np.full(len(left), np.inf)
        if ok.any():
            view = np.lib.stride_tricks.sliding_window_view(series, m)
            out[ok] = znorm_distance(view[starts[ok]], view[left[ok]])
        return out

    def _calibrate(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        out = raw / (raw + self.threshold_raw_)
        return np.where(np.isinf(raw), 1.0, out)

    # ------------------------------------------------------------------ streaming: stumpi

    def update(self, timestamp: Any, value: float) -> float:
        value = float(value)
        if not math.isfinite(value):
            value = self._last
        self._last = value
        self._values.append(value)
        n = len(self._values)
        if n < self.warmup:
            return math.nan
        series = np.asarray(self._values)
        if n == self.warmup:
            stumpy = _stumpy()
            self._stream = stumpy.stumpi(series, self.window, egress=False)
            self.threshold_raw_ = self._threshold(series, np.asarray(self._stream.left_I_))
            return math.nan
        self._stream.update(value)
        start = n - self.window  # the newest subsequence, stumpi's last
        left = np.zeros(start + 1, dtype=np.int64)
        left[start] = int(self._stream.left_I_[-1])
        raw = self._left_distances(series, left, start)
        return float(self._calibrate(raw)[0])

    # ------------------------------------------------------------------ batch: stump

    def score_series(self, values: Any, timestamps: Any = None) -> np.ndarray:
        array = np.asarray(values, dtype=float)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise OpError(f"matrix_profile takes one column, got shape {array.shape}")
        if timestamps is not None and len(list(timestamps)) != len(array):
            raise OpError(f"{len(list(timestamps))} timestamps for {len(array)} values")
        n, m = len(array), self.window
        scores = np.full(n, np.nan)
        if n < self.warmup:
            return scores
        series = _ffill(array)
        profile = _stumpy().stump(series, m)
        left = np.asarray(profile[:, 2], dtype=np.int64)
        det = self.clone()
        assert isinstance(det, MatrixProfileDetector)
        warm = self.warmup - m + 1  # subsequences inside the warm-up
        det.threshold_raw_ = det._threshold(series, left)
        raw = det._left_distances(series, left, warm)
        scores[self.warmup:] = det._calibrate(raw)
        return scores


def _ffill(values: np.ndarray) -> np.ndarray:
    """Forward-fill non-finite values with the last finite one (0 before the first)."""
    bad = ~np.isfinite(values)
    index = np.where(bad, 0, np.arange(len(values)))
    np.maximum.accumulate(index, out=index)
    out = values[index]
    return np.where(~np.isfinite(out), 0.0, out)

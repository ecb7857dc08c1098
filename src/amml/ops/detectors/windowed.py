"""The shared machinery of detectors that fit a model to sliding windows of all the columns.

``WindowModelDetector`` keeps the rows, fits at ``warmup`` and every ``refit`` rows on the last
``history`` rows (seeded by the row, so the batch path makes the same fits), scores the newest
window and calibrates it; a subclass gives ``_fit`` and ``_raw``. ``isolation_forest`` and
``autoencoder`` are built on it.

>>> import numpy as np
>>> from amml.ops.detectors.windowed import robust_scale
>>> center, scale = robust_scale(np.array([[1.0], [2.0], [3.0], [100.0]]))
>>> float(center[0])
2.5
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from amml._exceptions import OpError
from amml.ops.detectors.base import Detector, Value, clip01
from amml.ops.detectors.calibration import Likelihood
from amml.ops.stats import mad_scale


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, or an ``OpError`` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise OpError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_share(name: str, value: Any) -> float:
    """``value`` as a float in ``[0, 1]``, or an ``OpError`` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) \
            or not 0.0 <= float(value) <= 1.0:
        raise OpError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def forward_fill(rows: np.ndarray) -> np.ndarray:
    """Non-finite cells replaced by the column's last finite value (0 before the first one):
    a gap in a stream is not an anomaly, and must not poison a fit."""
    finite = np.isfinite(rows)
    index = np.where(finite, np.arange(len(rows))[:, None], 0)
    np.maximum.accumulate(index, axis=0, out=index)
    filled = np.take_along_axis(rows, index, axis=0)
    filled[~np.logical_or.accumulate(finite, axis=0)] = 0.0
    return filled


def robust_scale(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column median and deviation (1.4826 * MAD; the standard deviation where the MAD is 0,
    1 where both are): one outlier in the fit data does not rescale a whole column."""
    center = np.median(rows, axis=0)
    scale = mad_scale(rows, center, axis=0)
    spread = rows.std(axis=0)
    scale = np.where(scale > 1e-12 * (1.0 + np.abs(center)), scale, spread)
    return center, np.where(scale > 1e-12 * (1.0 + np.abs(center)), scale, 1.0)


def window_features(windows: np.ndarray, center: np.ndarray, scale: np.ndarray,
                    diffs: bool) -> np.ndarray:
    """``(k, window, columns)`` windows -> ``(k, features)``: the standardised rows, oldest first,
    then (with ``diffs``) their first differences. Clipped at 1e9 deviations: finite always."""
    z = np.clip((windows - center) / scale, -1e9, 1e9)
    flat = z.reshape(len(z), -1)
    if not diffs or z.shape[1] < 2:
        return flat
    return np.concatenate([flat, np.diff(z, axis=1).reshape(len(z), -1)], axis=1)


class WindowModelDetector(Detector):
    """Causal skeleton of a detector that fits a model on sliding windows of all the columns.

    Subclasses keep ``window``, ``warmup``, ``refit`` (0: never refit) and ``history`` as
    parameters and implement ``_fit`` (cleaned fit rows -> model) and ``_raw`` (model, windows
    -> raw scores, higher is more anomalous, the same numbers whatever the batch size). The
    first fit is at row ``warmup`` on the rows before it, each refit ``refit`` rows later on the
    ``history`` rows before it. The raw scores of the first fit's own windows prime a
    ``calibration.Likelihood`` so calibrated scores start at once; the stream's raw scores then
    go through it in order, identically in ``update`` and in the batched ``score_series``.
    """

    multivariate = True
    window: int
    warmup: int
    refit: int
    history: int

    def _check_schedule(self) -> None:
        check_int("window", self.window, 1)
        check_int("warmup", self.warmup, self.window + 1)
        check_int("refit", self.refit, 0)
        check_int("history", self.history, self.window + 1)

    def _reset(self) -> None:
        self._rows: deque[np.ndarray] = deque(maxlen=max(self.history, self.window) + 1)
        self._last: np.ndarray | None = None
        self._seen = 0
        self._model: Any = None
        self._calibrate = Likelihood(short=1, long=2000, warmup=0)

    def _fit(self, rows: np.ndarray, at: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _raw(self, model: Any, windows: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _fit_due(self, i: int) -> bool:
        if i < self.warmup:
            return False
        return i == self.warmup or (self.refit > 0 and (i - self.warmup) % self.refit == 0)

    def _fit_at(self, rows: np.ndarray, i: int) -> None:
        """Fit at row ``i`` on the last ``history`` of ``rows`` (the rows before row ``i``)."""
        span = rows[-self.history:]
        self._model = self._fit(span, i)
        if i == self.warmup:
            for raw in self._raw(self._model, sliding_window_view(span, self.window, axis=0)
                                 .transpose(0, 2, 1)):
                self._calibrate.update(float(raw))

    def _row(self, value: Value) -> np.ndarray:
        row = np.atleast_1d(np.asarray(value, dtype=float)).ravel()
        if self._last is None:
            self._last = np.zeros(len(row))
        if len(row) != len(self._last):
            raise OpError(f"{self.name}: got {len(row)} values, expected {len(self._last)} "
                          "(one per column, as in the first row)")
        row = np.where(np.isfinite(row), row, self._last)
        self._last = row
        return row

    def update(self, timestamp: Any, value: Value) -> float:
        self._rows.append(self._row(value))
        i, self._seen = self._seen, self._seen + 1
        if self._fit_due(i):
            self._fit_at(np.array(list(self._rows)[:-1]), i)
        if self._model is None:  # not fitted yet: a warm-up row, no score
            return math.nan
        recent = np.array([self._rows[k] for k in range(-self.window, 0)])
        raw = self._raw(self._model, recent[None])[0]
        return clip01(self._calibrate.update(float(raw)))

    def score_series(self, values: Iterable[Value] | np.ndarray,
                     timestamps: Iterable[Any] | None = None) -> np.ndarray:
        """The scores ``update`` gives one row at a time, with one ``_raw`` call per fit."""
        rows = np.asarray(values, dtype=float)
        rows = rows[:, None] if rows.ndim == 1 else rows
        stamps = None if timestamps is None else list(timestamps)
        if stamps is not None and len(stamps) != len(rows):
            raise OpError(f"{len(stamps)} timestamps for {len(rows)} values")
        detector = self.clone()
        assert isinstance(detector, WindowModelDetector)
        rows = forward_fill(rows)
        scores = np.full(len(rows), np.nan)
        starts = [i for i in range(detector.warmup, len(rows)) if detector._fit_due(i)]
        if not starts:
            return scores
        windows = sliding_window_view(rows, self.window, axis=0).transpose(0, 2, 1)
        for start, stop in zip(starts, [*starts[1:], len(rows)], strict=True):
            detector._fit_at(rows[:start], start)
            raws = detector._raw(detector._model, windows[start - self.window + 1:
                                                          stop - self.window + 1])
            scores[start:stop] = [clip01(detector._calibrate.update(float(r))) for r in raws]
        return scores

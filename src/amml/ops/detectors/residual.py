"""Forecast-residual detection: a point is anomalous when a forecaster did not expect it.

Any AMML forecaster works: the numpy kinds of :mod:`amml.ops.models.forecaster` (``naive``,
``seasonal_naive``, ``linear``), the PyTorch kinds of :mod:`amml.ops.models.kinds`
(``dlinear``, ``nlinear``, ``rlinear``, ``patchtst``, ``lstm``, trained a few seeded epochs on
the CPU), or an already-fitted ``Forecaster``/``TorchForecaster`` passed as ``model`` (a model
from a workflow or the registry; it is never refitted or changed).

Each value is compared with the one-step-ahead forecast made from the ``lookback`` values
before it, so the score is causal and catches what a distribution-based detector cannot: a
value in the usual range at the wrong phase, a level shift, a broken pattern.

Two ways to turn a residual into a score (``scoring``): ``online`` learns the residuals'
statistics as it goes and calibrates their surprise; ``window`` divides it by the robust scale
of the lookback window it was forecast from (:func:`window_scores`, what the server's
``/detect`` answers, so ``amml serve`` and a workflow's ``detect`` score alike) and calibrates
it against the fixed ``threshold`` (``raw / (raw + threshold)``: 0.5 at the threshold). Rows
before the first score (no model yet, or too few residuals to trust) are NaN, never 0.

>>> import numpy as np
>>> from amml.ops.detectors.base import make_detector
>>> t = np.arange(1000)
>>> values = np.sin(2 * np.pi * t / 50) + np.random.default_rng(0).normal(0, 0.1, 1000)
>>> values[812] = -values[812]  # a trough value at a peak: in range, but at the wrong time
>>> scores = make_detector("forecast_residual").score_series(values)
>>> bool(scores[812] == np.nanmax(scores) and scores[812] > 0.5)
True
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from amml._exceptions import OpError
from amml.ops.detectors.base import Detector, register_detector
from amml.ops.detectors.calibration import Likelihood
from amml.ops.models.channel import ChannelForecaster
from amml.ops.models.contract import MODEL_KINDS, Training, kind_names, make_model
from amml.ops.models.torch_model import TorchForecaster
from amml.ops.models.windows import windows
from amml.ops.stats import mad_scale

_MIN_RESIDUALS = 20  # residuals seen before the residual statistics are trusted
#: ``window`` scoring's scale is at least this fraction of the lookback's level (its median's
#: magnitude), and at least ``MIN_SCALE``: a constant lookback would divide by ~0 otherwise.
SCALE_FLOOR = 1e-3
MIN_SCALE = 1e-6
SCORINGS = ("online", "window")
_WINSOR = 4.0  # residuals beyond mean +- this many scales update the statistics clipped
_RAW_CAP = 1e6


def window_scores(history: np.ndarray, actual: np.ndarray, forecast: np.ndarray,
                  floor: float | np.ndarray = MIN_SCALE, level_floor: float = SCALE_FLOOR
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Residuals in units of their lookback window's robust scale: ``(scores, scale)``.

    ``history`` is ``(windows, lookback, columns)``, ``actual`` and ``forecast``
    ``(windows, steps, columns)``. The scale is 1.4826 times the lookback's median absolute
    deviation (its standard deviation where that is 0), floored at ``level_floor`` of the
    lookback's level and at ``floor`` (per column, or one number). Scores are
    ``|actual - forecast| / scale``, ``(windows, steps, columns)``; scale ``(windows, columns)``.
    """
    median = np.median(history, axis=1, keepdims=True)
    scale = mad_scale(history, median, axis=1)
    scale = np.where(scale > 0, scale, history.std(axis=1))
    scale = np.maximum(scale, np.maximum(level_floor * np.abs(median[:, 0, :]),
                                         np.maximum(floor, MIN_SCALE)))
    return np.abs(actual - forecast) / scale[:, None, :], scale


class _DeepOneStep:
    """A PyTorch forecaster run in float64 for one-step forecasts of numpy windows.

    float64 makes a batch of windows and one window at a time give the same numbers (float32
    kernels sum in a batch-size dependent order), which the batch == streaming contract needs.
    ``mean``/``std`` undo the standardisation the detector trains its own networks with.
    """

    def __init__(self, net: Any, mean: float = 0.0, std: float = 1.0) -> None:
        self.net, self.mean, self.std = net.cpu().double().eval(), mean, std

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from amml.ops.models.torch_training import torch

        with torch.no_grad():
            z = torch.as_tensor((x - self.mean) / self.std, dtype=torch.float64)[:, :, None]
            out = self.net(z)[:, 0, 0].numpy()
        return out * self.std + self.mean


@register_detector
class ForecastResidualDetector(Detector):
    """Calibrated surprise of the one-step-ahead forecast residual.

    1. forecast: ``forecaster`` (a kind) is fitted on the first ``warmup`` rows, then every
       ``refit`` rows (0: never) on the last ``history`` rows; each row is forecast from the
       ``lookback`` rows before it. ``seasonal_naive`` looks back at least ``season`` rows.
       Deep kinds train ``epochs`` epochs with seed ``seed`` on the standardised history.
       With a fitted ``model`` none of this happens: its own lookback is used, and scoring
       starts as soon as one lookback window is there (values must be in the model's units).
    2. raw score: ``|r - mean| / scale`` of the residual ``r`` against its exponentially
       weighted mean and deviation (span ``span``), learnt online; residuals beyond
       ``mean +- 4 scale`` update them clipped, so one anomaly does not hide the next.
    3. calibration: :class:`~amml.ops.detectors.calibration.Likelihood`, so ~0.5 and more
       means very unusual, as for the other detectors.

    With ``scoring="window"`` steps 2 and 3 are :func:`window_scores` (the lookback's robust
    scale, floored at ``scale_floor`` of its level) and ``raw / (raw + threshold)``.

    Rows before the first score are NaN (warm-up). Missing values (nan/inf) after it score 0
    and enter the forecast windows as the last finite value.
    """

    name = "forecast_residual"

    def __init__(self, forecaster: str = "linear", lookback: int = 32, season: int = 24,
                 warmup: int = 192, refit: int = 500, history: int = 2000, span: int = 200,
                 epochs: int = 5, seed: int = 0, model: Any = None, scoring: str = "online",
                 threshold: float = 4.0, scale_floor: float = SCALE_FLOOR) -> None:
        self.forecaster, self.lookback, self.season = forecaster, lookback, season
        self.warmup, self.refit, self.history, self.span = warmup, refit, history, span
        self.epochs, self.seed, self.model = epochs, seed, model
        self.scoring, self.threshold, self.scale_floor = scoring, threshold, scale_floor
        self._validate()
        self._predict: Any = None  # (N, L) windows -> (N,) forecasts, once a model exists
        self._window = self._model_lookback() if model is not None else self._fit_lookback()
        if model is not None:
            self._predict = self._wrap(model)
        self._values: list[float] = []
        self._seen = 0
        self._last = 0.0
        self._count = 0
        self._mean = 0.0
        self._var = 0.0
        self._calibrate = Likelihood()
        self._started = False  # a first score was given: rows from then on are scored

    # ----------------------------------------------------------------- configuration

    def _validate(self) -> None:
        if self.model is None and self.forecaster not in MODEL_KINDS:
            raise OpError(f"unknown forecaster '{self.forecaster}' "
                          f"(known: {', '.join(kind_names())})")
        for key in ("lookback", "season", "span", "epochs"):
            if int(getattr(self, key)) < 1:
                raise OpError(f"forecast_residual: {key} must be at least 1")
        if self.refit < 0:
            raise OpError("forecast_residual: refit must be >= 0 (0: never refit)")
        if self.scoring not in SCORINGS:
            raise OpError(f"forecast_residual: scoring must be one of {', '.join(SCORINGS)}, "
                          f"got {self.scoring!r}")
        for key in ("threshold", "scale_floor"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0
                    and (value > 0 or key == "scale_floor")):
                raise OpError(f"forecast_residual: {key} must be a finite number "
                              f"{'>= 0' if key == 'scale_floor' else '> 0'}, got {value!r}")
        if self.model is None:
            need = self._fit_lookback() + 2
            if self.warmup < need or self.history < need:
                raise OpError(f"forecast_residual: warmup ({self.warmup}) and history "
                              f"({self.history}) must be at least lookback + 2 ({need}) rows "
                              "to fit the forecaster")

    def _fit_lookback(self) -> int:
        if self.forecaster == "seasonal_naive":
            return max(self.lookback, self.season)
        return self.lookback

    def _model_lookback(self) -> int:
        if not isinstance(self.model, ChannelForecaster | TorchForecaster):
            raise OpError("forecast_residual: model must be a fitted Forecaster or "
                          f"TorchForecaster, got {type(self.model).__name__}")
        return self.model.lookback

    def _wrap(self, model: Any) -> Any:
        """A one-step forecast function for a fitted model (a copy is used, never it)."""
        if not isinstance(model, ChannelForecaster | TorchForecaster):
            raise OpError("forecast_residual: model must be a fitted Forecaster or "
                          f"TorchForecaster, got {type(model).__name__}")
        if len(model.columns) != 1 or model.outputs != model.columns:
            raise OpError("forecast_residual: a model must have one input and output column, "
                          f"got {model.columns} -> {model.outputs}")
        if isinstance(model, ChannelForecaster):
            return lambda x: np.asarray(model.predict(x), dtype=np.float64)[:, 0]
        return _DeepOneStep(copy.deepcopy(model.net))

    # ----------------------------------------------------------------- fitting

    def _fit(self, series: np.ndarray) -> Any:
        """Fit the configured kind on ``series``; returns its one-step forecast function."""
        lookback = self._fit_lookback()
        if issubclass(MODEL_KINDS.get(self.forecaster), ChannelForecaster):
            model = make_model(self.forecaster, lookback=lookback, horizon=1, columns=["value"],
                               outputs=["value"], season=self.season)
            return self._wrap(model.fit(series))
        from amml.ops.models.torch_training import torch

        mean, std = float(series.mean()), float(series.std()) or 1.0
        x, y = windows((series - mean) / std, lookback, 1)
        with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's torch RNG
            try:
                model = make_model(self.forecaster, lookback=lookback, horizon=1,
                                   columns=["value"], outputs=["value"])
            except OpError as exc:
                raise OpError(f"forecast_residual: cannot build '{self.forecaster}' with "
                              f"lookback {lookback}: {exc}") from exc
            model.reset(self.seed)
            model.fit(x[:, :, None], y[:, :, None], training=Training(
                seed=self.seed, epochs=self.epochs, lr=0.005, lr_schedule="halve",
                batch_size=32, patience=None, device="cpu"))
        return _DeepOneStep(model.net, mean, std)

    def _fit_due(self, seen: int) -> bool:
        """Whether the model is (re)fitted after ``seen`` rows."""
        if self.model is not None or seen < self.warmup:
            return False
        return seen == self.warmup or (self.refit > 0 and (seen - self.warmup) % self.refit == 0)

    # ----------------------------------------------------------------- scoring

    def score_windows(self, history: np.ndarray, actual: np.ndarray, forecast: np.ndarray,
                      floor: float | np.ndarray = MIN_SCALE) -> tuple[np.ndarray, np.ndarray]:
        """``window`` scoring of whole windows (what ``/detect`` answers): raw scores in units
        of the lookback's robust scale, and that scale (:func:`window_scores`)."""
        return window_scores(history, actual, forecast, floor, self.scale_floor)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """``window`` raw scores -> ``[0, 1]``, 0.5 at ``threshold``."""
        raw = np.asarray(raw, dtype=float)
        with np.errstate(invalid="ignore", over="ignore"):
            out = raw / (raw + self.threshold)
        return np.where(np.isinf(raw), 1.0, out)

    def _score(self, residual: float) -> float:
        """Residual -> calibrated score, learning the residual statistics online (NaN while
        too few residuals were seen to trust them)."""
        if not math.isfinite(residual):
            return 0.0 if self._started else math.nan
        self._count += 1
        if self._count == 1:
            self._mean, self._var = residual, 0.0
            return math.nan
        scale = max(math.sqrt(self._var), 1e-9 * (1.0 + abs(self._mean)))
        raw = min(abs(residual - self._mean) / scale, _RAW_CAP)
        if self._count > _MIN_RESIDUALS:
            clipped = min(max(residual, self._mean - _WINSOR * scale),
                          self._mean + _WINSOR * scale)
        else:
            clipped = residual
        rate = max(1.0 / self._count, 2.0 / (self.span + 1.0))
        delta = clipped - self._mean
        self._mean += rate * delta
        self._var = (1.0 - rate) * (self._var + rate * delta * delta)
        if self._count <= _MIN_RESIDUALS:
            return math.nan
        self._started = True
        return self._calibrate.update(raw)

    def _push(self, value: float) -> None:
        self._values.append(value)
        keep = max(self.history, self._window)
        if len(self._values) > 2 * keep:
            del self._values[:-keep]
        self._seen += 1
        if self._fit_due(self._seen):
            self._predict = self._fit(np.asarray(self._values[-self.history:]))

    def _window_score(self, window: np.ndarray, value: float, forecast: float) -> float:
        raw, _ = self.score_windows(window[:, :, None], np.array([[[value]]]),
                                    np.array([[[forecast]]]))
        self._started = True
        return float(self.calibrate(raw[0, 0, 0]))

    def update(self, timestamp: Any, value: float) -> float:
        missing = not math.isfinite(value)
        if missing:
            value = self._last
        self._last = value
        score = 0.0 if self._started else math.nan
        if not missing and self._predict is not None and len(self._values) >= self._window:
            window = np.asarray(self._values[-self._window:], dtype=np.float64)[None, :]
            forecast = float(self._predict(window)[0])
            if self.scoring == "window":
                score = self._window_score(window, value, forecast)
            else:
                score = self._score(value - forecast)
        self._push(value)
        return score

    def score_series(self, values: Any, timestamps: Any = None) -> np.ndarray:
        """Batch path: the forecasts between two fits in one batch, the rest as ``update``."""
        array = np.asarray(values, dtype=float)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise OpError(f"forecast_residual takes one column, got shape {array.shape}")
        stamps = list(timestamps) if timestamps is not None else None
        if stamps is not None and len(stamps) != len(array):
            raise OpError(f"{len(stamps)} timestamps for {len(array)} values")
        det = self.clone()
        assert isinstance(det, ForecastResidualDetector)
        n, lookback = len(array), det._window
        missing = ~np.isfinite(array)
        filled = np.where(missing, np.nan, array)
        filled = _ffill(filled)
        # the model used for row i was fitted after row f - 1 for the largest due f <= i
        starts = [0] if self.model is not None else [
            f for f in range(1, n) if det._fit_due(f)]
        scores = np.full(n, np.nan)
        residuals = np.full(n, np.nan)
        scales = np.full(n, np.nan)
        view = sliding_window_view(filled, lookback) if n >= lookback else None
        for k, start in enumerate(starts):
            stop = starts[k + 1] if k + 1 < len(starts) else n
            if self.model is None:
                det._predict = det._fit(filled[max(0, start - self.history):start])
            first = max(start, lookback)
            if view is None or first >= stop:
                continue
            history = np.ascontiguousarray(view[first - lookback:stop - lookback])
            forecast = det._predict(history)
            residuals[first:stop] = filled[first:stop] - forecast
            if self.scoring == "window":
                _, scale = det.score_windows(history[:, :, None], forecast[:, None, None],
                                             forecast[:, None, None])
                scales[first:stop] = scale[:, 0]
        if self.scoring == "window":
            scored = ~missing & ~np.isnan(residuals)
            if scored.any():
                first = int(np.argmax(scored))
                scores[first:] = 0.0
                scores[scored] = det.calibrate(np.abs(residuals[scored]) / scales[scored])
            return scores
        for i in range(n):
            if not np.isnan(residuals[i]) and not missing[i]:
                scores[i] = det._score(float(residuals[i]))
            elif det._started:
                scores[i] = 0.0
        return scores


def _ffill(values: np.ndarray) -> np.ndarray:
    """Forward-fill nan with the last finite value (0 before the first one)."""
    index = np.where(np.isnan(values), 0, np.arange(len(values)))
    np.maximum.accumulate(index, out=index)
    out = values[index]
    return np.where(np.isnan(out), 0.0, out)

"""From served windows to drift scores and events: the monitor's per-observation pipeline.

Each observation is one forecast the model made: its input window, its forecast and, when
known, the actual value of its first forecast step. What each detector watches:

=====================  =========================================================
``input-ks|psi|wasserstein``  the newest row of each window, per input column
``input-mmd``                 the same rows, all columns together
``prediction-ks``             the forecast's mean over the horizon, per output
``attribution``               the forecast's SHAP attributions by channel and lag band
``error-adwin|page_hinkley``  the first step's absolute error, once the actual arrives
=====================  =========================================================

A fitted anomaly detector (``task: detect``) is watched the same way, its one "forecast"
being the score of the window's newest row (output ``score``): the input detectors watch what
it is given, ``prediction-ks`` the distribution of its scores (a detector that alarms more,
or less, than on its reference). It has no SHAP attributions and no actual value to be wrong
about, so ``attribution`` and the ``error-`` detectors do not apply (``DETECTOR_DRIFT`` lists
those that do).

The first ``reference`` observations are the reference period: the detectors are fitted on
them (the attribution explainer's background is drawn from them too), and watch what comes
after. Actual values come from the next window when it is the previous one moved by one row
(a client sliding its window along a series), or from a live source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amml.monitor.attribution_drift import AttributionDrift
from amml.monitor.base import DriftDetector, DriftEvent
from amml.monitor.error_drift import ErrorDrift
from amml.monitor.feature_drift import FeatureDrift
from amml.monitor.mmd import MMDDrift
from amml.monitor.prediction_drift import PredictionDrift

DETECTORS = ("input-ks", "input-psi", "input-wasserstein", "input-mmd", "prediction-ks",
             "attribution", "error-adwin", "error-page_hinkley")

#: The drift detectors that apply to a fitted anomaly detector's answers (scores, no actuals).
DETECTOR_DRIFT = ("input-ks", "input-psi", "input-wasserstein", "input-mmd", "prediction-ks")


@dataclass
class Scored:
    """What one observation produced: per detector its score (and threshold), and events."""

    at: float
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)
    events: list[tuple[DriftEvent, float, float]] = field(default_factory=list)  # event,
    # detected time, drift-point time


class DriftPipeline:
    def __init__(self, model: Any, columns: Sequence[str], outputs: Sequence[str], *,
                 scaler: Any = None, reference: int = 200, window: int = 50,
                 detectors: Sequence[str] = DETECTORS, background: int = 32) -> None:
        unknown = [d for d in detectors if d not in DETECTORS]
        if unknown:
            raise ValueError(f"unknown detectors {unknown} (known: {', '.join(DETECTORS)})")
        if reference < 2 * window:
            raise ValueError(f"the reference ({reference}) must hold at least two windows "
                             f"({2 * window})")
        self.model, self.scaler = model, scaler
        self.columns, self.outputs = list(columns), list(outputs)
        self.reference_size, self.window, self.background = reference, window, background
        self.wanted = list(detectors)
        self.detectors: dict[str, DriftDetector] = {}
        self._reference: list[tuple[float, np.ndarray, np.ndarray, float | None]] = []
        self._times: list[float] = []
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self.explainer: Any = None

    @property
    def ready(self) -> bool:
        return bool(self.detectors)

    # -- what each observation gives ---------------------------------------------------
    def _actual_error(self, window: np.ndarray, forecast: np.ndarray,
                      actual: np.ndarray | None) -> float | None:
        previous, self._previous = self._previous, (window, forecast)
        if not any(name.startswith("error-") for name in self.wanted):
            return None  # nothing watches errors (a detector's scores have no actual value)
        if (actual is None and previous is not None and set(self.outputs) <= set(self.columns)
                and np.array_equal(previous[0][1:], window[:-1])):
            actual = window[-1, [self.columns.index(o) for o in self.outputs]]
        if actual is None or previous is None:
            return None
        return float(np.abs(np.asarray(actual) - previous[1][0]).mean())

    def _attributions(self, windows: np.ndarray) -> np.ndarray:
        from amml.ops.explain.attribution import in_original_units

        x = windows if self.scaler is None else self.scaler.transform(
            windows, self.columns, missing="identity")
        return in_original_units(self.explainer.explain(x), self.scaler).features()

    # -- fitting -------------------------------------------------------------------------
    def _fit(self) -> None:
        from amml.ops.explain.attribution import ModelExplainer

        ref = self._reference
        rows = np.stack([w[-1] for _, w, _, _ in ref])
        means = np.stack([f.mean(axis=0) for _, _, f, _ in ref])
        names = self.columns
        w = self.window
        for name in self.wanted:
            if name.startswith("input-") and name != "input-mmd":
                self.detectors[name] = FeatureDrift(rows, statistic=name[6:],  # type: ignore
                                                    names=names, window=w)
            elif name == "input-mmd":
                self.detectors[name] = MMDDrift(rows, window=w)
            elif name == "prediction-ks":
                self.detectors[name] = PredictionDrift(means, names=self.outputs, window=w)
            elif name == "error-adwin":
                self.detectors[name] = ErrorDrift("adwin")
            elif name == "error-page_hinkley":
                self.detectors[name] = ErrorDrift("page_hinkley")
        if "attribution" in self.wanted:
            windows = np.stack([w_ for _, w_, _, _ in ref])
            pick = np.linspace(0, len(windows) - 1, min(self.background, len(windows)))
            scaled = windows if self.scaler is None else self.scaler.transform(
                windows, self.columns, missing="identity")
            self.explainer = ModelExplainer(self.model, scaled[pick.astype(int)])
            attributions = self._attributions(windows)
            self.feature_names = [f"{c}:{b}" for c in self.columns
                                  for b in self.explainer.explain(scaled[:1]).band_names]
            self.detectors["attribution"] = AttributionDrift(attributions,
                                                             names=self.feature_names)

    # -- observing -----------------------------------------------------------------------
    def observe(self, items: Sequence[tuple[float, np.ndarray, np.ndarray]],
                actuals: Sequence[np.ndarray | None] | None = None) -> list[Scored]:
        """Feed observations ``(time, window, forecast)`` (original units), oldest first."""
        out: list[Scored] = []
        actuals = actuals or [None] * len(items)
        pending: list[tuple[float, np.ndarray, np.ndarray, float | None]] = []
        for (at, window, forecast), actual in zip(items, actuals, strict=True):
            error = self._actual_error(window, forecast, actual)
            if not self.ready:
                self._reference.append((at, window, forecast, error))
                if len(self._reference) >= self.reference_size:
                    self._fit()
                continue
            pending.append((at, window, forecast, error))
        if not pending:
            return out
        attributions = (self._attributions(np.stack([w for _, w, _, _ in pending]))
                        if "attribution" in self.detectors else None)
        for i, (at, window, forecast, error) in enumerate(pending):
            scored = Scored(at)
            self._times.append(at)
            inputs = {"row": window[-1], "mean": forecast.mean(axis=0),
                      "attribution": None if attributions is None else attributions[i]}
            for name, detector in self.detectors.items():
                if name.startswith("error-"):
                    if error is None:
                        continue
                    event = detector.update(error)
                    count = detector.n
                else:
                    value = (inputs["attribution"] if name == "attribution" else
                             inputs["mean"] if name.startswith("prediction") else inputs["row"])
                    event = detector.update(value)
                    count = detector.n
                scored.scores[name] = (float(detector.score), float(detector.threshold))
                if event is not None:
                    scored.events.append((event, at, self._time_of(name, event, count)))
            out.append(scored)
        return out

    def _time_of(self, name: str, event: DriftEvent, count: int) -> float:
        """The time of the observation a detector's drift point counts to (error detectors
        count only observations with an actual: they are matched from the end)."""
        back = count - 1 - event.drift_point
        times = self._times
        return times[max(0, len(times) - 1 - back)]

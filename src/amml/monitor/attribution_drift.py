"""Attribution drift: has the model started to *use* its inputs differently?

The paper's method (XAI-based drift detection): the attributions of the reference period's
predictions (SHAP values, one vector per prediction: per input feature, or per channel and
lag band for a forecaster, see :meth:`amml.ops.explain.attribution.Explanation.features`)
fit an anomaly detector; each live prediction's attributions are scored by it, and a rise in
anomalous ones is drift. The detector is the mean distance to the ``neighbours`` nearest
reference attribution vectors, in the attributions' own units (the model's output units),
never standardised per feature: an input the model ignores has attributions near zero
whatever its values do, so drift confined to it cannot move the score; one the model leans
on moves it in proportion to how much the model leans on it.

The reference is split in time: its first ``fit_fraction`` is what the detector knows, the
rest calibrates the score's ``quantile`` (an exceedance then happens with probability
``1 - quantile`` under no drift). A CUSUM over exceedances (:mod:`.cusum`) alarms and gives
the confidence (binomial test of the exceedance rate since the CUSUM last left zero); the
drift point is the change point of the (log) scores in the observations before the alarm
(:func:`~amml.monitor.base.locate_shift`, over four times the CUSUM's run, at least 100).
``score`` is the CUSUM statistic over its threshold (alarm at 1).
After an alarm the drift is "on" and raises no new event until the exceedance rate of the
last ``rearm`` observations is back under halfway between the usual and the alarming rate.

With labels or actual values, pass **error-weighted** attributions (each prediction's
attributions times the derivative of its loss at that prediction, e.g. ``-2 * residual``
for squared error: a first-order attribution of the loss): then a change of the concept
with the inputs' distribution unchanged also shows, since the loss moves along the features
the model relies on. Without labels the plain attributions show drift in what the model
uses, and nothing else.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> weights = np.array([2.0, 1.0, 0.0])  # the third input is ignored
>>> def attributions(x):
...     return weights * (x - 0.0)
>>> detector = AttributionDrift(attributions(rng.normal(size=(2000, 3))), names=["a", "b", "c"])
>>> ignored = rng.normal(size=(1000, 3)); ignored[500:, 2] += 5
>>> detector.update_many(attributions(ignored))
[]
>>> used = rng.normal(size=(1000, 3)); used[500:, 1] += 2
>>> event = detector.update_many(attributions(used))[0]
>>> event.features[0], 1500 <= event.drift_point <= 1510, event.confidence > 0.99
('b', True, True)
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from amml.monitor.base import DriftDetector, DriftEvent, as_matrix, locate_shift
from amml.monitor.cusum import ExceedanceCusum


class AttributionDrift(DriftDetector):
    name = "attribution"

    def __init__(self, reference: Any, *, names: list[str] | None = None,
                 neighbours: int = 10, quantile: float = 0.95, p1: float = 0.3,
                 h: float = 8.0, fit_fraction: float = 0.5, max_fit: int = 4000,
                 rearm: int = 50) -> None:
        super().__init__()
        from sklearn.neighbors import NearestNeighbors

        data, self.names = as_matrix(reference, names)
        cut = int(len(data) * fit_fraction)
        if cut < neighbours + 1 or len(data) - cut < 20:
            raise ValueError(f"the reference has {len(data)} attribution vectors; it needs "
                             f"at least {neighbours + 1} to fit and 20 to calibrate")
        fit, calibration = data[:cut], data[cut:]
        if len(fit) > max_fit:  # evenly thinned: the nearest-neighbour search stays fast
            fit = fit[np.linspace(0, len(fit) - 1, max_fit).astype(int)]
        self.neighbours = neighbours
        self._index = NearestNeighbors(n_neighbors=neighbours).fit(fit)
        self.cut = float(np.quantile(self.scores(calibration), quantile))
        self.cusum = ExceedanceCusum(1.0 - quantile, p1, h)
        self.threshold = 1.0
        self._mean, std = fit.mean(axis=0), fit.std(axis=0)
        # an ignored input's attributions barely vary: a floor keeps it from being named
        self._floor = 0.1 * std.mean() + 1e-12
        self._std = std + self._floor
        self._recent: deque[np.ndarray] = deque(maxlen=5000)
        self._scores: deque[float] = deque(maxlen=5000)
        self.rearm = rearm
        self.drifting = False
        self._hits: deque[bool] = deque(maxlen=rearm)

    def _shift(self, run: np.ndarray) -> np.ndarray:
        """Per feature, how far the run's attributions moved: the larger of a t-like
        statistic of their mean and one of their spread, against the reference's."""
        n = len(run)
        where = np.abs(run.mean(axis=0) - self._mean) / self._std * np.sqrt(n)
        spread = np.abs(np.log((run.std(axis=0) + self._floor) / self._std)) * np.sqrt(n / 2)
        return np.maximum(where, spread if n > 2 else 0.0)

    def scores(self, attributions: np.ndarray) -> np.ndarray:
        """Anomaly scores (mean distance to the nearest reference attributions)."""
        distances, _ = self._index.kneighbors(np.atleast_2d(attributions))
        return distances.mean(axis=1)

    def update(self, x: Any) -> DriftEvent | None:
        a = np.asarray(x, dtype=np.float64).reshape(1, -1)
        return self._step(float(self.scores(a)[0]), a[0])

    def update_many(self, xs: Any) -> list[DriftEvent]:
        data = np.atleast_2d(np.asarray(xs, dtype=np.float64))
        if not len(data):
            return []
        found = []
        for score, a in zip(self.scores(data), data, strict=True):
            event = self._step(float(score), a)
            if event is not None:
                found.append(event)
        return found

    def _step(self, score: float, a: np.ndarray) -> DriftEvent | None:
        index = self.n
        self.n += 1
        self._recent.append(a)
        self._scores.append(score)
        exceeded = score > self.cut
        self._hits.append(exceeded)
        alarm = self.cusum.update(exceeded)
        self.score = self.cusum.statistic / self.cusum.h
        if self.drifting and len(self._hits) == self.rearm and (
                np.mean(self._hits) < (self.cusum.p0 + self.cusum.p1) / 2):
            self.drifting = False  # the drift is over: the next one is news
        if not alarm or self.drifting:
            return None
        self.drifting = True
        run_start = self.cusum.last_start
        span = min(len(self._scores), max(100, 4 * (index - run_start + 1)))
        recent = np.log(np.asarray(self._scores)[-span:] + 1e-12)
        start = index + 1 - span + locate_shift(recent)
        run = np.stack(list(self._recent)[-(index - start + 1):])
        shift = self._shift(run)
        flagged = tuple(self.names[i] for i in np.argsort(-shift)[:3] if shift[i] > 3.0)
        count, hits = self.cusum.last_run
        return self._raise(DriftEvent(
            self.name, index, start, self.cusum.confidence(), 1.0, 1.0, flagged,
            {"exceedances": hits, "observations": count, "expected_rate": self.cusum.p0,
             "score_cut": self.cut,
             "shift": {self.names[i]: float(shift[i]) for i in np.argsort(-shift)[:5]}}))

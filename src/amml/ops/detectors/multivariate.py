"""Multivariate detectors fitted on a reference period: PCA T²+Q and MSET.

* ``pca_t2q``: principal components of the reference's standardised (and ``smooth``-row
  averaged) rows keep ``variance`` of their variance; a row's raw score is Hotelling's T² in
  the kept components divided by their number, plus the squared prediction error Q (the part
  the components do not explain) divided by the reference's unexplained variance. The classic
  process-monitoring pair (Jackson & Mudholkar, 1979), in one number. ``combine="max"``
  instead divides T² and Q each by its own reference quantile (``quantile``; the 99% one when
  ``quantile`` is 1.0) and takes the larger: neither statistic's scale drowns the other, and a
  row alarms when either leaves its own normal range (the usual two-chart reading). Its raw
  score is already in units of those reference quantiles, so the quantile threshold is
  ``factor`` itself (``threshold="pot"`` still fits the tail of the combined score).
* ``mset``: the Multivariate State Estimation Technique's similarity-based estimate
  (Gross et al., 1997): a memory of ``memory`` reference states (each column's extremes, then
  evenly spaced rows); a row is estimated as the similarity-weighted combination of the memory
  states (Gaussian kernel, bandwidth the median distance between them) and its raw score is the
  squared residual.

Both are :class:`~amml.ops.detectors.fitted.FittedDetector`: ``fit(reference)`` freezes the
scaling, the model and the threshold; see that module for the two lives.

>>> import numpy as np
>>> from amml.ops.detectors.multivariate import MSETDetector
>>> rng = np.random.default_rng(1)
>>> t = rng.normal(0, 1, 500)
>>> rows = np.column_stack([t, 2 * t + rng.normal(0, 0.1, 500)])  # two sensors that agree
>>> detector = MSETDetector().fit(rows[:400])
>>> rows[450] = [1.5, -3.0]  # they disagree, each within its usual range
>>> scores = detector.score(rows[400:])
>>> bool(scores[50] > 0.5 > float(np.median(scores)))
True
"""

from __future__ import annotations

import numpy as np

from amml._exceptions import OpError
from amml.ops.detectors.base import register_detector
from amml.ops.detectors.fitted import FittedDetector
from amml.ops.detectors.windowed import check_int, check_share


@register_detector
class PCAT2QDetector(FittedDetector):
    """PCA T² + Q on the reference period (see the module docstring)."""

    name = "pca_t2q"

    def __init__(self, warmup: int = 400, smooth: int = 1, variance: float = 0.9,
                 threshold: str = "quantile", quantile: float = 1.0, factor: float = 1.0,
                 risk: float = 1e-3, refit: int = 0, history: int = 1000,
                 combine: str = "sum") -> None:
        self.warmup, self.smooth, self.variance = warmup, smooth, variance
        self.combine = combine
        if combine not in ("sum", "max"):
            raise OpError(f"combine must be 'sum' or 'max', got {combine!r}")
        self.threshold, self.quantile, self.factor, self.risk = threshold, quantile, factor, risk
        self.refit, self.history = refit, history
        check_share("variance", variance)
        self._check_common()

    def _fit_model(self, features: np.ndarray) -> None:
        self._mean = features.mean(axis=0)
        centred = features - self._mean
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        var = singular ** 2 / max(len(centred) - 1, 1)
        total = var.sum()
        keep = 1 if total <= 0 else int(np.searchsorted(np.cumsum(var) / total,
                                                        self.variance) + 1)
        keep = min(keep, len(var))
        self._components = vt[:keep].T
        self._var = np.maximum(var[:keep], 1e-12)
        rest = float(var[keep:].sum())
        self._q_scale = np.array([max(rest, 1e-6 * max(float(total), 1e-12), 1e-12)])
        # each statistic's own reference quantile (used by combine="max")
        t2, q = self._parts(features)
        level = self.quantile if self.quantile < 1.0 else 0.99
        self._part_scale = np.array([max(float(np.quantile(t2, level)), 1e-12),
                                     max(float(np.quantile(q, level)), 1e-12)])

    def _threshold(self, raw: np.ndarray) -> float:
        if self.combine == "max" and self.threshold == "quantile":
            return max(float(self.factor), 1e-12)  # raw is in units of the parts' quantiles
        return super()._threshold(raw)

    def _parts(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hotelling's T² per kept component, and Q (squared prediction error)."""
        centred = features - self._mean
        t = centred @ self._components
        t2 = (t ** 2 / self._var).sum(axis=1) / len(self._var)
        q = ((centred - t @ self._components.T) ** 2).sum(axis=1)
        return t2, q

    def _raw(self, features: np.ndarray) -> np.ndarray:
        t2, q = self._parts(features)
        if self.combine == "max":
            return np.maximum(t2 / self._part_scale[0], q / self._part_scale[1])
        return t2 + q / self._q_scale[0]

    def _model_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self._mean, "components": self._components, "var": self._var,
                "q_scale": self._q_scale, "part_scale": self._part_scale}

    def _set_model_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._mean, self._components = arrays["mean"], arrays["components"]
        self._var, self._q_scale = arrays["var"], arrays["q_scale"]
        self._part_scale = arrays.get("part_scale", np.ones(2))  # saved before combine="max"


@register_detector
class MSETDetector(FittedDetector):
    """MSET-style similarity-based state estimation (see the module docstring)."""

    name = "mset"

    def __init__(self, warmup: int = 400, smooth: int = 1, memory: int = 100,
                 regularization: float = 1e-3, threshold: str = "quantile",
                 quantile: float = 1.0, factor: float = 1.0, risk: float = 1e-3,
                 refit: int = 0, history: int = 1000) -> None:
        self.warmup, self.smooth, self.memory = warmup, smooth, memory
        self.regularization = regularization
        self.threshold, self.quantile, self.factor, self.risk = threshold, quantile, factor, risk
        self.refit, self.history = refit, history
        check_int("memory", memory, 2)
        if not regularization > 0:
            raise OpError(f"regularization must be > 0, got {regularization!r}")
        self._check_common()

    def _fit_model(self, features: np.ndarray) -> None:
        # each column's extremes (so the memory spans the normal range), then evenly spaced rows
        chosen = list(dict.fromkeys([*np.argmin(features, axis=0).tolist(),
                                     *np.argmax(features, axis=0).tolist()]))
        spread = np.linspace(0, len(features) - 1, max(self.memory - len(chosen), 0)).astype(int)
        chosen = list(dict.fromkeys([*chosen, *spread.tolist()]))[:self.memory]
        memory = features[np.array(sorted(chosen))]
        distances = np.sqrt(((memory[:, None, :] - memory[None, :, :]) ** 2).sum(axis=-1))
        off = distances[np.triu_indices(len(memory), 1)]
        bandwidth = float(np.median(off)) if off.size and np.median(off) > 0 else 1.0
        self._memory = memory
        self._bandwidth = np.array([bandwidth])
        gram = self._kernel(memory) + self.regularization * np.eye(len(memory))
        self._inverse = np.linalg.inv(gram)

    def _kernel(self, rows: np.ndarray) -> np.ndarray:
        squared = ((rows[:, None, :] - self._memory[None, :, :]) ** 2).sum(axis=-1)
        return np.exp(-squared / (2.0 * self._bandwidth[0] ** 2))

    def _raw(self, features: np.ndarray) -> np.ndarray:
        out = np.empty(len(features))
        for start in range(0, len(features), 4096):  # bounded memory for long batches
            rows = features[start:start + 4096]
            weights = self._kernel(rows) @ self._inverse
            total = weights.sum(axis=1, keepdims=True)
            weights = weights / np.where(np.abs(total) > 1e-12, total, 1.0)
            estimate = weights @ self._memory
            out[start:start + len(rows)] = ((rows - estimate) ** 2).sum(axis=1)
        return out

    def _model_arrays(self) -> dict[str, np.ndarray]:
        return {"memory": self._memory, "bandwidth": self._bandwidth, "inverse": self._inverse}

    def _set_model_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._memory, self._bandwidth = arrays["memory"], arrays["bandwidth"]
        self._inverse = arrays["inverse"]

"""Input drift per feature: Kolmogorov-Smirnov, population stability index or Wasserstein
distance between the last window and the reference, each calibrated on the reference
(:mod:`.windowed`).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> detector = FeatureDrift(rng.normal(size=(2000, 2)), statistic="ks", names=["a", "b"])
>>> stream = np.vstack([rng.normal(size=(600, 2)), rng.normal([0, 2], 1, size=(600, 2))])
>>> [(e.features, e.drift_point) for e in detector.update_many(stream)][:1]
[(('b',), 602)]
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from amml.monitor.windowed import WindowedDrift

Statistic = Literal["ks", "psi", "wasserstein"]


class FeatureDrift(WindowedDrift):
    """One test per feature; ``statistic``: ``ks``, ``psi`` (10 reference-quantile bins) or
    ``wasserstein`` (in units of the reference's standard deviation)."""

    def __init__(self, reference: Any, *, statistic: Statistic = "ks", bins: int = 10,
                 **options: Any) -> None:
        if statistic not in ("ks", "psi", "wasserstein"):
            raise ValueError(f"statistic must be 'ks', 'psi' or 'wasserstein', got "
                             f"'{statistic}'")
        self.statistic, self.bins = statistic, bins
        self.name = f"input-{statistic}"
        super().__init__(reference, **options)

    def prepare(self, reference: np.ndarray) -> None:
        self._sorted = np.sort(reference, axis=0)
        self._scale = reference.std(axis=0) + 1e-12
        qs = np.linspace(0, 1, self.bins + 1)[1:-1]
        self._edges = [np.unique(np.quantile(reference[:, j], qs))
                       for j in range(reference.shape[1])]

    def statistics(self, window: np.ndarray, reference: np.ndarray | None = None
                   ) -> np.ndarray:
        ref = self._sorted if reference is None else np.sort(reference, axis=0)
        out = np.empty(window.shape[1])
        for j in range(window.shape[1]):
            out[j] = self._one(np.sort(window[:, j]), ref[:, j], j)
        return out

    def _one(self, win: np.ndarray, ref: np.ndarray, j: int) -> float:
        if self.statistic == "ks":
            grid = np.concatenate([win, ref])
            cdf_w = np.searchsorted(win, grid, side="right") / len(win)
            cdf_r = np.searchsorted(ref, grid, side="right") / len(ref)
            return float(np.abs(cdf_w - cdf_r).max())
        if self.statistic == "wasserstein":
            from scipy.stats import wasserstein_distance

            return float(wasserstein_distance(win, ref) / self._scale[j])
        edges = self._edges[j]
        p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
        q = np.bincount(np.searchsorted(edges, win, side="right"), minlength=len(edges) + 1)
        p = (p + 0.5) / (p.sum() + 0.5 * len(p))
        q = (q + 0.5) / (q.sum() + 0.5 * len(q))
        return float(np.sum((q - p) * np.log(q / p)))

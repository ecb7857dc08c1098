"""Multivariate input drift: the maximum mean discrepancy (RBF kernel, bandwidth by the
median heuristic on the reference) between the last window and the reference, calibrated
on the reference (:mod:`.windowed`). Features are standardised by the reference first.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> cov = [[1, 0.9], [0.9, 1]]
>>> detector = MMDDrift(rng.multivariate_normal([0, 0], cov, 2000))
>>> flipped = rng.multivariate_normal([0, 0], [[1, -0.9], [-0.9, 1]], 600)
>>> events = detector.update_many(np.vstack([rng.multivariate_normal([0, 0], cov, 600), flipped]))
>>> events[0].features, 575 <= events[0].drift_point <= 600
(('all',), True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amml.monitor.windowed import WindowedDrift


class MMDDrift(WindowedDrift):
    name = "input-mmd"

    def __init__(self, reference: Any, *, max_reference: int = 500, seed: int = 0,
                 **options: Any) -> None:
        self.max_reference, self.seed = max_reference, seed
        super().__init__(reference, **options)

    def output_names(self) -> list[str]:
        return ["all"]

    def prepare(self, reference: np.ndarray) -> None:
        self._center = reference.mean(axis=0)
        self._scale = reference.std(axis=0) + 1e-12
        self._ref = self._subsample(self._standard(reference))
        d = _sq_dist(self._ref, self._ref)
        self._gamma = 1.0 / (np.median(d[d > 0]) if np.any(d > 0) else 1.0)
        self._ref_term = np.exp(-self._gamma * d).mean()

    def _standard(self, x: np.ndarray) -> np.ndarray:
        return (x - self._center) / self._scale

    def _subsample(self, x: np.ndarray) -> np.ndarray:
        if len(x) <= self.max_reference:
            return x
        pick = np.random.default_rng(self.seed).choice(len(x), self.max_reference,
                                                       replace=False)
        return x[np.sort(pick)]

    def statistics(self, window: np.ndarray, reference: np.ndarray | None = None
                   ) -> np.ndarray:
        w = self._standard(window)
        if reference is None:
            ref, ref_term = self._ref, self._ref_term
        else:
            ref = self._subsample(self._standard(reference))
            ref_term = np.exp(-self._gamma * _sq_dist(ref, ref)).mean()
        kw = np.exp(-self._gamma * _sq_dist(w, w)).mean()
        kx = np.exp(-self._gamma * _sq_dist(w, ref)).mean()
        return np.array([kw + ref_term - 2 * kx])


    def split_statistic(self, segment: np.ndarray, output: int) -> float:
        return float(len(segment) * self.statistics(segment[-self.max_reference:])[0])


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T)

"""A CUSUM over exceedances: the change-point rule of the per-observation detectors.

Each observation says whether its anomaly score exceeded the reference's ``1 - p0``
quantile (under no drift that happens with probability ``p0``). The Bernoulli
log-likelihood-ratio CUSUM for a rise of that rate to ``p1`` alarms when its statistic
reaches ``h``; the statistic last left zero at the estimated **drift point**, and the rate of
exceedances since then, tested against ``p0`` (binomial), gives the confidence.

>>> cusum = ExceedanceCusum(p0=0.05, p1=0.5, h=5.0)
>>> first = next(i for i in range(200) if cusum.update(i >= 100 and i % 2 == 0))
>>> first, cusum.last_start, round(cusum.confidence(), 4)
(104, 100, 0.9988)
"""

from __future__ import annotations

import math


class ExceedanceCusum:
    def __init__(self, p0: float = 0.05, p1: float = 0.3, h: float = 8.0) -> None:
        if not 0 < p0 < p1 < 1:
            raise ValueError(f"need 0 < p0 < p1 < 1, got p0={p0}, p1={p1}")
        self.p0, self.p1, self.h = p0, p1, h
        self.up = math.log(p1 / p0)
        self.down = math.log((1 - p1) / (1 - p0))
        self.reset()
        self.n = 0
        self.last_start = 0
        self.last_run = (0, 0)  # (observations, exceedances) since the drift point

    def reset(self) -> None:
        self.statistic = 0.0
        self._start = None  # where the statistic last left zero
        self._count = self._hits = 0

    def update(self, exceeded: bool) -> bool:
        """One observation; True when the CUSUM alarms (it then starts again from zero)."""
        index = self.n
        self.n += 1
        self.statistic = max(0.0, self.statistic + (self.up if exceeded else self.down))
        if self.statistic == 0.0:
            self._start, self._count, self._hits = None, 0, 0
            return False
        if self._start is None:
            self._start = index
        self._count += 1
        self._hits += int(exceeded)
        if self.statistic >= self.h:
            self.last_start, self.last_run = self._start, (self._count, self._hits)
            self.reset()
            return True
        return False

    def confidence(self) -> float:
        """One minus the binomial p-value of the last alarm's run of exceedances."""
        from scipy.stats import binom

        count, hits = self.last_run
        if count == 0:
            return 0.0
        return float(1.0 - binom.sf(hits - 1, count, self.p0))

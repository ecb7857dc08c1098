"""Score calibration: turn any raw anomaly score into a score in ``[0, 1]`` learnt online.

``Likelihood`` is HTM's *anomaly likelihood* (Ahmad et al., 2017): the mean of the last
``short`` raw scores is compared with the mean and deviation of the last ``long`` raw scores
(before it), and the upper Gaussian tail ``Q(z)`` says how unusual it is. The score reported is
``log(1 - likelihood) / log(1e-10)``, as NAB's HTM detector reports it, so that the scores
spread over ``[0, 1]`` (0.5 is a one-in-100,000 event) and one threshold fits every series.

>>> import numpy as np
>>> from amml.ops.detectors.calibration import Likelihood
>>> calibrate = Likelihood()
>>> rng = np.random.default_rng(0)
>>> scores = [calibrate.update(abs(x)) for x in rng.normal(0, 1, 500)]
>>> spike = calibrate.update(8.0)
>>> bool(spike > 0.99 and spike > np.nanmax(scores)), bool(np.isnan(scores[:32]).all())
(True, True)
"""

from __future__ import annotations

import math

from amml.ops.detectors.base import RingBuffer

_LOG_FLOOR = math.log(1e-10)


def gaussian_tail(z: float) -> float:
    """Upper tail probability ``P(Z > z)`` of a standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def log_likelihood_score(likelihood: float) -> float:
    """NAB/HTM's log scaling of a likelihood in ``[0, 1]`` to a score in ``[0, 1]``."""
    return min(max(math.log(1.0000000001 - likelihood) / _LOG_FLOOR, 0.0), 1.0)


class Likelihood:
    """Online raw score -> calibrated score in ``[0, 1]`` (see the module docstring).

    ``warmup``: raw scores to see before the first score (NaN until then: nothing has been
    learnt to calibrate against); ``min_std`` keeps a constant raw history from turning the
    first small change into a certainty.
    """

    def __init__(self, short: int = 1, long: int = 2000, warmup: int = 32,
                 min_std: float = 1e-4) -> None:
        self.short, self.long, self.warmup, self.min_std = short, long, warmup, min_std
        self._short = RingBuffer(short)
        self._long = RingBuffer(long)
        self._seen = 0

    def update(self, raw: float) -> float:
        if not math.isfinite(raw):
            raw = 0.0
        self._short.push(raw)
        self._seen += 1
        score = math.nan
        if self._seen > self.warmup and self._long.count >= 2:
            mean, std = self._long.mean_std()
            recent = self._short.sum / self._short.count
            likelihood = 1.0 - gaussian_tail((recent - mean) / max(std, self.min_std))
            score = log_likelihood_score(likelihood)
        self._long.push(raw)
        return score


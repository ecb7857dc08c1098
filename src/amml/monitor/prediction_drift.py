"""Prediction drift: the distribution of the model's outputs (e.g. each forecast's mean
over the horizon, per output column) against the reference period's, by the same
reference-calibrated window tests as the inputs (:mod:`.feature_drift`).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> detector = PredictionDrift(rng.normal(size=1000), names=["OT"])
>>> events = detector.update_many(np.concatenate([rng.normal(size=400), rng.normal(3, 1, 400)]))
>>> events[0].detector, events[0].features, 395 <= events[0].drift_point <= 410
('prediction-ks', ('OT',), True)
"""

from __future__ import annotations

from typing import Any

from amml.monitor.feature_drift import FeatureDrift, Statistic


class PredictionDrift(FeatureDrift):
    def __init__(self, reference: Any, *, statistic: Statistic = "ks", **options: Any) -> None:
        super().__init__(reference, statistic=statistic, **options)
        self.name = f"prediction-{statistic}"

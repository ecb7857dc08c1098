"""PyOD's detectors behind AMML's fit/score API: ``pyod`` with ``model`` one of ECOD, COPOD,
IForest, KNN, LOF, PCA, AutoEncoder (PyOD's defaults, a fixed seed where the model is random).

PyOD fits on the reference period's standardised (``smooth``-row averaged) rows and scores
with ``decision_function``. The default threshold is PyOD's own default: ``contamination=0.1``
puts it at the 90% quantile of the reference's scores (``quantile=0.9, factor=1``), so
``pyod`` with default parameters alarms as PyOD's ``predict`` does.

PyOD models are scikit-learn objects that only pickle; AMML never pickles. A saved ``pyod``
detector stores the reference features it was fitted on (and the seed), and loading refits
the model on them: the same data, the same seed, the same model.

>>> import numpy as np
>>> from amml.ops.detectors.pyod_models import PyODDetector
>>> rng = np.random.default_rng(0)
>>> detector = PyODDetector(model="ECOD").fit(rng.normal(0, 1, (300, 2)))
>>> scores = detector.score(np.array([[0.0, 0.1], [9.0, -9.0]]))
>>> bool(scores[1] > 0.5 > scores[0])
True
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from amml._exceptions import OpError
from amml.ops.detectors.base import register_detector
from amml.ops.detectors.fitted import FittedDetector

#: PyOD model name -> (module, class, whether it takes ``random_state``).
PYOD_MODELS: dict[str, tuple[str, str, bool]] = {
    "ECOD": ("pyod.models.ecod", "ECOD", False),
    "COPOD": ("pyod.models.copod", "COPOD", False),
    "IForest": ("pyod.models.iforest", "IForest", True),
    "KNN": ("pyod.models.knn", "KNN", False),
    "LOF": ("pyod.models.lof", "LOF", False),
    "PCA": ("pyod.models.pca", "PCA", True),
    "AutoEncoder": ("pyod.models.auto_encoder", "AutoEncoder", True),
}

#: PyOD's ECOD and COPOD score new rows against the training rows *and the other rows of the
#: batch* (their empirical distributions are taken over both), as PyOD users get them: a row's
#: score depends on its batch, so those two skip the checks that need it not to.
BATCH_DEPENDENT = frozenset({"ECOD", "COPOD"})
_BATCH_REASON = ("PyOD's {model} takes its empirical distributions over the training rows and "
                 "the scored batch together, so a row's score depends on the rows scored with it")


def make_pyod(model: str, seed: int) -> Any:
    """A PyOD model by name with its default parameters (and ``seed`` where it is random)."""
    import importlib

    module, cls_name, seeded = PYOD_MODELS[model]
    cls = getattr(importlib.import_module(module), cls_name)
    kwargs: dict[str, Any] = {"random_state": seed} if seeded else {}
    if model == "AutoEncoder":
        kwargs["verbose"] = 0  # no progress bars; the model is PyOD's default otherwise
    return cls(**kwargs)


@register_detector
class PyODDetector(FittedDetector):
    """A PyOD model fitted on the reference period (see the module docstring)."""

    name = "pyod"

    def __init__(self, model: str = "ECOD", warmup: int = 400, smooth: int = 1, seed: int = 0,
                 threshold: str = "quantile", quantile: float = 0.9, factor: float = 1.0,
                 risk: float = 1e-3, refit: int = 0, history: int = 1000) -> None:
        if model not in PYOD_MODELS:
            raise OpError(f"unknown PyOD model {model!r} (known: {', '.join(PYOD_MODELS)})")
        self.model, self.seed = model, seed
        self.warmup, self.smooth = warmup, smooth
        self.threshold, self.quantile, self.factor, self.risk = threshold, quantile, factor, risk
        self.refit, self.history = refit, history
        self._check_common()

    def _fit_model(self, features: np.ndarray) -> None:
        self._reference = np.asarray(features, dtype=float)
        self._estimator = make_pyod(self.model, self.seed).fit(self._reference)
        # PyOD's scores have no fixed origin: measured from the reference's lowest, so the
        # calibrated score raw / (raw + threshold) starts at 0 on the most normal row
        self._offset = float(np.min(self._estimator.decision_function(self._reference)))

    @property
    def rowwise(self) -> bool:
        return self.model not in BATCH_DEPENDENT  # see BATCH_DEPENDENT

    def _raw(self, features: np.ndarray) -> np.ndarray:
        estimator = self._estimator
        if self.model in BATCH_DEPENDENT:
            # their decision_function stores the batch's distributions on the estimator: a
            # shallow copy per call keeps concurrent calls (a server's threads) apart
            estimator = copy.copy(estimator)
        scores = estimator.decision_function(features)
        return np.asarray(scores, dtype=float) - self._offset

    def skipped_checks(self) -> dict[str, str]:
        skipped = {}
        if self.model in BATCH_DEPENDENT:
            reason = _BATCH_REASON.format(model=self.model)
            skipped = {"batch_equals_streaming": reason, "causal": reason,
                       "finds_spike": f"{self.model} sums per-column tail probabilities: rows "
                                      "beyond the reference in several columns outrank one "
                                      "larger spike"}
        if self.model == "IForest":
            skipped["finds_spike"] = ("isolation depth saturates beyond the reference's range: "
                                      "every row outside it isolates in about one split, so "
                                      "a large spike does not outrank a small excursion")
        return skipped

    def _model_arrays(self) -> dict[str, np.ndarray]:
        return {"reference": self._reference}

    def _set_model_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._fit_model(arrays["reference"])

"""An ensemble detector: several registered detectors on the same stream, their calibrated
scores combined.

Every detector's score already means the same thing (calibrated to ``[0, 1]``), so scores can
be combined directly: ``max`` alarms when any member is sure (highest recall), ``mean``
averages the evidence (fewer false alarms from one noisy member), ``vote`` is the (weighted)
share of members whose score is at least ``vote_threshold`` (a discrete score: 0, 1/k, ...).

>>> import numpy as np
>>> from amml.ops.detectors.base import make_detector
>>> values = np.r_[np.random.default_rng(0).normal(0, 1, 600), 12.0, np.zeros(5)]
>>> ensemble = make_detector("ensemble", members=["amml", {"name": "windowed_gaussian",
...                          "params": {"window": 500}}], combine="mean")
>>> scores = ensemble.score_series(values)
>>> bool(scores[600] == np.nanmax(scores) and scores[600] > 0.5)
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from amml._exceptions import OpError
from amml.ops.detectors.base import Detector, Value, make_detector, register_detector

#: The members of ``make_detector("ensemble")``: a robust level detector and a seasonal one.
DEFAULT_MEMBERS: tuple[str, ...] = ("rolling_mad", "seasonal")
COMBINES = ("max", "mean", "vote")


def _member(spec: Any, index: int) -> Detector:
    """One member from a name or a ``{"name": ..., "params": {...}}`` mapping."""
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping):
        extra = sorted(set(spec) - {"name", "params"})
        if "name" not in spec or extra:
            raise OpError(f"ensemble member {index}: a mapping needs 'name' and optionally "
                          f"'params', got keys {sorted(spec)}")
        name, params = spec["name"], spec.get("params") or {}
        if not isinstance(params, Mapping):
            raise OpError(f"ensemble member {index} ('{name}'): params must be a mapping, "
                          f"got {type(params).__name__}")
    else:
        raise OpError(f"ensemble member {index}: expected a detector name or "
                      f"{{'name': ..., 'params': {{...}}}}, got {spec!r}")
    try:
        return make_detector(str(name), **dict(params))
    except OpError as exc:
        raise OpError(f"ensemble member {index}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise OpError(f"ensemble member {index} ('{name}'): bad parameters: {exc}") from exc


@register_detector
class EnsembleDetector(Detector):
    """Combine member detectors' calibrated scores (see the module docstring).

    ``members``: detector names or ``{"name": ..., "params": {...}}`` mappings, kept as given
    so ``get_params`` round-trips. ``weights`` (one per member, non-negative, default equal):
    a weighted mean for ``mean``, a weighted share for ``vote``, and for ``max`` each score
    times its weight over the largest weight. Members must agree on ``multivariate``; the
    ensemble is multivariate when they are.
    """

    name = "ensemble"

    def __init__(self, members: Sequence[Any] = DEFAULT_MEMBERS, combine: str = "max",
                 weights: Sequence[float] | None = None, vote_threshold: float = 0.5) -> None:
        self.members, self.combine = members, combine
        self.weights, self.vote_threshold = weights, vote_threshold
        if combine not in COMBINES:
            raise OpError(f"ensemble: unknown combine '{combine}' (known: {', '.join(COMBINES)})")
        if isinstance(members, (str, Mapping)) or not isinstance(members, Iterable):
            raise OpError("ensemble: members must be a list of detector names or "
                          "{'name': ..., 'params': {...}} mappings")
        specs = list(members)
        if not specs:
            raise OpError("ensemble: members is empty; name at least one detector")
        if not 0.0 <= vote_threshold <= 1.0:
            raise OpError(f"ensemble: vote_threshold must be in [0, 1], got {vote_threshold}")
        self._members = [_member(spec, i) for i, spec in enumerate(specs)]
        kinds = {m.multivariate for m in self._members}
        if len(kinds) > 1:
            split = ", ".join(f"{m.name} ({'multi' if m.multivariate else 'uni'}variate)"
                              for m in self._members)
            raise OpError(f"ensemble: members must all be univariate or all multivariate: {split}")
        self.multivariate = kinds.pop()  # type: ignore[misc]  # per instance, from the members
        self._weights = self._normalised_weights(len(specs))

    def _normalised_weights(self, count: int) -> np.ndarray:
        if self.weights is None:
            return np.full(count, 1.0 / count)
        weights = np.asarray(list(self.weights), dtype=float)
        if weights.shape != (count,):
            raise OpError(f"ensemble: {len(weights)} weights for {count} members")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise OpError("ensemble: weights must be finite, non-negative and not all zero")
        return weights / weights.sum()

    def _combine(self, scores: np.ndarray) -> np.ndarray:
        """(rows, members) calibrated scores -> (rows,) ensemble scores in [0, 1]. The
        ensemble warms up with its slowest member: a row where any member has no score yet
        (NaN) has none either (one member alone is not the ensemble's score)."""
        warming = np.isnan(scores).any(axis=1)
        filled = np.where(np.isnan(scores), 0.0, scores)
        if self.combine == "max":
            combined = (filled * (self._weights / self._weights.max())).max(axis=1)
        elif self.combine == "mean":
            combined = filled @ self._weights
        else:
            combined = (filled >= self.vote_threshold) @ self._weights
        return np.where(warming, np.nan, np.clip(combined, 0.0, 1.0))

    def update(self, timestamp: Any, value: Value) -> float:
        scores = np.array([[m.update(timestamp, value) for m in self._members]], dtype=float)
        return float(self._combine(scores)[0])

    def score_series(self, values: Iterable[Value] | np.ndarray,
                     timestamps: Iterable[Any] | None = None) -> np.ndarray:
        """Each member's own batch path (vectorised where it has one), then the combination."""
        stamps = list(timestamps) if timestamps is not None else None
        array = np.asarray(values, dtype=float)
        columns = [m.score_series(array, stamps) for m in self._members]
        return self._combine(np.column_stack(columns))

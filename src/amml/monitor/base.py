"""What every drift detector reports: a :class:`DriftEvent` saying when drift was detected,
when it is estimated to have **begun** (the drift point) and how sure the detector is.

Detectors are streaming: ``update(x)`` takes one observation (a number or a vector) and
returns an event when it raises an alarm, else None; ``update_many`` does a batch the same
way (the same events as one at a time). ``score`` and ``threshold`` are the last value of
the detector's statistic and the value that raises an alarm (what the monitor's gauges and
timeline show). Observations are counted from 0; ``drift_point`` and ``detected_at`` are
those counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class DriftEvent:
    detector: str
    detected_at: int
    drift_point: int
    confidence: float
    score: float
    threshold: float
    features: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def delay(self) -> int:
        """Observations from the estimated drift point to the alarm."""
        return self.detected_at - self.drift_point

    def to_json(self) -> dict[str, Any]:
        return {"detector": self.detector, "detected_at": self.detected_at,
                "drift_point": self.drift_point, "confidence": self.confidence,
                "score": self.score, "threshold": self.threshold,
                "features": list(self.features), "details": self.details}


class DriftDetector:
    """Base of the detectors: subclasses implement :meth:`update`."""

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.n = 0  # observations seen
        self.score = 0.0
        self.threshold = 1.0
        self.events: list[DriftEvent] = []

    def update(self, x: Any) -> DriftEvent | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def update_many(self, xs: Iterable[Any]) -> list[DriftEvent]:
        found = []
        for x in xs:
            event = self.update(x)
            if event is not None:
                found.append(event)
        return found

    def _raise(self, event: DriftEvent) -> DriftEvent:
        self.events.append(event)
        return event


def confirm_increase(before: np.ndarray, after: np.ndarray) -> float:
    """Confidence that ``after`` is stochastically larger than ``before``: one minus the
    one-sided Mann-Whitney U test's p-value (0.5 when either side is too short to say)."""
    before, after = np.asarray(before, float), np.asarray(after, float)
    if len(before) < 3 or len(after) < 3:
        return 0.5
    from scipy.stats import mannwhitneyu

    p = float(mannwhitneyu(after, before, alternative="greater").pvalue)
    return float(np.clip(1.0 - p, 0.0, 1.0))


def locate_shift(values: np.ndarray, earliest: int = 0) -> int:
    """Where the level of ``values`` changes: the split ``k >= earliest`` maximising
    ``sqrt(k (n - k) / n) * |mean(values[k:]) - mean(values[:k])|`` (the classic
    single-change-point estimator; 0 when there are too few values to split)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 4:
        return 0
    k = np.arange(1, n)
    head = np.cumsum(values)[:-1]
    before = head / k
    after = (values.sum() - head) / (n - k)
    gain = np.sqrt(k * (n - k) / n) * np.abs(after - before)
    gain[: max(0, earliest - 1)] = -1.0
    return int(k[np.argmax(gain)])


def as_matrix(reference: Any, names: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """A reference sample as ``(N, F)`` float64 with its feature names."""
    data = np.asarray(reference, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or not len(data):
        raise ValueError(f"a reference must be a non-empty (N, F) array, got {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("the reference holds NaN or infinite values")
    names = list(names) if names is not None else [f"x{i}" for i in range(data.shape[1])]
    if len(names) != data.shape[1]:
        raise ValueError(f"{len(names)} names for {data.shape[1]} features")
    return data, names

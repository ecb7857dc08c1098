"""Two-sample tests over windows, calibrated on the reference itself.

A windowed detector compares the last ``window`` observations with the reference sample,
every ``stride`` observations, by a statistic per feature (KS, PSI, Wasserstein: see
:mod:`.feature_drift`; MMD: :mod:`.mmd`). What a "large" statistic is depends on the data
(autocorrelated series make textbook p-values far too small), so the threshold is learnt
from the reference: each window of the reference (stride ``window // 2``) is compared with
the rest of it, and a feature's threshold is ``exp(mean + z * std)`` of the logarithms of
those statistics (they are positive and skewed; at least their maximum). ``score`` is the
largest statistic divided by its threshold: above 1 alarms. The **drift point** is then
located in the last ``4 * window`` observations: the split that makes what follows it most
unlike the reference (the largest ``sqrt(n) * KS`` of the alarming feature; ``n * MMD`` for
MMD), as in binary-segmentation change-point search. The confidence is one minus the
Bonferroni-corrected normal tail of the alarming statistic among the reference's. After an
alarm the drift is "on" and raises no new event until a whole window scores under 1 again.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from amml.monitor.base import DriftDetector, DriftEvent, as_matrix


class WindowedDrift(DriftDetector):
    """Subclasses implement :meth:`statistics` ``(window (W, F)) -> (F',)``, with ``F'``
    the number of ``self.outputs`` (per feature, or one for a multivariate test)."""

    def __init__(self, reference: Any, *, window: int = 100, stride: int | None = None,
                 names: list[str] | None = None, z: float = 4.0) -> None:
        super().__init__()
        self.reference, self.names = as_matrix(reference, names)
        if window < 5 or window > len(self.reference) // 2:
            raise ValueError(f"window must be between 5 and half the reference "
                             f"({len(self.reference) // 2}), got {window}")
        self.window, self.stride = int(window), int(stride or max(1, window // 4))
        self.z = z
        self.prepare(self.reference)
        self.outputs = self.output_names()
        self._calibrate()
        self._buffer: deque[np.ndarray] = deque(maxlen=4 * self.window)
        self.drifting = False

    # -- for subclasses -----------------------------------------------------------------
    def prepare(self, reference: np.ndarray) -> None:
        """Precompute what :meth:`statistics` needs of the (whole) reference."""

    def output_names(self) -> list[str]:
        return self.names

    def statistics(self, window: np.ndarray, reference: np.ndarray | None = None
                   ) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def split_statistic(self, segment: np.ndarray, output: int) -> float:
        """How unlike the reference ``segment`` is, scaled by its length: ``sqrt(n) * KS``
        of feature ``output``."""
        ref = self._ref_sorted[:, output]
        win = np.sort(segment[:, output])
        grid = np.concatenate([win, ref])
        cdf_w = np.searchsorted(win, grid, side="right") / len(win)
        cdf_r = np.searchsorted(ref, grid, side="right") / len(ref)
        return float(np.sqrt(len(win)) * np.abs(cdf_w - cdf_r).max())

    def locate(self, recent: np.ndarray, output: int, index: int) -> int:
        """The drift point: the split of ``recent`` (ending at observation ``index``) whose
        tail is most unlike the reference."""
        last = len(recent)
        step = max(1, self.window // 25)
        best, where = -1.0, last - self.window
        for split in range(0, last - 5, step):
            value = self.split_statistic(recent[split:], output)
            if value > best:
                best, where = value, split
        return index + 1 - last + where

    # -- calibration --------------------------------------------------------------------
    def _calibrate(self) -> None:
        ref, w = self.reference, self.window
        self._ref_sorted = np.sort(ref, axis=0)
        stats = []
        for start in range(0, len(ref) - w + 1, max(1, w // 2)):
            rest = np.concatenate([ref[:start], ref[start + w:]])
            stats.append(self.statistics(ref[start:start + w], rest))
        calib = np.asarray(stats)
        self.calibration = calib
        logs = np.log(np.maximum(calib, 1e-12))
        self.mean, self.std = logs.mean(axis=0), logs.std(axis=0) + 1e-6
        self.thresholds = np.maximum(calib.max(axis=0), np.exp(self.mean + self.z * self.std))
        self.threshold = 1.0

    # -- streaming ----------------------------------------------------------------------
    def update(self, x: Any) -> DriftEvent | None:
        index = self.n
        self.n += 1
        self._buffer.append(np.atleast_1d(np.asarray(x, dtype=np.float64)))
        if len(self._buffer) < self.window or (index + 1 - self.window) % self.stride:
            return None
        recent = np.stack(list(self._buffer)[-self.window:])
        stats = self.statistics(recent)
        ratios = stats / self.thresholds
        self.score = float(ratios.max())
        if self.score <= 1.0:
            self.drifting = False  # the drift is over: the next one is news
            return None
        if self.drifting:
            return None
        self.drifting = True
        worst = int(np.argmax(ratios))
        first = self.locate(np.stack(self._buffer), worst, index)
        from scipy.stats import norm

        tail = norm.sf((np.log(max(stats[worst], 1e-12)) - self.mean[worst])
                       / self.std[worst])
        confidence = float(max(0.0, 1.0 - len(ratios) * tail))
        flagged = tuple(self.outputs[i] for i in np.argsort(-ratios) if ratios[i] > 1.0)
        return self._raise(DriftEvent(
            self.name, index, first, confidence, self.score, 1.0, flagged,
            {"statistic": {self.outputs[i]: float(stats[i]) for i in range(len(stats))},
             "thresholds": {self.outputs[i]: float(self.thresholds[i])
                            for i in range(len(stats))}}))

"""From a score series to an alarm series: choosing the threshold, thinning the alarms, and
scoring alarms against labels.

Detectors report calibrated scores in ``[0, 1]``; an alarm is a score at or above a
threshold (at, so that a threshold of 1.0 still alarms on scores that saturate there). Three
ways to choose it (``ThresholdConfig.kind``):

* ``fixed``: a given ``value`` (default 0.5: calibrated scores put "very unusual" there);
* ``quantile``: the ``quantile`` of the scores over a reference period believed to be mostly
  normal (the first ``reference`` share of the rows, or the rows up to ``reference_end``), so
  about ``1 - quantile`` of normal rows alarm;
* ``labels``: the threshold that maximises F1 over the labelled rows, on points (``f1``) or on
  events (``event_f1``: a run of label 1 counts as found when any alarm falls inside it; alarm
  runs, cut where the label changes, count as right inside an event and as false alarms
  outside, so one alarm spanning the whole series cannot score a perfect precision). The
  search ignores ``min_gap``.

``min_gap`` then drops alarms closer than that many rows to the previous kept alarm, so a
long excursion raises one alarm (and a reminder every ``min_gap`` rows) rather than hundreds.

>>> import numpy as np
>>> from amml.ops.detectors.thresholds import ThresholdConfig, alarms, choose_threshold
>>> scores = np.r_[np.random.default_rng(0).uniform(0, 0.3, 200), 0.9, 0.2, 0.95]
>>> t = choose_threshold(scores, ThresholdConfig(kind="quantile", quantile=0.99))
>>> bool(0.25 < t < 0.3)
True
>>> fixed = choose_threshold(scores, ThresholdConfig(kind="fixed", value=0.5))
>>> np.flatnonzero(alarms(scores, fixed)).tolist()
[200, 202]
>>> np.flatnonzero(alarms(scores, fixed, min_gap=3)).tolist()
[200]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from amml._exceptions import OpError
from amml._lazy import pandas as pd

__all__ = ["SPOT", "ThresholdConfig", "alarm_metrics", "alarms", "choose_threshold",
           "pot_threshold", "runs"]

#: Above this many candidate thresholds, event F1 is searched on a subset (evenly spaced by
#: rank, plus every threshold at which an event is lost), to keep the search O(n * 2048).
MAX_EVENT_CANDIDATES = 2048


class ThresholdConfig(BaseModel):
    """How the alarm threshold is chosen (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["fixed", "quantile", "labels"] = "fixed"
    # detectors score in [0, 1]: a value above 1 would never alarm, silently
    value: float = Field(0.5, ge=0, le=1, description="the threshold of kind 'fixed', on the "
                         "detectors' [0, 1] scores")
    quantile: float = Field(0.995, ge=0, le=1,
                            description="kind 'quantile': this quantile of the reference scores")
    reference: float = Field(0.3, gt=0, le=1,
                             description="kind 'quantile': share of the rows, from the start, "
                                         "that form the reference period")
    reference_end: str | None = Field(None, description="kind 'quantile': the reference period "
                                      "is every row up to this timestamp (inclusive) instead")
    metric: Literal["f1", "event_f1"] = Field("f1", description="kind 'labels': what to maximise")
    min_gap: int = Field(0, ge=0, description="drop alarms closer than this many rows to the "
                         "previous kept alarm")


def alarms(scores: Iterable[float] | np.ndarray, threshold: float,
           min_gap: int = 0) -> np.ndarray:
    """0/1 (``int8``) per row: the score is at or above ``threshold`` (nan never alarms), with
    alarms closer than ``min_gap`` rows to the previous kept alarm dropped."""
    array = np.asarray(scores, dtype=float)
    with np.errstate(invalid="ignore"):
        raised = array >= threshold
    if min_gap > 1:
        kept = np.zeros_like(raised)
        last = -min_gap
        for i in np.flatnonzero(raised):
            if i - last >= min_gap:
                kept[i] = True
                last = i
        raised = kept
    return raised.astype(np.int8)


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` (stop exclusive) of every run of true values.

    >>> runs(np.array([0, 1, 1, 0, 1]))
    [(1, 3), (4, 5)]
    """
    padded = np.r_[False, np.asarray(flags).astype(bool), False]
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def alarm_metrics(alarm: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Point precision/recall/F1 and event precision/recall/F1 of alarms against 0/1 labels.

    Event recall: share of label runs with an alarm inside. Event precision: share of alarm
    runs inside a label run, alarm runs being cut where the label changes (an alarm that
    spills past an event is right inside it and a false alarm outside). No alarms gives
    precision 0 (nothing was right).

    >>> m = alarm_metrics(np.array([0, 1, 0, 0, 1, 0]), np.array([0, 1, 1, 0, 0, 0]))
    >>> m["precision"], m["recall"], m["event_recall"], m["event_precision"]
    (0.5, 0.5, 1.0, 0.5)
    >>> alarm_metrics(np.ones(6), np.array([0, 1, 1, 0, 0, 0]))["event_precision"]
    0.3333333333333333
    """
    alarm = np.asarray(alarm).astype(bool)
    truth = np.asarray(labels).astype(bool)
    tp = int((alarm & truth).sum())
    precision = tp / int(alarm.sum()) if alarm.any() else 0.0
    recall = tp / int(truth.sum()) if truth.any() else 0.0
    events = np.array(runs(truth), dtype=int).reshape(-1, 2)
    seen = np.r_[0, np.cumsum(alarm)]
    found = int((seen[events[:, 1]] > seen[events[:, 0]]).sum())
    starts = alarm & ~(np.r_[False, alarm[:-1]] & (truth == np.r_[False, truth[:-1]]))
    alarm_runs = int(starts.sum())
    right = int((starts & truth).sum())
    event_recall = found / len(events) if len(events) else 0.0
    event_precision = right / alarm_runs if alarm_runs else 0.0
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall),
            "event_precision": event_precision, "event_recall": event_recall,
            "event_f1": _f1(event_precision, event_recall)}


def choose_threshold(scores: Iterable[float] | np.ndarray, config: ThresholdConfig,
                     labels: Iterable[Any] | np.ndarray | None = None,
                     timestamps: Iterable[Any] | None = None) -> float:
    """The threshold ``config`` asks for, given the scores (and labels, timestamps if needed).

    >>> config = ThresholdConfig(kind="quantile", quantile=0.5, reference=0.5)
    >>> round(choose_threshold([0.1, 0.2, 0.3, 0.4], config), 6)
    0.15
    """
    array = np.asarray(scores, dtype=float)
    if config.kind == "fixed":
        return float(config.value)
    if config.kind == "quantile":
        reference = array[_reference_mask(len(array), config, timestamps)]
        reference = reference[np.isfinite(reference)]
        if reference.size == 0:
            raise OpError("threshold: the reference period has no finite scores")
        return float(np.quantile(reference, config.quantile))
    if labels is None:
        raise OpError("threshold kind 'labels' needs a label column: set 'label: <column>' on "
                      "the step, or choose kind 'fixed' or 'quantile'")
    truth = pd.to_numeric(pd.Series(np.asarray(labels)), errors="coerce").to_numpy(float)
    if len(truth) != len(array):
        raise OpError(f"threshold: {len(truth)} labels for {len(array)} scores")
    usable = np.isfinite(truth) & np.isfinite(array)
    if not (truth[usable] > 0).any():
        raise OpError("threshold kind 'labels': the label column marks no anomaly in the "
                      "labelled rows, so no threshold can be chosen from it")
    x, y = array[usable], truth[usable] > 0
    if config.metric == "f1":
        return _best_point_f1(x, y)
    return _best_event_f1(x, y)


def _reference_mask(n: int, config: ThresholdConfig,
                    timestamps: Iterable[Any] | None) -> np.ndarray:
    if config.reference_end is None:
        mask = np.zeros(n, dtype=bool)
        mask[:max(1, int(n * config.reference))] = True
        return mask
    if timestamps is None:
        raise OpError("threshold: 'reference_end' needs timestamps (a time index or a "
                      "'timestamp' column); use 'reference' (a share of the rows) instead")
    stamps = pd.DatetimeIndex(pd.to_datetime(list(timestamps)))
    try:
        end = pd.Timestamp(config.reference_end)
    except ValueError as exc:
        raise OpError(f"threshold: reference_end {config.reference_end!r} is not a "
                      f"timestamp") from exc
    if stamps.tz is not None and end.tz is None:
        end = end.tz_localize(stamps.tz)
    elif stamps.tz is None and end.tz is not None:
        end = end.tz_convert("UTC").tz_localize(None)
    mask = np.asarray(stamps <= end)
    if not mask.any():
        raise OpError(f"threshold: no row at or before reference_end {config.reference_end!r} "
                      f"(the data starts at {stamps.min()})")
    return mask


def _candidates(x: np.ndarray) -> np.ndarray:
    """Thresholds between consecutive distinct scores (each alarms a different set of rows),
    the lowest score (alarm all) and just above the highest (alarm none)."""
    unique = np.unique(x)
    middle = (unique[:-1] + unique[1:]) / 2
    return np.r_[unique[0], middle, np.nextafter(unique[-1], np.inf)]


def _pick(candidates: np.ndarray, f1: np.ndarray) -> float:
    """The highest candidate with the best F1 (the fewest alarms among equals)."""
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return float(candidates[best[-1]])


def _best_point_f1(x: np.ndarray, y: np.ndarray) -> float:
    candidates = _candidates(x)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    below_pos = np.r_[0, np.cumsum(y[order])]  # positives among the i lowest scores
    quiet = np.searchsorted(sorted_x, candidates, side="left")  # rows below each cut
    raised = len(x) - quiet
    tp = below_pos[-1] - below_pos[quiet]
    f1 = 2 * tp / (raised + below_pos[-1])
    return _pick(candidates, f1)


def _best_event_f1(x: np.ndarray, y: np.ndarray) -> float:
    candidates = _candidates(x)
    events = runs(y)
    if len(candidates) > MAX_EVENT_CANDIDATES:
        # keep every cut just below an event's best score (where recall drops) and a spread
        event_max = np.array([x[a:b].max() for a, b in events])
        losing = candidates[np.searchsorted(candidates, event_max, side="right") - 1]
        spread = candidates[np.linspace(0, len(candidates) - 1, MAX_EVENT_CANDIDATES).astype(int)]
        candidates = np.unique(np.r_[spread, losing])
    f1 = np.array([alarm_metrics(x >= t, y)["event_f1"] for t in candidates])
    return _pick(candidates, f1)


# --------------------------------------------------------------------------- extreme values


def _gpd_quantile(threshold: float, peaks: np.ndarray, n: int, risk: float) -> float:
    """The level exceeded with probability ``risk`` by a value, from a generalised Pareto
    fit of the ``peaks`` (excesses over ``threshold``) among ``n`` values (Siffer et al.)."""
    from scipy.stats import genpareto

    if peaks.size < 3 or np.ptp(peaks) <= 0:
        return float(threshold + (peaks.max() if peaks.size else 0.0))
    shape, _, scale = genpareto.fit(peaks, floc=0.0)
    ratio = risk * n / peaks.size
    if abs(shape) < 1e-6:
        return float(threshold - scale * np.log(ratio))
    return float(threshold + scale / shape * (ratio ** (-shape) - 1.0))


def pot_threshold(scores: Iterable[float] | np.ndarray, risk: float = 1e-3,
                  level: float = 0.98) -> float:
    """Peaks-over-threshold (POT, Siffer et al., KDD 2017): the score a normal value exceeds
    with probability ``risk``, extrapolated by a generalised Pareto fit of the excesses over
    the ``level`` quantile. Unlike a plain quantile it can sit beyond the largest score seen.

    >>> import numpy as np
    >>> scores = np.random.default_rng(0).exponential(1.0, 5000)
    >>> round(pot_threshold(scores, risk=1e-4), 1)  # exact: -log(1e-4) = 9.2; largest seen 8.7
    9.3
    """
    array = np.asarray(scores, dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise OpError("pot_threshold: no finite score")
    if not 0 < risk < 1 or not 0 < level < 1:
        raise OpError(f"pot_threshold: risk and level must be in (0, 1), got {risk}, {level}")
    base = float(np.quantile(array, level))
    return _gpd_quantile(base, array[array > base] - base, array.size, risk)


class SPOT:
    """Streaming POT (SPOT): the threshold is initialised by :func:`pot_threshold` on a
    calibration batch, then each normal value above the initial level refits the tail, while a
    value above the current threshold is an alarm and is not learnt (Siffer et al., 2017).

    >>> import numpy as np
    >>> spot = SPOT(risk=1e-3).fit(np.random.default_rng(0).normal(0, 1, 2000))
    >>> spot.update(0.5), spot.update(8.0)
    (False, True)
    """

    def __init__(self, risk: float = 1e-3, level: float = 0.98) -> None:
        self.risk, self.level = risk, level
        self.threshold = float("nan")

    def fit(self, scores: Iterable[float] | np.ndarray) -> SPOT:
        array = np.asarray(scores, dtype=float)
        array = array[np.isfinite(array)]
        self._base = float(np.quantile(array, self.level))
        self._peaks = list(array[array > self._base] - self._base)
        self._n = int(array.size)
        self.threshold = _gpd_quantile(self._base, np.array(self._peaks), self._n, self.risk)
        return self

    def update(self, score: float) -> bool:
        """True (an alarm) when ``score`` passes the threshold; else learn from it."""
        if not np.isfinite(score):
            return False
        if score > self.threshold:
            return True
        self._n += 1
        if score > self._base:
            self._peaks.append(score - self._base)
            self.threshold = _gpd_quantile(self._base, np.array(self._peaks), self._n, self.risk)
        return False

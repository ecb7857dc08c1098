"""The Skoltech Anomaly Benchmark (SKAB): its protocol, its metrics, and leave-one-experiment-out.

SKAB's protocol (waico/SKAB, the outlier-detection leaderboard): in every experiment file the
first :data:`TRAIN_ROWS` rows are the training part (fit scalers, models and thresholds there
only) and the rest is the test part; the test parts' point labels (``anomaly``) of all files
are scored together as one binary classification: F1, false-alarm rate ``FP / (FP + TN)`` and
missed-alarm rate ``FN / (FN + TP)``.

Tuning generalizes or it is not reported as such: :func:`leave_one_out` picks a parameter set
on all experiments but one, applies it to the held-out one, and pools the held-out alarms;
:func:`in_sample` picks the one parameter set on every experiment. Both pick by the same rule
(:func:`pick`): the best F1 among the sets whose false-alarm rate stays under ``max_far``.

>>> import numpy as np
>>> m = binary_metrics([np.array([1, 1, 0, 0])], [np.array([1, 0, 0, 0])])
>>> round(m["f1"], 3), m["far"], m["mar"]
(0.667, 0.3333333333333333, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amml.ops.detectors.base import Detector

#: SKAB's training part: the first 400 rows of each experiment.
TRAIN_ROWS = 400
LABELS = ("anomaly", "changepoint")

#: SKAB's published outlier-detection leaderboard (all 34 experiments; github.com/waico/SKAB,
#: README "Leaderboards"), cited, not measured here: F1, FAR, MAR.
CITED = {
    "Conv-AE": (0.78, 0.136, 0.280),
    "MSET": (0.78, None, None),
    "PCA T2+Q": (0.76, None, None),
    "LSTM-AE": (0.74, None, None),
    "T2": (0.66, None, None),
    "Isolation forest": (0.29, None, None),
}
CITED_SOURCE = "SKAB leaderboard, github.com/waico/SKAB README (all 34 experiments)"


@dataclass
class Experiment:
    """One SKAB file: its sensor rows and its point labels."""

    name: str
    values: np.ndarray  # rows x sensors
    labels: np.ndarray  # 0/1 per row
    columns: list[str]

    @property
    def test_labels(self) -> np.ndarray:
        return self.labels[TRAIN_ROWS:]


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=";", index_col="datetime", parse_dates=True)


def load_experiments(root: str | Path, group: str = "valve1") -> list[Experiment]:
    """The experiments of ``root/group`` (numeric file names in numeric order)."""
    folder = Path(root) / group
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a SKAB experiment folder")
    paths = sorted(folder.glob("*.csv"), key=lambda p: (len(p.stem), p.stem))
    experiments = []
    for path in paths:
        frame = _read(path)
        columns = [c for c in frame.columns if c not in LABELS]
        experiments.append(Experiment(f"{group}/{path.stem}", frame[columns].to_numpy(float),
                                      frame["anomaly"].to_numpy(dtype=int), columns))
    if not experiments:
        raise FileNotFoundError(f"no experiment (*.csv) in {folder}")
    return experiments


def load_anomaly_free(root: str | Path) -> np.ndarray:
    """SKAB's ``anomaly-free/anomaly-free.csv``: normal rows (extra normal data)."""
    frame = _read(Path(root) / "anomaly-free" / "anomaly-free.csv")
    return frame[[c for c in frame.columns if c not in LABELS]].to_numpy(float)


def binary_metrics(alarms: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> dict[str, float]:
    """SKAB's point-wise F1, FAR and MAR over all experiments' test parts pooled."""
    predicted = np.concatenate([np.asarray(a) for a in alarms]).astype(bool)
    truth = np.concatenate([np.asarray(y) for y in labels]).astype(bool)
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    tn = int((~predicted & ~truth).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"f1": f1, "far": fp / (fp + tn) if fp + tn else 0.0,
            "mar": fn / (fn + tp) if fn + tp else 0.0}


def protocol_scores(detector: Detector, experiment: Experiment) -> np.ndarray:
    """SKAB's protocol for one experiment: fit on the training part, score the test part
    (as one batch, following the training part). Returns the test part's scores."""
    fitted = detector.clone()
    fitted.fit(experiment.values[:TRAIN_ROWS])  # type: ignore[attr-defined]
    return np.asarray(fitted.score(experiment.values[TRAIN_ROWS:]),  # type: ignore[attr-defined]
                      dtype=float)


def streaming_scores(detector: Detector, experiment: Experiment) -> np.ndarray:
    """A streaming detector on one experiment with its warm-up on the training part: its
    scores on the test part."""
    return np.asarray(detector.score_series(experiment.values), dtype=float)[TRAIN_ROWS:]


def alarms_at(scores: np.ndarray, cut: float = 0.5) -> np.ndarray:
    """Alarms where a calibrated score reaches ``cut`` (NaN, warm-up, never alarms)."""
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(scores, nan=-1.0) >= cut


def pick(candidates: dict[str, dict[str, float]], max_far: float) -> str:
    """The candidate with the best F1 among those with ``far < max_far`` (the lowest FAR if
    none is under it); ties go to the first."""
    under = {k: m for k, m in candidates.items() if m["far"] < max_far}
    if under:
        return max(under, key=lambda k: under[k]["f1"])
    return min(candidates, key=lambda k: candidates[k]["far"])


def grid_alarms(experiments: list[Experiment], grid: dict[str, Callable[[Experiment],
                                                                           np.ndarray]]
                ) -> dict[str, list[np.ndarray]]:
    """Each candidate's test-part alarms per experiment (``grid``: name -> alarms of one
    experiment)."""
    return {key: [make(e) for e in experiments] for key, make in grid.items()}


def in_sample(alarms: dict[str, list[np.ndarray]], experiments: list[Experiment],
              max_far: float) -> tuple[str, dict[str, float]]:
    """The one parameter set picked on every experiment, and its pooled metrics."""
    labels = [e.test_labels for e in experiments]
    metrics = {k: binary_metrics(a, labels) for k, a in alarms.items()}
    best = pick(metrics, max_far)
    return best, metrics[best]


def leave_one_out(alarms: dict[str, list[np.ndarray]], experiments: list[Experiment],
                  max_far: float) -> tuple[dict[str, float], list[str]]:
    """Leave one experiment out: each held-out experiment gets the set picked on the others;
    the held-out alarms are pooled. Returns the metrics and the set picked per fold."""
    labels = [e.test_labels for e in experiments]
    held_alarms, picked = [], []
    for out in range(len(experiments)):
        rest = [i for i in range(len(experiments)) if i != out]
        metrics = {k: binary_metrics([a[i] for i in rest], [labels[i] for i in rest])
                   for k, a in alarms.items()}
        best = pick(metrics, max_far)
        picked.append(best)
        held_alarms.append(alarms[best][out])
    return binary_metrics(held_alarms, labels), picked


def describe(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items())

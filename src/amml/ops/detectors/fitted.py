"""Detectors with two lives: ``fit(reference)`` then ``score(batch)``, or ``update`` one point
at a time (PyOD's fit/decision_function and river's learn/score, in one object).

``fit(reference)`` *freezes* everything a detector learns on a reference period believed to be
normal: the per-column centre and scale, the model, and the threshold (``factor`` times the
``quantile`` of the reference's raw scores, or a peaks-over-threshold extreme-value quantile,
``threshold="pot"``, its tail fitted above ``quantile``, or above 0.98 when that is 1.0).
``score(batch)`` then scores rows that follow the reference, in order, and never learns from
them unless adaptation is asked for explicitly (``refit`` rows between
refits on the last ``history`` rows). Scores are calibrated so that the frozen threshold sits at
0.5 (``raw / (raw + threshold)``): ``alarms`` is ``score >= 0.5``, ``events`` its runs.

In the streaming life a fresh detector collects ``warmup`` rows, fits on them, and scores every
row after; the warm-up rows score NaN (not a score: nothing has been learnt yet), and so do
the first rows of a batch when a windowed feature has no earlier rows to look back on.
``score_series`` replays that stream, and gives what ``update`` gives one row at a time.

A fitted detector is saved as safetensors (its arrays) with JSON metadata (its name,
parameters and counters): :func:`save_detector` / :func:`load_detector`. Nothing is pickled;
a model from a library that only pickles (PyOD, scikit-learn) is rebuilt by refitting it on the
stored reference sample with its fixed seed. A fitted detector is also a
:class:`~amml.store.artifacts.model.SafetensorsModel`, so a workflow step can output it as a
``model`` artifact (the ``detect`` op's ``detector``) and a later step take it as input. The
artifact names this base class, never the detector's module: the detector is looked up by its
registered name, as everywhere else.

>>> import numpy as np
>>> from amml.ops.detectors.base import make_detector
>>> rng = np.random.default_rng(0)
>>> reference = rng.normal(0, 1, (400, 3))
>>> detector = make_detector("pca_t2q").fit(reference)
>>> batch = rng.normal(0, 1, (50, 3))
>>> batch[30] += 12.0
>>> scores = detector.score(batch)
>>> int(np.argmax(scores)), bool(scores[30] > 0.5)
(30, True)
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from amml._exceptions import OpError, StoreError
from amml.ops.detectors.base import DETECTORS, Detector, Value
from amml.ops.detectors.thresholds import runs
from amml.ops.detectors.windowed import check_int, check_share
from amml.store.artifacts.model import METADATA_KEY, SafetensorsModel, class_path

#: The metadata key detectors were saved under before they were models too (still read).
LEGACY_METADATA_KEY = "amml_detector"
#: The level above which ``threshold="pot"`` fits the tail when ``quantile`` is 1.0 (the
#: default of most detectors: the largest reference score, which leaves no tail): POT's own.
POT_LEVEL = 0.98


class FittedDetector(Detector, SafetensorsModel):
    """Base of reference-fitted detectors (see the module docstring).

    Subclasses keep the shared parameters (``warmup``, ``smooth``, ``threshold``, ``quantile``,
    ``factor``, ``risk``, ``refit``, ``history``) in their ``__init__`` and implement
    ``_fit_model`` (reference features -> fitted state), ``_raw`` (features -> raw scores,
    higher is more anomalous, row by row: the same number whatever the batch) and, for saving,
    ``_model_arrays`` / ``_set_model_arrays``. ``lookback`` is how many earlier rows a
    feature needs beyond the smoothing window (a sliding-window model's window - 1).
    """

    multivariate = True
    lookback: int = 0
    #: The reference's column names when it was a table (kept with the saved state, so a
    #: stored detector knows which columns it scores); None for a plain array.
    columns_: list[str] | None = None

    warmup: int
    smooth: int
    threshold: str
    quantile: float
    factor: float
    risk: float
    refit: int
    history: int

    def _check_common(self) -> None:
        check_int("smooth", self.smooth, 1)
        check_int("refit", self.refit, 0)
        check_int("history", self.history, 2)
        if self.threshold not in ("quantile", "pot"):
            raise OpError(f"threshold must be 'quantile' or 'pot', got {self.threshold!r}")
        check_share("quantile", self.quantile)
        check_share("risk", self.risk)
        if not (isinstance(self.factor, int | float) and self.factor > 0):
            raise OpError(f"factor must be a number > 0, got {self.factor!r}")
        check_int("warmup", self.warmup, self.context + 2)
        self._reset()

    def skipped_checks(self) -> dict[str, str]:
        skipped = super().skipped_checks()
        if self.smooth > 1:
            skipped.setdefault("finds_spike", "scores average the last `smooth` rows: a spike "
                                              "raises all of them, and the top may be any")
        return skipped

    @property
    def rowwise(self) -> bool:
        """Whether a feature row's raw score depends on that row alone (not on the others
        scored with it), so rows from different windows may be scored in one call."""
        return True

    @property
    def context(self) -> int:
        """Earlier rows a row's features need."""
        return self.smooth - 1 + self.lookback

    # ------------------------------------------------------------------ state

    def _reset(self) -> None:
        self.fitted_ = False
        self.center_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.threshold_raw_ = math.nan
        self._context = np.zeros((0, 0))
        self._pending: list[np.ndarray] = []  # warm-up rows of the streaming life
        self._last: np.ndarray | None = None
        self._since_fit = 0
        self._history: deque[np.ndarray] = deque(maxlen=self.history)

    # ------------------------------------------------------------------ subclass hooks

    def _fit_model(self, features: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _raw(self, features: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _model_arrays(self) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_model_arrays(self, arrays: dict[str, np.ndarray]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _features(self, z: np.ndarray) -> np.ndarray:
        """Standardised rows -> one feature row per input row that has ``context`` earlier
        rows: the mean of the last ``smooth`` rows (then a subclass may window them)."""
        if self.smooth == 1:
            return z
        return sliding_window_view(z, self.smooth, axis=0).mean(axis=-1)

    # ------------------------------------------------------------------ the two lives

    def _rows(self, values: Any) -> np.ndarray:
        rows = np.asarray(values, dtype=float)
        if rows.ndim == 1:
            rows = rows[:, None] if self._width() in (None, 1) else rows[None, :]
        if rows.ndim != 2:
            raise OpError(f"{self.name}: expected rows of values (a 2-D array), got "
                          f"{rows.ndim} dimensions")
        width = self._width()
        if width is not None and rows.shape[1] != width:
            raise OpError(f"{self.name}: got {rows.shape[1]} columns, expected {width} "
                          "(as in the reference)")
        # a gap in a stream is not an anomaly: carry the column's last finite value
        out = rows.copy()
        last = self._last if self._last is not None else _first_finite(out)
        for i in range(len(out)):
            row = out[i]
            bad = ~np.isfinite(row)
            if bad.any():
                row[bad] = last[bad]
            last = row
        self._last = last.copy()
        return out

    def _width(self) -> int | None:
        if self.center_ is not None:
            return len(self.center_)
        if self._pending:
            return len(self._pending[0])
        return None

    def fit(self, reference: Any) -> FittedDetector:
        """Learn centre, scale, model and threshold on ``reference`` (rows x columns), and
        freeze them. Returns the detector."""
        self._reset()
        names = getattr(reference, "columns", None)
        self.columns_ = [str(name) for name in names] if names is not None else None
        rows = self._rows(reference)
        if len(rows) < self.context + 2:
            raise OpError(f"{self.name}: the reference has {len(rows)} rows; it needs at least "
                          f"{self.context + 2} (smooth - 1 + lookback + 2)")
        self._fit_on(rows)
        return self

    def _fit_on(self, rows: np.ndarray) -> None:
        center = rows.mean(axis=0)
        scale = rows.std(axis=0)
        scale = np.where(scale > 1e-9 * (1.0 + np.abs(center)), scale, 1.0)
        self.center_, self.scale_ = center, scale
        features = self._features((rows - center) / scale)
        self._fit_model(features)
        reference_raw = self._raw(features)
        self.threshold_raw_ = self._threshold(reference_raw)
        self._context = rows[len(rows) - self.context:] if self.context else rows[:0]
        self._history = deque(list(rows), maxlen=self.history)
        self._since_fit = 0
        self.fitted_ = True

    def _threshold(self, raw: np.ndarray) -> float:
        raw = raw[np.isfinite(raw)]
        if raw.size == 0:
            raise OpError(f"{self.name}: the reference gave no finite score")
        if self.threshold == "pot":
            from amml.ops.detectors.thresholds import pot_threshold

            # the tail is fitted above ``quantile``; its default 1.0 (the largest reference
            # score) leaves no tail, so POT's own level is used then
            level = self.quantile if self.quantile < 1.0 else POT_LEVEL
            base = pot_threshold(raw, risk=self.risk, level=level)
        else:
            base = float(np.quantile(raw, self.quantile))
        return max(self.factor * base, 1e-12)

    def score(self, batch: Any) -> np.ndarray:
        """Calibrated scores of ``batch`` (rows that follow what was seen so far): the frozen
        threshold is 0.5. Refits on the way only when ``refit`` > 0 (adaptation)."""
        if not self.fitted_:
            raise OpError(f"{self.name}: call fit(reference) before score(batch), or stream "
                          f"{self.warmup} rows through update() first")
        rows = self._rows(batch)
        if self.refit <= 0:
            return self._score_frozen(rows)
        out = []
        start = 0
        while start < len(rows):
            stop = min(len(rows), start + self.refit - self._since_fit)
            out.append(self._score_frozen(rows[start:stop]))
            self._history.extend(rows[start:stop])
            self._since_fit += stop - start
            if self._since_fit >= self.refit:  # adaptation, asked for: refit on the history
                self._fit_on(np.array(self._history))
            start = stop
        return np.concatenate(out) if out else np.zeros(0)

    def _score_frozen(self, rows: np.ndarray) -> np.ndarray:
        full = np.concatenate([self._context, rows]) if len(self._context) else rows
        missing = self.context - len(self._context)  # rows without enough look-back
        scores = np.full(len(rows), np.nan)
        if len(full) > self.context:
            features = self._features((full - self.center_) / self.scale_)
            calibrated = self._calibrated(self._raw(features))
            scores[max(missing, 0):] = calibrated[len(calibrated) - (len(rows) - max(missing, 0)):]
        if self.context:
            self._context = full[len(full) - self.context:]
        return scores

    def score_windows(self, windows: Any) -> np.ndarray:
        """The calibrated score of each window's newest row, from that window alone (its last
        ``context + 1`` rows): what a server answers for one request. The detector's stream
        state is not touched, so one fitted detector answers concurrent requests; over a
        stream, a window of the rows up to ``t`` scores what ``score`` gives row ``t``."""
        tails = self.window_tails(windows, "scores windows")
        return self._calibrated([float(np.asarray(self._raw(self._features(tail)),
                                                  dtype=float)[-1]) for tail in tails])

    def window_tails(self, windows: Any, what: str) -> np.ndarray:
        """The last ``context + 1`` rows of each window ``(N, rows, columns)``, standardised
        as in fitting: what a window's newest score is computed from."""
        if not self.fitted_:
            raise OpError(f"{self.name}: only a fitted detector {what}")
        w = np.asarray(windows, dtype=float)
        span, width = self.context + 1, len(self.center_)
        if w.ndim != 3 or w.shape[1] < span or w.shape[2] != width:
            raise OpError(f"{self.name}: windows must be (N, at least {span} rows, {width} "
                          f"columns), got {w.shape}")
        return (w[:, w.shape[1] - span:, :] - self.center_) / self.scale_

    def _calibrated(self, raw: Any) -> np.ndarray:
        """Raw scores -> ``raw / (raw + threshold)``: the frozen threshold at 0.5, a raw score
        that is not finite (the model cannot say) at 1."""
        raw = np.asarray(raw, dtype=float)
        raw = np.maximum(np.where(np.isfinite(raw), raw, np.inf), 0.0)
        with np.errstate(invalid="ignore"):
            calibrated = raw / (raw + self.threshold_raw_)
        calibrated[~np.isfinite(raw)] = 1.0
        return calibrated

    def update(self, timestamp: Any, value: Value) -> float:
        """Streaming life: NaN for the ``warmup`` rows (then fit on them), a score after."""
        if not self.fitted_:
            row = np.atleast_1d(np.asarray(value, dtype=float))
            self._rows(row[None, :])  # checks its width
            self._pending.append(row.copy())  # gaps are filled once all warm-up rows are in
            if len(self._pending) >= self.warmup:
                self._last = None  # as fit: gaps before a first reading are carried back
                self._fit_on(self._rows(np.array(self._pending)))
                self._pending = []
            return math.nan
        return float(self.score(np.atleast_1d(np.asarray(value, dtype=float))[None, :])[0])

    def score_series(self, values: Iterable[Value] | np.ndarray,
                     timestamps: Iterable[Any] | None = None) -> np.ndarray:
        """The streaming life on a whole series: NaN for the warm-up rows, then their fit
        scores the rest (what ``update`` gives one row at a time)."""
        rows = np.asarray(values, dtype=float)
        rows = rows[:, None] if rows.ndim == 1 else rows
        if timestamps is not None and len(list(timestamps)) != len(rows):
            raise OpError(f"{len(list(timestamps))} timestamps for {len(rows)} values")
        detector = self.clone()
        assert isinstance(detector, FittedDetector)
        scores = np.full(len(rows), np.nan)
        if len(rows) < detector.warmup:
            return scores
        detector.fit(rows[:detector.warmup])
        scores[detector.warmup:] = detector.score(rows[detector.warmup:])
        return scores

    # ------------------------------------------------------------------ alarms

    @staticmethod
    def alarms(scores: np.ndarray) -> np.ndarray:
        """Point-level alarms: calibrated score at or above the frozen threshold (0.5)."""
        with np.errstate(invalid="ignore"):
            return (np.asarray(scores, dtype=float) >= 0.5).astype(np.int8)

    @classmethod
    def events(cls, scores: np.ndarray) -> list[tuple[int, int]]:
        """Event-level alarms: ``(start, stop)`` of each run of point alarms."""
        return runs(cls.alarms(scores))

    # ------------------------------------------------------------------ state for the store

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(metadata, arrays)`` of a fitted detector: all it needs to score as it would."""
        if not self.fitted_:
            raise OpError(f"{self.name}: only a fitted detector can be saved")
        arrays = {"center": self.center_, "scale": self.scale_,
                  "context": np.asarray(self._context, dtype=float).reshape(-1, len(self.center_)),
                  "history": np.array(self._history, dtype=float).reshape(-1, len(self.center_)),
                  "last": np.asarray(self._last, dtype=float)}
        arrays.update({f"model.{k}": np.asarray(v) for k, v in self._model_arrays().items()})
        meta = {"detector": self.name, "params": self.get_params(),
                "threshold_raw": self.threshold_raw_, "since_fit": self._since_fit}
        if self.columns_ is not None:
            meta["columns"] = list(self.columns_)
        return meta, arrays

    # ------------------------------------------------------------------ a model artifact

    def get_config(self) -> dict[str, Any]:
        return self.state()[0]

    def get_tensors(self) -> dict[str, np.ndarray]:
        return self.state()[1]

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, np.ndarray]
                   ) -> FittedDetector:
        return _rebuild(config, tensors)

    def to_bytes(self) -> bytes:
        """Safetensors bytes naming :class:`FittedDetector`, whatever the subclass: loading
        then imports nothing the file names (see the module docstring)."""
        from safetensors.numpy import save as st_save

        meta, arrays = self.state()
        tensors = {k: np.ascontiguousarray(v) for k, v in sorted(arrays.items())}
        text = json.dumps({"class": class_path(FittedDetector), "config": meta},
                          sort_keys=True, separators=(",", ":"))
        return st_save(tensors, metadata={METADATA_KEY: text})

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self._reset()
        self.center_, self.scale_ = arrays["center"], arrays["scale"]
        self._context = arrays["context"]
        self._history.extend(arrays["history"])
        self._last = arrays["last"]
        self.threshold_raw_ = float(meta["threshold_raw"])
        self._since_fit = int(meta["since_fit"])
        self.columns_ = list(meta["columns"]) if meta.get("columns") is not None else None
        self._set_model_arrays({k[len("model."):]: v for k, v in arrays.items()
                                if k.startswith("model.")})
        self.fitted_ = True


def _first_finite(rows: np.ndarray) -> np.ndarray:
    """Each column's first finite value (0 for a column without one): what a gap at the very
    start is carried from, instead of a 0 in the data's units."""
    first = np.zeros(rows.shape[1])
    for j in range(rows.shape[1]):
        found = np.flatnonzero(np.isfinite(rows[:, j]))
        if found.size:
            first[j] = rows[found[0], j]
    return first


def detector_to_bytes(detector: FittedDetector) -> bytes:
    """A fitted detector as safetensors bytes (arrays) with JSON metadata; no pickle."""
    return detector.to_bytes()


def detector_from_bytes(data: bytes) -> FittedDetector:
    """Rebuild a fitted detector: the class is looked up by its registered name only. Reads
    what :func:`detector_to_bytes` writes and what it wrote before detectors were models."""
    from safetensors.numpy import load as st_load

    try:
        size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + size])["__metadata__"]
        if METADATA_KEY in metadata:
            meta = json.loads(metadata[METADATA_KEY])["config"]
        else:
            meta = json.loads(metadata[LEGACY_METADATA_KEY])
        arrays = st_load(data)
    except Exception as exc:  # any parse failure is one clear error
        raise StoreError(f"not a saved AMML detector ({type(exc).__name__}: {exc})") from None
    return _rebuild(meta, arrays)


def fitted_detector_names() -> list[str]:
    """The registered detectors with a reference-fitted life (``fit``/``score``)."""
    return [name for name, cls in DETECTORS.items()
            if isinstance(cls, type) and issubclass(cls, FittedDetector)]


def _rebuild(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> FittedDetector:
    name = meta.get("detector") if isinstance(meta, dict) else None
    cls = DETECTORS.find(name) if isinstance(name, str) else None
    if cls is None or not issubclass(cls, FittedDetector):
        raise StoreError(f"detector {name!r} cannot be loaded from the store (fitted "
                         f"detectors: {', '.join(fitted_detector_names())})")
    detector = cls(**meta["params"])
    detector.set_state(meta, arrays)
    return detector


def _artifacts(store: Any) -> Any:
    # a whole store (``amml.open_store``) or its artifact store: the bytes go to the latter
    return getattr(store, "artifacts", store)


def save_detector(detector: FittedDetector, store: Any) -> str:
    """Save a fitted detector to a store (``amml.open_store(...)``) or an artifact store;
    returns its digest."""
    return _artifacts(store).put_bytes(detector_to_bytes(detector))


def load_detector(store: Any, digest: str) -> FittedDetector:
    """The fitted detector saved under ``digest`` in ``store`` (a store or an artifact
    store)."""
    return detector_from_bytes(_artifacts(store).get_bytes(digest))

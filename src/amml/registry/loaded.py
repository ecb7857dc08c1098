"""A registered version ready to forecast in original units, as the server does.

A model's ``predict_windows`` works in the units it was trained in (usually z-scored by the
``scale`` transform); the version's signature records that scaler. :class:`LoadedModel`
applies it to the input, predicts, and inverts it on the output. :func:`scaled_forecast` is
that one code path, shared by ``amml.load_model`` and ``amml serve`` (whose ``ServedModel``
calls it), so a forecast made in a notebook is the one the server gives for the same input.

>>> import tempfile
>>> import pandas as pd
>>> from amml.store import open_store
>>> from amml.ops.models.forecaster import Forecaster
>>> from amml.registry import ModelRegistry, load_model
>>> home = tempfile.mkdtemp()
>>> with open_store(home) as store:
...     _ = ModelRegistry(store).register(
...         "oil", Forecaster("naive", 4, 2, columns=["OT"], outputs=["OT"]),
...         signature={"lookback": 4, "horizon": 2, "columns": ["OT"], "outputs": ["OT"],
...                    "freq": "h", "scaler": {"OT": {"offset": 10.0, "scale": 2.0}}})
>>> model = load_model("oil", home)
>>> frame = pd.DataFrame({"OT": [11.0, 12.0, 13.0, 14.0]},
...                      index=pd.date_range("2024-01-01", periods=4, freq="h"))
>>> model.forecast(frame)
                       OT
2024-01-01 04:00:00  14.0
2024-01-01 05:00:00  14.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from amml._exceptions import RegistryError
from amml._lazy import pandas as pd
from amml.ops.models.contract import Forecasting
from amml.ops.transforms.scaling import Scaler
from amml.store.model_registry import ModelVersion


@dataclass(frozen=True)
class ModelShape:
    """What a version takes and gives: from its signature, else from the model itself."""

    lookback: int
    horizon: int
    columns: tuple[str, ...]
    outputs: tuple[str, ...]
    freq: str | None = None


def model_shape(version: ModelVersion, model: Any) -> ModelShape:
    """The lookback, horizon, columns, outputs and frequency of ``version`` (the signature
    wins; a version registered without one falls back to the model's attributes)."""
    sig = version.signature or {}
    lookback = sig.get("lookback") or getattr(model, "lookback", None)
    horizon = sig.get("horizon") or getattr(model, "horizon", None)
    if not lookback or not horizon:
        raise RegistryError(f"{version.ref}: neither the signature nor the model gives the "
                            "lookback and horizon")
    columns = sig.get("columns") or getattr(model, "columns", None) or []
    outputs = sig.get("outputs") or getattr(model, "outputs", None) or list(columns)
    return ModelShape(int(lookback), int(horizon), tuple(map(str, columns)),
                      tuple(map(str, outputs)), sig.get("freq") or None)


def detector_shape(version: ModelVersion, detector: Any) -> ModelShape:
    """What a fitted anomaly detector (``task: detect``) takes and gives: windows of
    ``context + 1`` rows of its columns (the signature's, else those it was fitted on), one
    ``score`` per window, no horizon."""
    sig = version.signature or {}
    width = len(detector.center_)
    columns = tuple(str(c) for c in (sig.get("columns") or detector.columns_
                                     or [f"c{i}" for i in range(width)]))
    if len(columns) != width:
        raise RegistryError(f"{version.ref}: the signature names {len(columns)} columns, the "
                            f"detector scores {width}")
    return ModelShape(detector.context + 1, 0, columns, ("score",), sig.get("freq") or None)


def model_scaler(version: ModelVersion, columns: Sequence[str], outputs: Sequence[str]
                 ) -> Scaler | None:
    """The signature's scaler when it covers the model's columns or outputs (the columns
    it lacks pass as they are), else None: the model then works in original units."""
    scaler = Scaler((version.signature or {}).get("scaler") or {})
    return scaler if scaler.covers((*columns, *outputs)) else None


def scaled_forecast(predict: Callable[[np.ndarray], np.ndarray], scaler: Scaler | None,
                    columns: Sequence[str], outputs: Sequence[str], x: np.ndarray
                    ) -> np.ndarray:
    """(windows, lookback, columns) in original units -> (windows, horizon, outputs) in
    original units: scale the input as in training, predict, invert the scaling."""
    if scaler is not None:
        x = scaler.transform(x, list(columns), missing="identity")
    y = np.asarray(predict(x), dtype=np.float64)
    if scaler is not None:
        y = scaler.inverse(y, list(outputs), missing="identity")
    return y


class LoadedModel:
    """A registered version that forecasts in original units: ``.forecast(frame)`` or
    ``.forecast(array)``. ``.model`` is the bare model (``predict_windows`` takes scaled
    input); its other attributes (``horizon``, ``kind``...) are readable here too."""

    def __init__(self, version: ModelVersion, model: Any) -> None:
        if not isinstance(model, Forecasting):  # the model contract, checked once
            raise RegistryError(f"{version.ref}: {type(model).__name__} is not a forecaster "
                                "(lookback, horizon, columns, outputs, predict_windows)")
        self.version, self.model = version, model
        self.shape = model_shape(version, model)
        self.scaler = model_scaler(version, self.shape.columns, self.shape.outputs)

    def __getattr__(self, name: str) -> Any:
        # only reached for names this object lacks: the bare model's attributes, so code
        # written when load_model returned the model (``.horizon``, ``.kind``) keeps working
        if name in ("model", "version", "shape", "scaler"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def __repr__(self) -> str:
        s = self.shape
        return (f"LoadedModel({self.version.ref}, lookback={s.lookback}, horizon={s.horizon}, "
                f"columns={list(s.columns)}, outputs={list(s.outputs)}, "
                f"scaled={self.scaler is not None})")

    def forecast_windows(self, x: np.ndarray) -> np.ndarray:
        """(windows, lookback, columns) in original units -> (windows, horizon, outputs),
        exactly as ``amml serve`` answers ``/forecast`` for those windows."""
        x = np.asarray(x, dtype=np.float64)
        s = self.shape
        if x.ndim != 3 or x.shape[1:] != (s.lookback, len(s.columns)):
            raise RegistryError(f"{self.version.ref} takes windows of shape (n, {s.lookback}, "
                                f"{len(s.columns)}) (lookback, columns {list(s.columns)}); "
                                f"got {x.shape}")
        return scaled_forecast(self.model.predict_windows, self.scaler, s.columns, s.outputs,
                               x)

    def forecast(self, data: Any) -> Any:
        """The next ``horizon`` rows after ``data``, in original units.

        ``data``: a DataFrame holding the model's columns (its last ``lookback`` rows are
        used; with a DatetimeIndex the answer is indexed by the following times), or an
        array: ``(lookback, columns)`` gives ``(horizon, outputs)``, ``(n, lookback,
        columns)`` gives ``(n, horizon, outputs)``."""
        s = self.shape
        if isinstance(data, pd.DataFrame):
            return self._forecast_frame(data)
        x = np.asarray(data, dtype=np.float64)
        if x.ndim == 2:
            return self.forecast_windows(x[None])[0]
        return self.forecast_windows(x) if x.ndim == 3 else self._bad_array(x, s)

    def _bad_array(self, x: np.ndarray, s: ModelShape) -> Any:
        raise RegistryError(f"{self.version.ref} forecasts from a DataFrame or an array of "
                            f"shape ({s.lookback}, {len(s.columns)}) or (n, {s.lookback}, "
                            f"{len(s.columns)}); got shape {x.shape}")

    def _forecast_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        s = self.shape
        missing = [c for c in s.columns if c not in frame.columns]
        if missing:
            raise RegistryError(f"{self.version.ref} needs the columns {list(s.columns)}; "
                                f"the frame lacks {missing}")
        if len(frame) < s.lookback:
            raise RegistryError(f"{self.version.ref} needs the last {s.lookback} rows "
                                f"(its lookback); the frame has {len(frame)}")
        window = frame[list(s.columns)].iloc[-s.lookback:]
        y = self.forecast_windows(window.to_numpy(dtype=np.float64)[None])[0]
        return pd.DataFrame(y, columns=list(s.outputs), index=self._future(window.index))

    def _future(self, index: pd.Index) -> pd.Index:
        """The times of the ``horizon`` rows after the window's last, where they are known."""
        horizon = self.shape.horizon
        if isinstance(index, pd.DatetimeIndex):
            freq = self.shape.freq or (pd.infer_freq(index) if len(index) >= 3 else None)
            if freq is not None:
                try:
                    return pd.date_range(index[-1], periods=horizon + 1, freq=freq)[1:]
                except ValueError:
                    pass
        return pd.RangeIndex(horizon)

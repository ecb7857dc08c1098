"""ONNX graphs of the detectors that have a natural ONNX path: the window autoencoders and
forecast-residual detection. A graph takes raw windows and gives the detector's calibrated
score of each window's newest row (0.5 at the detector's frozen threshold), so a device needs
no AMML code to score; ``amml-edge`` runs them when the manifest says ``task: detect``.

* ``conv_autoencoder``, ``lstm_autoencoder`` (fitted): input ``windows``
  ``(N, smooth - 1 + window, columns)`` in the reference's units; the graph standardises by
  the reference's centre and scale, averages ``smooth`` rows, reconstructs the last ``window``
  with the detector's own network (float32 copy) and answers ``score`` ``(N,)``: the mean
  absolute reconstruction error ``raw`` calibrated as ``raw / (raw + threshold)``. Exactly
  what :meth:`~amml.ops.detectors.fitted.FittedDetector.score` gives the window's last row.
* ``forecast_residual`` with ``scoring="window"`` (what ``/detect`` answers): input
  ``windows`` ``(N, lookback + 1, 1)``, the lookback then the value to score; the graph is the
  forecaster's one-step forecast, the residual in units of the lookback's robust scale
  (median absolute deviation, floored as :func:`~amml.ops.detectors.residual.window_scores`
  floors it) and the same calibration. ``scoring="online"`` learns its statistics row by
  row: that state has no ONNX form, and exporting it is refused.

Everything is read from the detector's public attributes and the PyTorch module it holds; the
detector is never changed (its network is copied). Parity against the PyTorch detector is
:func:`detector_parity` (``tests/edge/test_detector_export.py``).
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from amml._exceptions import ConfigurationError
from amml.ops.models.onnx_export import INPUT, OPSET

SCORE, RAW = "score", "raw"
#: The detectors exported here, by name.
EXPORTABLE = ("conv_autoencoder", "lstm_autoencoder", "forecast_residual")


def _torch() -> Any:
    import torch

    return torch


def span_of(detector: Any) -> int:
    """Rows in one input window of the detector's graph."""
    if detector.name == "forecast_residual":
        return int(detector._window) + 1
    return int(detector.context) + 1


def _autoencoder_module(detector: Any) -> Any:
    torch = _torch()
    if not getattr(detector, "fitted_", False):
        raise ConfigurationError(f"{detector.name}: fit(reference) before exporting it")
    net = copy.deepcopy(detector._net).float().eval()
    center = torch.tensor(np.asarray(detector.center_), dtype=torch.float32)
    scale = torch.tensor(np.asarray(detector.scale_), dtype=torch.float32)
    threshold = float(detector.threshold_raw_)
    smooth, window = int(detector.smooth), int(detector.window)

    class AutoencoderScore(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("center", center)
            self.register_buffer("scale", scale)

        def forward(self, x: Any) -> tuple[Any, Any]:
            z = (x - self.center) / self.scale
            if smooth > 1:  # the mean of the last `smooth` rows, as FittedDetector._features
                z = torch.nn.functional.avg_pool1d(z.transpose(1, 2), smooth, 1).transpose(1, 2)
            z = z[:, -window:, :]
            raw = (self.net(z) - z).abs().mean(dim=(1, 2))
            return raw / (raw + threshold), raw

    return AutoencoderScore()


def _one_step(detector: Any) -> tuple[Any, float, float]:
    """The forecaster's PyTorch module ((N, L, 1) -> (N, H, 1)) and the standardisation its
    inputs take (mean, std), from the detector's ``model`` or what it fitted."""
    from amml.ops.models.contract import ForecastModel

    if detector.model is not None:
        return copy.deepcopy(detector.model.export_module()), 0.0, 1.0
    predict = detector._predict
    if predict is None:
        raise ConfigurationError("forecast_residual: no forecaster yet (fit it: score a "
                                 "series of at least `warmup` rows, or give `model`)")
    if hasattr(predict, "net"):  # a deep kind it trained: the net in its float64 wrapper
        from amml.ops.models.contract import make_model

        # the kind's own export module around a float32 copy of the net (PatchTST gathers
        # its patches there instead of unfolding them: the exporter cannot size unfold)
        kind = make_model(detector.forecaster, lookback=int(detector._window), horizon=1,
                          columns=["value"], outputs=["value"])
        kind.net = copy.deepcopy(predict.net).float().eval()
        return kind.export_module(), float(predict.mean), float(predict.std)
    for cell in getattr(predict, "__closure__", None) or ():  # a numpy kind it fitted
        if isinstance(cell.cell_contents, ForecastModel):
            return copy.deepcopy(cell.cell_contents.export_module()), 0.0, 1.0
    raise ConfigurationError("forecast_residual: its forecaster has no export module")


def _residual_module(detector: Any) -> Any:
    from amml.ops.detectors.residual import MIN_SCALE
    from amml.ops.stats import MAD_TO_SD

    torch = _torch()
    if detector.scoring != "window":
        raise ConfigurationError("forecast_residual: only scoring='window' has an ONNX form "
                                 "(online scoring learns its statistics row by row)")
    net, mean, std = _one_step(detector)
    lookback = int(detector._window)
    level_floor, threshold = float(detector.scale_floor), float(detector.threshold)
    low, high = (lookback - 1) // 2, lookback // 2

    def median(values: Any) -> Any:  # numpy's: the mean of the two middle values
        ordered = torch.sort(values, dim=1).values
        return (ordered[:, low] + ordered[:, high]) / 2

    class ResidualScore(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any) -> tuple[Any, Any]:
            history, actual = x[:, :lookback, 0], x[:, lookback, 0]
            # sliced on the time axis only, so the exporter keeps the batch axis symbolic
            # (PatchTST's unfold needs its input's sizes known)
            forecast = self.net((x[:, :lookback, :] - mean) / std)[:, 0, 0] * std + mean
            centre = median(history)
            scale = MAD_TO_SD * median((history - centre[:, None]).abs())
            spread = ((history - history.mean(dim=1, keepdim=True)) ** 2).mean(dim=1).sqrt()
            scale = torch.where(scale > 0, scale, spread)
            scale = torch.maximum(scale, torch.clamp(level_floor * centre.abs(),
                                                     min=MIN_SCALE))
            raw = (actual - forecast).abs() / scale
            return raw / (raw + threshold), raw

    return ResidualScore()


def detector_module(detector: Any) -> Any:
    """A ``torch.nn.Module``: windows ``(N, span, columns)`` -> ``(score, raw)``, each ``(N,)``."""
    if detector.name in ("conv_autoencoder", "lstm_autoencoder"):
        return _autoencoder_module(detector)
    if detector.name == "forecast_residual":
        return _residual_module(detector)
    raise ConfigurationError(f"detector '{detector.name}' has no ONNX path (exportable: "
                             f"{', '.join(EXPORTABLE)})")


def columns_of(detector: Any) -> int:
    if detector.name == "forecast_residual":
        return 1
    return len(detector.center_)


def detector_onnx(detector: Any, metadata: dict[str, Any] | None = None) -> bytes:
    """The detector's scoring graph as the bytes of one ONNX file (weights embedded)."""
    import onnx

    torch = _torch()
    module = detector_module(detector)
    dummy = torch.zeros((2, span_of(detector), columns_of(detector)), dtype=torch.float32)
    buffer = io.BytesIO()
    # the Transformer layers' fused inference kernel has no ONNX form: trace the plain ops
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's shape warnings; parity is the proof
        try:
            torch.onnx.export(module, (dummy,), buffer, dynamo=False, opset_version=OPSET,
                              input_names=[INPUT], output_names=[SCORE, RAW],
                              dynamic_axes={INPUT: {0: "batch"}, SCORE: {0: "batch"},
                                            RAW: {0: "batch"}})
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
    proto = onnx.load_from_string(buffer.getvalue())
    meta = {"amml.detector": detector.name, "task": "detect",
            "lookback": str(span_of(detector)),
            "columns": json.dumps([f"c{i}" for i in range(columns_of(detector))]),
            "params": json.dumps(detector.get_params() if detector.name != "forecast_residual"
                                 else {k: v for k, v in detector.get_params().items()
                                       if k != "model"}, sort_keys=True, default=str)}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in
                 (metadata or {}).items()})
    onnx.helper.set_model_props(proto, meta)
    return proto.SerializeToString()


def detector_manifest(detector: Any, model_bytes: bytes, *, name: str, version: int = 1,
                      fmt: str = "fp32", columns: list[str] | None = None) -> dict[str, Any]:
    """What a device needs beside the bytes (sign its canonical JSON, as
    :func:`amml.edge.export.export_variant` signs a forecaster's)."""
    import hashlib

    width = columns_of(detector)
    columns = columns or [f"c{i}" for i in range(width)]
    if len(columns) != width:
        raise ConfigurationError(f"{detector.name} scores {width} columns, got {columns}")
    return {"model": name, "version": version, "format": fmt, "task": "detect",
            "detector": detector.name, "sha256": hashlib.sha256(model_bytes).hexdigest(),
            "size": len(model_bytes), "lookback": span_of(detector), "horizon": 0,
            "columns": columns, "outputs": [SCORE], "scaler": {}}


def score_windows(detector: Any, context: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The graph's input windows for scoring ``rows`` after ``context`` (the rows before
    them, at least ``span - 1``): one window ending on each of ``rows``."""
    rows = np.asarray(rows, dtype=float)
    rows = rows[:, None] if rows.ndim == 1 else rows
    context = np.asarray(context, dtype=float)
    context = context[:, None] if context.ndim == 1 else context
    span = span_of(detector)
    if len(context) < span - 1:
        raise ConfigurationError(f"{detector.name}: {span - 1} rows of context needed, got "
                                 f"{len(context)}")
    full = np.concatenate([context[len(context) - (span - 1):], rows])
    return np.ascontiguousarray(sliding_window_view(full, span, axis=0).transpose(0, 2, 1),
                                dtype=np.float32)


def detector_parity(detector: Any, model_bytes: bytes, context: np.ndarray,
                    rows: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(max abs difference, graph scores, detector scores)`` on ``rows`` that follow
    ``context``: the graph in ONNX Runtime against the PyTorch detector scoring the same rows
    (a copy of it, so the detector's own stream state is left as it was)."""
    from amml.edge.export import session

    windows = score_windows(detector, context, rows)
    got = session(model_bytes).run(None, {INPUT: windows})[0].astype(np.float64)
    twin = copy.deepcopy(detector)
    if detector.name == "forecast_residual":
        values = np.concatenate([np.asarray(context, dtype=float).ravel(),
                                 np.asarray(rows, dtype=float).ravel()])
        lookback = int(twin._window)
        history = sliding_window_view(values, lookback)[len(values) - len(rows) - lookback:
                                                        len(values) - lookback]
        forecast = twin._predict(np.ascontiguousarray(history))
        raw, _ = twin.score_windows(history[:, :, None], np.asarray(rows, dtype=float)
                                    .reshape(-1, 1, 1), forecast[:, None, None])
        expected = twin.calibrate(raw[:, 0, 0])
    else:
        twin._context = np.asarray(context, dtype=float)[len(context) - twin.context:]
        expected = twin.score(rows)
    return float(np.max(np.abs(got - expected))), got, expected

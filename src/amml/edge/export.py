"""Edge variants of model versions: ONNX (fp32, fp16), int8 by ONNX Runtime's quantizer
(dynamic, or static with calibration windows), each checked against the version it comes from,
signed with the ledger's Ed25519 key and recorded in the ledger.

A variant is a child of one registered version (``oil@3/int8``): the ONNX bytes live in the
content-addressed artifact store, the row in ``edge_variants`` keeps format, size, the largest
absolute difference from the version's own forecasts on the check windows (``parity_max_abs``)
and, given evaluation windows with targets, the relative change of the MSE against the fp32
export (``mse_delta_pct``). The manifest (model, version, format, sha256, shape, scaler,
residual scale for anomaly scores) is canonical JSON signed by the active key of
:class:`~amml.store.keys.KeyRing`; a device verifies that signature and the sha256 before it
loads the model. The export is also appended to the ledger ``edge:NAME`` (kind
``edge_export``), whose chain is itself signed.

A registered fitted anomaly detector with an ONNX path (``conv_autoencoder``,
``lstm_autoencoder``: :mod:`amml.edge.detector_export`) exports the same way: its graph
scores raw windows, the manifest says ``task: detect``, and the parity is the largest
difference from the detector's own scores (``score_windows``) on windows of its reference.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from amml._exceptions import ConfigurationError
from amml.ops.detectors.fitted import FittedDetector
from amml.ops.models.contract import ForecastModel
from amml.ops.models.onnx_export import INPUT, onnx_bytes, reference_windows
from amml.registry import ModelRegistry, ModelVersion, current_actor
from amml.store import Store
from amml.store.devices import FORMATS, EdgeVariant, add_variant
from amml.store.keys import KeyRing, public_hex
from amml.store.ledger import Ledger, canonical_body

#: What ``int8`` means: weights int8, activations quantized on the fly (no calibration data
#: needed, and on these models the smaller error of the two, see benchmarks/edge.py).
DYNAMIC, STATIC = "int8", "int8-static"


def session(model_bytes: bytes, threads: int = 1) -> Any:
    """An ONNX Runtime session on ``threads`` intra-op threads (edge devices: one)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def run_onnx(model_bytes: bytes | Any, windows: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Forecasts of ``windows`` by an ONNX model (bytes or a session), float64."""
    sess = session(model_bytes) if isinstance(model_bytes, bytes) else model_bytes
    x = np.asarray(windows, dtype=np.float32)
    out = [sess.run(None, {INPUT: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float64)


class _Windows:
    """ONNX Runtime's calibration reader over an array of windows, a few at a time."""

    def __init__(self, windows: np.ndarray, batch: int = 32) -> None:
        self.windows, self.batch, self.at = np.asarray(windows, dtype=np.float32), batch, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.at >= len(self.windows):
            return None
        chunk = self.windows[self.at : self.at + self.batch]
        self.at += self.batch
        return {INPUT: chunk}

    def rewind(self) -> None:
        self.at = 0


def convert(fp32: bytes, fmt: str, calibration: np.ndarray | None = None) -> bytes:
    """The ``fmt`` form of an fp32 ONNX model (see :data:`~amml.store.devices.FORMATS`)."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown edge format '{fmt}' (formats: {', '.join(FORMATS)})")
    if fmt == "fp32":
        return fp32
    import onnx

    if fmt == "fp16":
        from onnxruntime.transformers.float16 import (
            DEFAULT_OP_BLOCK_LIST,
            convert_float_to_float16,
        )

        # inputs and outputs stay float32, so a runner feeds every format the same way;
        # LayerNormalization stays float32: converted, ONNX Runtime 1.32 crashed (segfault)
        # creating the session of a PatchTST (recipes/README.md)
        return convert_float_to_float16(
            onnx.load_from_string(fp32), keep_io_types=True,
            op_block_list=[*DEFAULT_OP_BLOCK_LIST, "LayerNormalization"]).SerializeToString()
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="amml-quant-") as folder:
        src, pre, dst = (Path(folder) / n for n in ("fp32.onnx", "pre.onnx", "q.onnx"))
        src.write_bytes(fp32)
        # shape inference and constant folding first, as the quantizer recommends
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        if fmt == DYNAMIC:
            # reduce_range: 7-bit weights, so that x86 CPUs without VNNI (AVX2's u8 x s8
            # multiply-add saturates at 16 bits) give the right sums; with 8 bits the error
            # here was ~20x larger (recipes/README.md)
            quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8,
                             reduce_range=True)
        else:
            if calibration is None or not len(calibration):
                raise ConfigurationError("static int8 needs calibration windows (from the "
                                         "training split)")
            quantize_static(str(pre), str(dst), _Windows(calibration),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        proto = onnx.load(str(dst))
    # keep the exporter's metadata (shape, columns, scaler): the quantizer drops it
    source = onnx.load_from_string(fp32)
    onnx.helper.set_model_props(proto, {p.key: p.value for p in source.metadata_props})
    return proto.SerializeToString()


def relative_mse_change(candidate: np.ndarray, reference: np.ndarray, target: np.ndarray
                        ) -> float:
    """How much worse (positive, %) ``candidate``'s MSE against ``target`` is than
    ``reference``'s."""
    ref = float(np.mean((reference - target) ** 2))
    cand = float(np.mean((candidate - target) ** 2))
    return 100.0 * (cand - ref) / ref if ref > 0 else 0.0


@dataclass(frozen=True)
class Evaluation:
    """Windows to check an export on: ``x`` (scaled model input), optional targets ``y``."""

    x: np.ndarray
    y: np.ndarray | None = None


def residual_scale(model: ForecastModel, evaluation: Evaluation | None) -> list[float]:
    """Per output, the robust scale (1.4826 x median absolute deviation) of one-step-ahead
    residuals: the runner's anomaly score divides by it. 1.0 without targets (scaled units)."""
    if evaluation is None or evaluation.y is None or not len(evaluation.x):
        return [1.0] * len(model.outputs)
    residual = model.predict_windows(evaluation.x)[:, 0, :] - evaluation.y[:, 0, :]
    deviation = np.median(np.abs(residual - np.median(residual, axis=0)), axis=0) * 1.4826
    return [float(s) if s > 0 else 1.0 for s in deviation]


@dataclass(frozen=True)
class ExportResult:
    variant: EdgeVariant
    model_bytes: bytes
    parity_max_abs: float
    mse_delta_pct: float | None


def export_variant(store: Store, reference: str, fmt: str = DYNAMIC, *,
                   calibration: np.ndarray | None = None, evaluation: Evaluation | None = None,
                   keyring: KeyRing | None = None, actor: str | None = None) -> ExportResult:
    """Export the version ``reference`` resolves to as a ``fmt`` edge variant: convert, check
    parity against the version, sign, store, record in the ledger ``edge:NAME``."""
    registry = ModelRegistry(store)
    version = registry.resolve(reference)
    model = registry.load(version)
    actor = actor or current_actor()
    keyring = keyring or KeyRing()
    if isinstance(model, FittedDetector):
        return _export_detector(store, version, model, fmt, calibration, keyring, actor)
    if not isinstance(model, ForecastModel):
        raise ConfigurationError(f"{version.ref} is a {type(model).__name__}, not a forecaster "
                                 "with an ONNX path")
    scales = residual_scale(model, evaluation)
    fp32 = onnx_bytes(model, _metadata(version, model, scales))
    data = convert(fp32, fmt, calibration)
    check = evaluation.x if evaluation is not None and len(evaluation.x) else (
        reference_windows(model, 64))
    expected = model.predict_windows(check)
    got = run_onnx(data, check)
    parity = float(np.max(np.abs(got - expected))) if got.size else 0.0
    delta = None
    if evaluation is not None and evaluation.y is not None and len(evaluation.x):
        reference_fp32 = run_onnx(fp32, check) if fmt != "fp32" else got
        delta = relative_mse_change(got, reference_fp32, evaluation.y)
    manifest = {"model": version.name, "version": version.version, "format": fmt,
                "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                "kind": model.kind, "lookback": model.lookback, "horizon": model.horizon,
                "columns": model.columns, "outputs": model.outputs,
                "scaler": _scaler(version, model), "residual_scale": scales,
                "parity_max_abs": parity, "mse_delta_pct": delta, "created_at": time.time()}
    return _publish(store, version, fmt, data, manifest, parity, delta, keyring, actor)


def _export_detector(store: Store, version: ModelVersion, detector: FittedDetector, fmt: str,
                     calibration: np.ndarray | None, keyring: KeyRing, actor: str
                     ) -> ExportResult:
    """A fitted detector's variant: its scoring graph, checked against ``score_windows`` on
    windows of the reference rows it keeps."""
    from numpy.lib.stride_tricks import sliding_window_view

    from amml.edge.detector_export import detector_manifest, detector_onnx

    fp32 = detector_onnx(detector, {"amml.model": version.ref})
    span = detector.context + 1
    rows = np.array(detector._history, dtype=float)  # the reference (its last `history` rows)
    if len(rows) < span:
        raise ConfigurationError(f"{version.ref}: the detector keeps {len(rows)} reference "
                                 f"rows, fewer than the {span} one window needs to check the "
                                 f"export against (fit it with history >= {span})")
    windows = sliding_window_view(rows, span, axis=0).transpose(0, 2, 1)[-256:]
    data = convert(fp32, fmt, windows if calibration is None else calibration)
    got = session(data).run(None, {INPUT: np.ascontiguousarray(windows, dtype=np.float32)})[0]
    parity = float(np.max(np.abs(np.asarray(got, dtype=float)
                                 - detector.score_windows(windows)))) if len(windows) else 0.0
    columns = (version.signature or {}).get("columns") or detector.columns_
    manifest = {**detector_manifest(detector, data, name=version.name,
                                    version=version.version, fmt=fmt, columns=columns),
                "parity_max_abs": parity, "mse_delta_pct": None, "created_at": time.time()}
    return _publish(store, version, fmt, data, manifest, parity, None, keyring, actor)


def _publish(store: Store, version: ModelVersion, fmt: str, data: bytes,
             manifest: dict[str, Any], parity: float, delta: float | None, keyring: KeyRing,
             actor: str) -> ExportResult:
    """Store, sign, record in the ledger ``edge:NAME`` and list a variant's bytes."""
    digest = store.artifacts.put_bytes(data)
    key = keyring.active()
    text = canonical_body(manifest)
    signature = key.sign(text.encode())
    entry = Ledger(store, f"edge:{version.name}", keyring).append(
        "edge_export", metrics={"parity_max_abs": parity, "size": len(data),
                                **({"mse_delta_pct": delta} if delta is not None else {})},
        extra={"parent": version.ref, "format": fmt, "artifact": digest,
               "manifest_sha256": hashlib.sha256(text.encode()).hexdigest(),
               "manifest_signature": signature, "public_key": public_hex(key.public)})
    variant = add_variant(store, name=version.name, version=version.version, fmt=fmt,
                          digest=digest, size=len(data), parity_max_abs=parity,
                          mse_delta_pct=delta, manifest=text, signature=signature,
                          key_id=key.key_id, ledger_seq=entry.seq, actor=actor)
    return ExportResult(variant, data, parity, delta)


def _scaler(version: ModelVersion, model: ForecastModel) -> dict[str, dict[str, float]]:
    """The signature's offset and scale of the model's columns (empty: unscaled)."""
    params = (version.signature or {}).get("scaler") or {}
    return {c: {"offset": float(params[c]["offset"]), "scale": float(params[c]["scale"]) or 1.0}
            for c in model.columns if c in params}


def _metadata(version: ModelVersion, model: ForecastModel, scales: list[float]
              ) -> dict[str, Any]:
    return {"amml.model": version.ref, "scaler": _scaler(version, model),
            "residual_scale": scales}


def public_key_hex(keyring: KeyRing | None = None) -> str:
    """The hex of the active signing key's public half: what devices pin to verify models."""
    return public_hex((keyring or KeyRing()).active().public)


def manifest_of(variant: EdgeVariant) -> dict[str, Any]:
    return json.loads(variant.manifest)


def windows_from_csv(store: Store, reference: str, path: str | Path, rows: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Scaled windows ``(x, y)`` of the version's columns/outputs from rows ``START:END`` of
    a CSV in original units (the calibration or evaluation split)."""
    import pandas as pd

    version = ModelRegistry(store).resolve(reference)
    model = ModelRegistry(store).load(version)
    start, _, end = rows.partition(":")
    try:
        part = slice(int(start) if start else None, int(end) if end else None)
    except ValueError:
        raise ConfigurationError(f"rows must be START:END, got '{rows}'") from None
    frame = pd.read_csv(path).iloc[part]
    missing = [c for c in model.columns if c not in frame.columns]
    if missing:
        raise ConfigurationError(f"{path} lacks the model's columns {missing}")
    scaler = _scaler(version, model)
    values = frame[model.columns].to_numpy(dtype=np.float64)
    offset = np.array([scaler.get(c, {}).get("offset", 0.0) for c in model.columns])
    scale = np.array([scaler.get(c, {}).get("scale", 1.0) for c in model.columns])
    values = (values - offset) / scale
    span = model.lookback + model.horizon
    if len(values) < span:
        raise ConfigurationError(f"rows {rows} hold {len(values)} rows; a window needs {span}")
    view = np.lib.stride_tricks.sliding_window_view(values, span, axis=0).transpose(0, 2, 1)
    picks = [model.columns.index(o) for o in model.outputs]
    return view[:, : model.lookback].copy(), view[:, model.lookback :, picks].copy()

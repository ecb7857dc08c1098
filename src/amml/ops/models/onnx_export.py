"""ONNX export of any model kind, through the contract's one hook.

A kind's :meth:`~amml.ops.models.contract.ForecastModel.export_module` gives a
``torch.nn.Module`` computing its ``predict_windows`` on float32 windows; this module traces it
with PyTorch's TorchScript-based exporter (``dynamo=False``: one self-contained file with the
weights inside, and a dynamic batch axis), then writes into the file what a runtime needs to
use it without AMML: the kind, lookback, horizon, columns and outputs as metadata properties.

The graph's input is ``windows`` ``(N, lookback, columns)`` float32, its output ``forecast``
``(N, horizon, outputs)``, in the units the model works in (usually scaled; the scaler travels
in the metadata when the caller gives one).

>>> import tempfile, numpy as np, onnxruntime as ort
>>> from amml.ops.models.contract import make_model
>>> model = make_model("naive", lookback=4, horizon=2, columns=["a"], outputs=["a"])
>>> path = export_onnx(model, tempfile.mkdtemp() + "/naive.onnx")
>>> session = ort.InferenceSession(str(path))
>>> session.run(None, {"windows": np.arange(8, dtype=np.float32).reshape(2, 4, 1)})[0][:, :, 0]
array([[3., 3.],
       [7., 7.]], dtype=float32)
>>> onnx_metadata(path)["lookback"]
'4'
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from amml.ops.models.contract import ForecastModel, ModelContractError

INPUT, OUTPUT = "windows", "forecast"
#: The opset every export targets: ONNX Runtime 1.17+ runs it, and LSTM, LayerNorm and GELU
#: export cleanly at it.
OPSET = 17


def model_metadata(model: ForecastModel, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """What travels inside the ONNX file (strings only, as ONNX metadata requires)."""
    meta = {"amml.kind": model.kind, "lookback": str(model.lookback),
            "horizon": str(model.horizon), "columns": json.dumps(model.columns),
            "outputs": json.dumps(model.outputs)}
    for key, value in (extra or {}).items():
        meta[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return meta


def onnx_bytes(model: ForecastModel, metadata: dict[str, Any] | None = None) -> bytes:
    """The model as the bytes of one ONNX file (weights embedded)."""
    import onnx
    import torch

    module = model.export_module()
    module.eval()
    dummy = torch.zeros((1, model.lookback, len(model.columns)), dtype=torch.float32)
    buffer = io.BytesIO()
    # the Transformer layers' fused inference kernel has no ONNX form: trace the plain ops
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    with warnings.catch_warnings(), torch.no_grad():
        # the tracer warns about shape-dependent Python values; the parity check is the proof
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (dummy,), buffer, dynamo=False, opset_version=OPSET,
                              input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
        except Exception as exc:  # the exporter's errors name torch internals only
            raise ModelContractError(f"ONNX export of a '{model.kind}' model failed: "
                                     f"{type(exc).__name__}: {exc}") from exc
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, model_metadata(model, metadata))
    return proto.SerializeToString()


def export_onnx(model: ForecastModel, path: str | Path,
                metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``path`` as ONNX; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_bytes(model, metadata))
    return path


def onnx_metadata(source: str | Path | bytes) -> dict[str, str]:
    """The metadata properties of an ONNX file (or its bytes)."""
    import onnx

    proto = (onnx.load_from_string(source) if isinstance(source, bytes)
             else onnx.load(str(source), load_external_data=False))
    return {p.key: p.value for p in proto.metadata_props}


def reference_windows(model: ForecastModel, count: int = 8, seed: int = 0) -> np.ndarray:
    """Random float32 windows of the model's shape, for a quick parity check."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count, model.lookback, len(model.columns))).astype(np.float32)


def channel_modules() -> Any:
    """Export modules of the numpy kinds (:class:`~amml.ops.models.channel.ChannelForecaster`
    ones), defined on first use so that PyTorch loads only when exporting."""
    global _CHANNEL_MODULES
    if _CHANNEL_MODULES is None:
        _CHANNEL_MODULES = _define_channel_modules()
    return _CHANNEL_MODULES


_CHANNEL_MODULES: Any = None


def _define_channel_modules() -> Any:
    from types import SimpleNamespace

    import torch

    nn = torch.nn

    class Gathered(nn.Module):
        """``out[:, h, c] = x[:, index[h], picks[c]]``: naive and seasonal naive."""

        def __init__(self, index: list[int], picks: list[int]) -> None:
            super().__init__()
            self.register_buffer("index", torch.tensor(index, dtype=torch.int64))
            self.register_buffer("picks", torch.tensor(picks, dtype=torch.int64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.index_select(2, self.picks).index_select(1, self.index)

    class LastValueAffine(nn.Module):
        """``out = (x - last) @ W + b + last`` per picked channel: the ridge ``linear``."""

        def __init__(self, weights: np.ndarray, picks: list[int]) -> None:
            super().__init__()
            weights = np.asarray(weights, dtype=np.float32)
            self.register_buffer("weight", torch.from_numpy(weights[:-1].copy()))
            self.register_buffer("bias", torch.from_numpy(weights[-1].copy()))
            self.register_buffer("picks", torch.tensor(picks, dtype=torch.int64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.index_select(2, self.picks)
            last = x[:, -1:, :]
            mapped = torch.matmul((x - last).transpose(1, 2), self.weight) + self.bias
            return mapped.transpose(1, 2) + last

    return SimpleNamespace(Gathered=Gathered, LastValueAffine=LastValueAffine)

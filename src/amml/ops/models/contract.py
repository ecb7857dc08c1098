"""The forecasting model contract and the one registry of model kinds.

Every forecaster answers the same questions: its ``kind``, ``lookback``, ``horizon``, input
``columns`` and ``outputs``, ``predict_windows(x)`` from ``(N, lookback, len(columns))`` to
``(N, horizon, len(outputs))``, and its state as JSON config plus named tensors (safetensors,
never pickle). Training, evaluation, registration, serving, federated weight exchange and
export hook in here once, not per kind.

A kind is one :class:`ForecastModel` subclass with a class attribute ``kind``, registered with
:func:`register_kind` in a module of :mod:`amml.ops.models.kinds` (found on its own, no list to
edit) or in a third-party package under the entry-point group ``amml.models``. Its constructor
takes ``lookback, horizon, columns, outputs`` and its own parameters (read back from the
signature, scikit-learn style); ``fit`` trains it on windows.

>>> import numpy as np
>>> model = make_model("naive", lookback=4, horizon=2, columns=["a"], outputs=["a"])
>>> model.predict_windows(np.arange(8.0).reshape(2, 4, 1))[:, :, 0].tolist()
[[3.0, 3.0], [7.0, 7.0]]
>>> make_model("linnear", lookback=4, horizon=2, columns=["a"], outputs=["a"])
Traceback (most recent call last):
...
amml._exceptions.OpError: unknown model kind 'linnear'; did you mean 'linear'? (known: ...)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np

from amml._exceptions import ModelContractError, OpError
from amml.lang.params import did_you_mean
from amml.store.artifacts.model import MODEL_CLASSES, SafetensorsModel

#: The model-kind registry (it lives with the artifact loader, which resolves classes by it).
MODEL_KINDS = MODEL_CLASSES


@runtime_checkable
class Forecasting(Protocol):
    """What a caller may rely on of any forecaster, ours or a stand-in (serving's tests)."""

    lookback: int
    horizon: int
    columns: list[str]
    outputs: list[str]

    def predict_windows(self, x: np.ndarray) -> np.ndarray: ...


@dataclass
class Training:
    """How to fit: what the ``train`` op was configured with, and where epochs are recorded.
    Kinds without iterative training read only what they need (usually nothing)."""

    seed: int = 0
    epochs: int = 10
    lr: float = 0.005
    lr_schedule: str = "halve"
    batch_size: int = 32
    patience: int | None = 3
    rollback_patience: int | None = None
    device: str = "cpu"
    ledger: Any = None
    start_epoch: int = 0
    resume_checkpoint: bytes | None = None
    data_digest: str | None = None
    code_digest: str | None = None
    config_digest: str | None = None
    on_epoch: Callable[[int, dict[str, float]], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ForecastModel(SafetensorsModel):
    """Base of every forecaster kind. Subclasses set ``kind`` and implement
    ``predict_windows``, ``get_tensors``, ``load_tensors`` and (when they learn) ``fit``."""

    kind: ClassVar[str] = ""

    def __init__(self, lookback: int, horizon: int, columns: list[str] | None = None,
                 outputs: list[str] | None = None) -> None:
        self.lookback, self.horizon = int(lookback), int(horizon)
        self.columns = [str(c) for c in (columns or ["value"])]
        self.outputs = [str(c) for c in (outputs or self.columns)]
        missing = [o for o in self.outputs if o not in self.columns]
        if missing:
            raise OpError(f"{self.kind}: outputs {missing} are not among the input columns "
                          f"{self.columns}")

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param_names(cls) -> list[str]:
        """The constructor's parameters: the configuration, read back from attributes."""
        return [name for name, p in inspect.signature(cls.__init__).parameters.items()
                if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_config(self) -> dict[str, Any]:
        return {"kind": self.kind, **{name: getattr(self, name) for name in self.param_names()}}

    # ------------------------------------------------------------------ behaviour
    def predict_windows(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, *, training: Training | None = None
            ) -> dict[str, float]:
        """Train on windows ``x`` (N, lookback, columns) -> ``y`` (N, horizon, outputs);
        returns metrics to log. Kinds with nothing to learn keep this no-op."""
        return {}

    def reset(self, seed: int) -> None:
        """Draw the initial parameters again from ``seed`` (kinds with random ones)."""

    def check_windows(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3 or x.shape[1:] != (self.lookback, len(self.columns)):
            raise OpError(f"{self.kind}: expected windows of shape (N, {self.lookback}, "
                          f"{len(self.columns)}), got {x.shape}")
        return x

    # ------------------------------------------------------------------ state
    def load_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        """Set the state :meth:`get_tensors` returns (same names and shapes)."""
        if tensors:
            raise NotImplementedError

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, np.ndarray]
                   ) -> ForecastModel:
        config = dict(config)
        kind = config.pop("kind", cls.kind)
        if kind != cls.kind:
            raise OpError(f"artifact of kind '{kind}' cannot load as {cls.__name__} "
                          f"('{cls.kind}')")
        model = cls(**config)
        model.load_tensors(dict(tensors))
        return model

    @classmethod
    def from_legacy_state(cls, class_name: str, config: dict[str, Any],
                          tensors: dict[str, np.ndarray]) -> ForecastModel:
        """Older artifacts kept every family's fields in one config (naive had ``alpha``);
        the ones this kind takes are used, and the tensors it has."""
        own = {k: v for k, v in config.items() if k in cls.param_names()}
        model = cls(**own)
        names = set(model.get_tensors())
        model.load_tensors({k: v for k, v in tensors.items() if k in names})
        return model

    # ------------------------------------------------------------------ seams
    def get_weights(self) -> list[np.ndarray]:
        """The tensors in a fixed order (by name): what federated averaging exchanges."""
        return [np.array(v, copy=True) for _, v in sorted(self.get_tensors().items())]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """The inverse of :meth:`get_weights`: same count, order and shapes, or an error."""
        current = sorted(self.get_tensors().items())
        if len(weights) != len(current):
            raise ModelContractError(f"{self.kind}: {len(weights)} weight arrays given, the "
                                     f"model has {len(current)}")
        tensors = {}
        for (name, old), new in zip(current, weights, strict=True):
            new = np.asarray(new)
            if new.shape != old.shape:
                raise ModelContractError(f"{self.kind}: weight '{name}' has shape {old.shape}, "
                                         f"got {new.shape}")
            tensors[name] = new.astype(old.dtype, copy=False)
        self.load_tensors(tensors)

    def export_module(self) -> Any:
        """The hook ONNX export uses: a ``torch.nn.Module`` computing :meth:`predict_windows`
        on float32 ``(N, lookback, columns)`` windows. Kinds with an ONNX path return one."""
        raise ModelContractError(f"exporting '{self.kind}' models to ONNX is not implemented; "
                                 "the safetensors artifact is the portable form")

    def to_onnx(self, path: str | Path) -> Path:
        """Write this model as one ONNX file (see :mod:`amml.ops.models.onnx_export`)."""
        from amml.ops.models.onnx_export import export_onnx

        return export_onnx(self, path)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(kind={self.kind!r}, lookback={self.lookback}, "
                f"horizon={self.horizon}, columns={self.columns}, outputs={self.outputs})")


M = TypeVar("M", bound=type[ForecastModel])


def register_kind(cls: M | None = None, *, override: bool = False) -> Any:
    """Class decorator: make a :class:`ForecastModel` subclass a model kind, by its ``kind``."""
    if cls is None:
        return lambda c: register_kind(c, override=override)
    if not (isinstance(cls, type) and issubclass(cls, ForecastModel)) or not cls.kind:
        raise OpError(f"{cls!r} is not a ForecastModel subclass with a 'kind'")
    MODEL_KINDS.register(cls, override=override)
    return cls


def kind_names() -> list[str]:
    return MODEL_KINDS.names()


def model_kind(name: str) -> type[ForecastModel]:
    """The class of a registered kind; an unknown one is an error with a suggestion."""
    cls = MODEL_KINDS.find(name)
    if cls is None or not issubclass(cls, ForecastModel):
        hint = did_you_mean(name, kind_names())
        raise OpError(f"unknown model kind '{name}'" + (f"; {hint}" if hint else "")
                      + f" (known: {', '.join(kind_names())})")
    return cls


def make_model(kind: str, *, lookback: int, horizon: int, columns: list[str],
               outputs: list[str], **candidates: Any) -> ForecastModel:
    """A fresh model of ``kind``; of ``candidates`` (the train op's fields), the ones its
    constructor takes are passed, so the op needs no per-kind code."""
    cls = model_kind(kind)
    params = {k: v for k, v in candidates.items() if k in cls.param_names()}
    try:
        return cls(lookback=lookback, horizon=horizon, columns=columns, outputs=outputs,
                   **params)
    except (TypeError, ValueError, RuntimeError) as exc:  # bad options reach the net
        raise OpError(f"cannot build a '{kind}' model: {exc}") from exc

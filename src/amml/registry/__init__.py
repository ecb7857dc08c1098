"""The model registry: versions, aliases with an audit trail, promotion rules, loading.

This package is the one import path to the registry for everything above the engine (serve,
cli, and monitor, federated, edge, dashboard as they come): an import-linter contract forbids
them :mod:`amml.store.model_registry`, where the data access lives.

:class:`ModelRegistry` (from :mod:`amml.store.model_registry`) records versions and moves
aliases; :func:`promote` moves an alias (``champion``) to a candidate (``challenger``) only when
the candidate answers the same question (same signature) and its metric beats the current
holder's; :func:`load_model` turns a reference such as ``"oil@champion"`` into a
:class:`LoadedModel` that forecasts in original units exactly as ``amml serve`` does.

>>> import tempfile
>>> from amml.store import open_store
>>> from amml.ops.models.forecaster import Forecaster
>>> registry = ModelRegistry(open_store(tempfile.mkdtemp()))
>>> _ = registry.register("oil", Forecaster("naive", 24, 6), metrics={"mse": 0.9})
>>> _ = registry.register("oil", Forecaster("seasonal_naive", 24, 6), metrics={"mse": 0.5})
>>> registry.set_alias("oil", "challenger", 1, actor="ana")
>>> promote(registry, "oil", actor="ana").reason
'no champion yet: challenger oil@1 becomes champion (mse 0.9)'
>>> registry.set_alias("oil", "challenger", 2, actor="ana")
1
>>> result = promote(registry, "oil", actor="ana")
>>> result.promoted, result.reason
(True, 'challenger oil@2 beats champion oil@1: mse 0.5 < 0.9')
>>> registry.resolve("oil@champion").version
2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amml.registry.loaded import (
    LoadedModel,
    ModelShape,
    detector_shape,
    model_scaler,
    model_shape,
    scaled_forecast,
)
from amml.registry.promotion import PromotionResult, metric_value, promote
from amml.store.model_registry import (
    ANY,
    AliasConflict,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    SignatureMismatch,
    current_actor,
    signature_differences,
)


def load_model(reference: str, home: str | Path | None = None, *, store: Any = None
               ) -> LoadedModel:
    """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` as a :class:`LoadedModel` (rebuilt from
    safetensors + JSON, never pickle), from the default store or the one under ``home``.

    ``.forecast(frame)`` applies the signature's scaler and inverts it, as the server does;
    ``.model`` is the bare model, whose ``predict_windows`` takes scaled input.

    >>> import tempfile
    >>> from amml.store import open_store
    >>> from amml.ops.models.forecaster import Forecaster
    >>> home = tempfile.mkdtemp()
    >>> with open_store(home) as store:
    ...     _ = ModelRegistry(store).register("oil", Forecaster("naive", 24, 6))
    >>> load_model("oil@1", home).horizon
    6
    """
    from amml.store import open_store

    if store is not None:
        return _loaded(ModelRegistry(store), reference)
    with open_store(home) as opened:
        return _loaded(ModelRegistry(opened), reference)


def _loaded(registry: ModelRegistry, reference: str) -> LoadedModel:
    version = registry.resolve(reference)
    return LoadedModel(version, registry.load(version))


__all__ = [
    "ANY",
    "AliasConflict",
    "LoadedModel",
    "ModelRegistry",
    "ModelShape",
    "ModelVersion",
    "PromotionResult",
    "RegistryError",
    "SignatureMismatch",
    "current_actor",
    "detector_shape",
    "load_model",
    "metric_value",
    "model_scaler",
    "model_shape",
    "promote",
    "scaled_forecast",
    "signature_differences",
]

"""Models as safe artifacts: tensors in safetensors, configuration in its JSON metadata.

Loading never unpickles and never imports what the file names. The metadata's ``"class"``
(``module:qualname``) is looked up, in order, among

1. the :class:`SafetensorsModel` subclasses already imported (nothing is imported for them);
2. the model kinds of :data:`MODEL_CLASSES`: AMML's built-in kinds and those installed under
   the entry-point group ``amml.models`` (the installer chose them, not the file);
3. the names older AMML versions wrote (:data:`LEGACY_CLASSES`), mapped to today's kinds by
   the ``kind`` in their configuration.

Anything else is a :class:`~amml._exceptions.StoreError` naming the class; nothing is imported.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from amml._exceptions import StoreError
from amml._plugins import PluginRegistry

# One metadata key holding canonical JSON: safetensors keeps metadata in a hash map whose
# order varies between calls, and equal models must serialize to equal bytes.
METADATA_KEY = "amml"

#: Class names older AMML versions wrote; the configuration's ``kind`` picks today's class
#: (whose ``from_legacy_state`` reads the old configuration and tensors).
LEGACY_CLASSES = frozenset({
    "amml.ops.models.forecaster:Forecaster",
    "amml.ops.models.train:BaselineForecaster",
    "amml.ops.models.deep:DeepForecaster",
})


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class SafetensorsModel:
    """Base of every model AMML stores. Subclasses give arrays, a config, and a constructor."""

    #: Models that may be rebuilt from an artifact, by "module:qualname" (imported ones only).
    _known: ClassVar[dict[str, type[SafetensorsModel]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        SafetensorsModel._known[class_path(cls)] = cls

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_tensors(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> Any:
        raise NotImplementedError

    @classmethod
    def from_legacy_state(cls, class_name: str, config: dict[str, Any],
                          tensors: dict[str, np.ndarray]) -> Any:
        """Rebuild from an artifact an older AMML wrote under ``class_name``."""
        raise StoreError(f"{class_path(cls)} cannot read artifacts written as {class_name}")

    def to_bytes(self) -> bytes:
        metadata = {METADATA_KEY: json.dumps(
            {"class": class_path(type(self)), "config": self.get_config()},
            sort_keys=True, separators=(",", ":"))}
        tensors = {k: np.ascontiguousarray(v) for k, v in sorted(self.get_tensors().items())}
        return st_save(tensors, metadata=metadata)

    @staticmethod
    def from_bytes(data: bytes) -> Any:
        try:
            header_len = int.from_bytes(data[:8], "little")
            header = json.loads(data[8 : 8 + header_len])
            metadata = json.loads(header.get("__metadata__", {})[METADATA_KEY])
            name, config = metadata["class"], metadata.get("config", {})
        except (KeyError, TypeError, ValueError, AttributeError):
            raise StoreError("model artifact has no AMML metadata (class and config)") from None
        if name in LEGACY_CLASSES:
            kind = config.get("kind") if isinstance(config, dict) else None
            cls = MODEL_CLASSES.find(kind) if isinstance(kind, str) else None
            if cls is None:
                raise StoreError(f"model artifact of the old class {name} has an unknown kind "
                                 f"{kind!r} (known: {', '.join(MODEL_CLASSES.names())})")
            return cls.from_legacy_state(name, config, st_load(data))
        cls = resolve_model_class(name)
        return cls.from_state(config, st_load(data))


#: AMML's own model classes that are not forecasting kinds, by the name their artifacts give,
#: with the module that defines them: imported on first use like :data:`MODEL_CLASSES`'
#: built-ins (this table chose the module, not the file). A fitted anomaly detector's
#: artifact names the base class; the detector itself is found by its registered name.
BUILTIN_CLASSES = {"amml.ops.detectors.fitted:FittedDetector": "amml.ops.detectors.fitted"}


def resolve_model_class(name: str) -> type[SafetensorsModel]:
    """The class an artifact names, among imported subclasses, AMML's built-in classes and
    registered model kinds."""
    cls = SafetensorsModel._known.get(name)
    if cls is None and name in BUILTIN_CLASSES:
        importlib.import_module(BUILTIN_CLASSES[name])
        cls = SafetensorsModel._known.get(name)
    if cls is None:
        cls = next((c for _, c in MODEL_CLASSES.items() if class_path(c) == name), None)
    if cls is None or not issubclass(cls, SafetensorsModel):
        raise StoreError(f"model artifact names class {name!r}, which is not a SafetensorsModel "
                         f"AMML knows (model kinds: {', '.join(MODEL_CLASSES.names())}); "
                         "install the package that registers it under 'amml.models'")
    return cls


def _model_classes(obj: Any) -> list[type[SafetensorsModel]]:
    """The model kinds an entry point (or the built-in kinds package) provides: one class, or
    the classes with their own ``kind`` in a module or in every module of a package."""
    if isinstance(obj, type) and issubclass(obj, SafetensorsModel):
        return [obj]
    if isinstance(obj, ModuleType):
        found = [member for _, member in inspect.getmembers(obj, inspect.isclass)
                 if issubclass(member, SafetensorsModel) and member.__module__ == obj.__name__
                 and "kind" in member.__dict__]
        if hasattr(obj, "__path__"):  # a package: one module per kind or family, found alone
            for info in sorted(pkgutil.iter_modules(obj.__path__), key=lambda i: i.name):
                found += _model_classes(importlib.import_module(f"{obj.__name__}.{info.name}"))
        return found
    raise StoreError(f"entry point object {obj!r} is not a SafetensorsModel class or module")


#: Model kinds by name: AMML's (every module of ``amml.ops.models.kinds``), then the
#: entry-point group ``amml.models``, then ``register_kind`` calls. The one place a kind is
#: looked up: training builds from it and loading resolves classes through it. Its built-ins
#: are named, as every registry's are, and imported on first use (none imports PyTorch).
MODEL_CLASSES: PluginRegistry[type[SafetensorsModel]] = PluginRegistry(
    "model kind", group="amml.models", name_of=lambda cls: cls.kind,  # type: ignore[attr-defined]
    builtins=("amml.ops.models.kinds",), collect=_model_classes)

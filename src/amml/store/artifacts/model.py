"""Models as safe artifacts: tensors in safetensors, configuration in its JSON metadata.

Loading never unpickles: the class named in the metadata must be an imported subclass of
:class:`SafetensorsModel`, and it rebuilds itself from plain arrays and JSON.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, ClassVar

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from amml._exceptions import StoreError

# One metadata key holding canonical JSON: safetensors keeps metadata in a hash map whose
# order varies between calls, and equal models must serialize to equal bytes.
METADATA_KEY = "amml"


class SafetensorsModel:
    """Base of every model AMML stores. Subclasses give arrays, a config, and a constructor."""

    #: Models that may be rebuilt from an artifact, by "module:qualname".
    _known: ClassVar[dict[str, type[SafetensorsModel]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        SafetensorsModel._known[f"{cls.__module__}:{cls.__qualname__}"] = cls

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_tensors(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> Any:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        metadata = {METADATA_KEY: json.dumps(
            {"class": f"{type(self).__module__}:{type(self).__qualname__}",
             "config": self.get_config()}, sort_keys=True, separators=(",", ":"))}
        tensors = {k: np.ascontiguousarray(v) for k, v in sorted(self.get_tensors().items())}
        return st_save(tensors, metadata=metadata)

    @staticmethod
    def from_bytes(data: bytes) -> Any:
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        try:
            metadata = json.loads(header.get("__metadata__", {})[METADATA_KEY])
            class_path = metadata["class"]
        except (KeyError, TypeError, ValueError):
            raise StoreError("model artifact has no AMML metadata (class and config)") from None
        cls = SafetensorsModel._known.get(class_path)
        if cls is None:
            module_name = class_path.split(":", 1)[0]
            try:  # importing by module name runs no code from the artifact itself
                importlib.import_module(module_name)
            except ImportError as exc:
                raise StoreError(f"model class {class_path} cannot be imported: {exc}") from exc
            cls = SafetensorsModel._known.get(class_path)
        if cls is None or not issubclass(cls, SafetensorsModel):
            raise StoreError(f"{class_path} is not a SafetensorsModel subclass")
        return cls.from_state(metadata.get("config", {}), st_load(data))

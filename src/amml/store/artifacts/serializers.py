"""One serializer per artifact type. Bytes are deterministic, so equal values get equal
digests: tables are Parquet written by pyarrow with fixed options (no timestamps in the file),
JSON is canonical, arrays are ``.npy`` without pickle, models are safetensors.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from amml._exceptions import StoreError
from amml.store.artifacts.model import SafetensorsModel

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Serializer:
    type: str
    extension: str
    accepts: Callable[[Any], bool]
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]


def _is_dataframe(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and type(value).__module__.startswith("pandas")


def _table_dumps(frame: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=True)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True,
                   store_schema=True)
    return sink.getvalue()


def _table_loads(data: bytes) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data)).to_pandas()


def _clean_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, np.generic):
        return _clean_json(value.item())
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    return value


def _json_dumps(value: Any) -> bytes:
    return json.dumps(_clean_json(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode()


def _array_dumps(value: np.ndarray) -> bytes:
    if value.dtype == object:
        raise StoreError("object arrays cannot be stored safely; convert to a numeric dtype")
    sink = io.BytesIO()
    np.save(sink, np.ascontiguousarray(value), allow_pickle=False)
    return sink.getvalue()


def _array_loads(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _is_json(value: Any) -> bool:
    return value is None or isinstance(value, dict | list | bool | int | float)


SERIALIZERS: dict[str, Serializer] = {
    s.type: s
    for s in (
        Serializer("table", "parquet", _is_dataframe, _table_dumps, _table_loads),
        Serializer("model", "safetensors", lambda v: isinstance(v, SafetensorsModel),
                   lambda v: v.to_bytes(), SafetensorsModel.from_bytes),
        Serializer("array", "npy", lambda v: isinstance(v, np.ndarray), _array_dumps,
                   _array_loads),
        Serializer("image", "png", lambda v: isinstance(v, bytes) and
                   v.startswith(PNG_SIGNATURE), bytes, bytes),
        Serializer("text", "txt", lambda v: isinstance(v, str), lambda v: v.encode(),
                   lambda b: b.decode()),
        Serializer("json", "json", _is_json, _json_dumps, json.loads),
    )
}


def infer_type(value: Any) -> str:
    for serializer in SERIALIZERS.values():
        if serializer.accepts(value):
            return serializer.type
    raise StoreError(
        f"cannot store a {type(value).__module__}.{type(value).__name__}: return a pandas "
        "DataFrame, a numpy array, JSON data, a str, PNG bytes or a SafetensorsModel"
    )


def serialize(value: Any, declared: str) -> tuple[str, bytes]:
    """``(type, bytes)`` for ``value``; ``declared`` may be ``any`` to infer the type."""
    kind = infer_type(value) if declared == "any" else declared
    serializer = SERIALIZERS.get(kind)
    if serializer is None:
        raise StoreError(f"no serializer for artifact type '{kind}'")
    if not serializer.accepts(value):
        raise StoreError(f"output declared as {kind} but got {type(value).__name__}")
    return kind, serializer.dumps(value)


def deserialize(kind: str, data: bytes) -> Any:
    serializer = SERIALIZERS.get(kind)
    if serializer is None:
        raise StoreError(f"no serializer for artifact type '{kind}'")
    return serializer.loads(data)

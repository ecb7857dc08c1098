"""Fingerprints for the step cache.

A step's cache key hashes the op's name and version, its code, its resolved configuration and
the digests of its input artifacts. Code is fingerprinted by source: for a function, its own
source plus the functions and classes of its own module that it refers to, transitively, so
editing a helper invalidates the steps that use it. Values are hashed by content with
:func:`fingerprint_value` (a ``singledispatch`` function), never by identity.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import types
from collections.abc import Mapping
from typing import Any

import numpy as np


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


@functools.singledispatch
def fingerprint_value(value: Any) -> str:
    """Content digest of a value. Raises ``TypeError`` for what cannot be fingerprinted
    (such a value is never cached, rather than wrongly hit).

    >>> fingerprint_value({"a": 1}) == fingerprint_value({"a": 1})
    True
    """
    return sha256_hex(canonical(value))


@fingerprint_value.register
def _(value: np.ndarray) -> str:
    digest = hashlib.sha256(f"{value.dtype.str}{value.shape}".encode())
    digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _fingerprint_frame(value: Any) -> str:
    from amml.store.artifacts.serializers import serialize

    return sha256_hex(serialize(value, "table")[1])


try:  # pandas is a dependency, but keep the dispatch table honest about what it handles
    import pandas as pd

    fingerprint_value.register(pd.DataFrame, _fingerprint_frame)
except ImportError:  # pragma: no cover
    pass


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if code is not None:  # no source file (e.g. defined in a REPL): use the bytecode
            return code.co_code.hex() + repr(code.co_consts)
        return repr(obj)


def _code_objects(obj: Any) -> list[types.CodeType]:
    if isinstance(obj, types.FunctionType):
        return [obj.__code__]
    if isinstance(obj, type):
        found = []
        for value in vars(obj).values():
            target = value.__func__ if isinstance(value, classmethod | staticmethod) else value
            if isinstance(target, types.FunctionType):
                found.append(target.__code__)
        return found
    return []


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


@functools.cache
def code_digest(obj: Any) -> str:
    """Digest of ``obj``'s source and of the same-module helpers it uses, transitively."""
    module = getattr(obj, "__module__", None)
    seen: dict[str, str] = {}
    stack = [obj]
    while stack:
        current = stack.pop()
        key = f"{getattr(current, '__module__', '')}:{getattr(current, '__qualname__', '')}"
        if key in seen:
            continue
        seen[key] = _source(current)
        global_ns: Mapping[str, Any] = getattr(current, "__globals__", None) or vars(
            inspect.getmodule(current) or types.ModuleType("_"))
        for code in _code_objects(current):
            for name in _names(code):
                target = global_ns.get(name)
                if (isinstance(target, types.FunctionType | type)
                        and getattr(target, "__module__", None) == module):
                    stack.append(getattr(target, "__wrapped__", target))
                elif hasattr(target, "op_class") and hasattr(target, "func"):
                    stack.append(target.func)  # another @op function used as a helper
    return sha256_hex(canonical(sorted(seen.items())))


def partial_key(op_name: str, op_version: str, code: str, config: Mapping[str, Any]) -> str:
    """The part of a cache key known before inputs exist (used to prefetch cache entries)."""
    return sha256_hex(canonical({"op": op_name, "version": op_version, "code": code,
                                 "config": config}))


def cache_key(partial: str, inputs: Mapping[str, str | list[str]]) -> str:
    """The full cache key: the partial key plus the digests of the input artifacts."""
    return sha256_hex(canonical({"partial": partial, "inputs": inputs}))
